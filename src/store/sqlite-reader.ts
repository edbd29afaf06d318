/**
 * The embedded store's reads, in a worker thread. better-sqlite3 runs each statement synchronously on the thread
 * that calls it; on the main thread one heavy read (a hostile filter, a sort over many users) would stop
 * everything else, `/healthz` included, for as long as it runs. Here the main thread only waits for an answer.
 *
 * A few threads serve reads side by side, so one slow read does not hold up the others. A statement that
 * outlives its transaction's deadline is answered DeadlineExceeded at the deadline, and its thread is replaced
 * at once, so later reads do not queue behind it. better-sqlite3 offers no sqlite3_interrupt, so a replaced
 * thread finishes that statement before it exits: its cost is bounded by the query-cost cap (src/scim/list.ts),
 * not cut short. At most MAX_RETIRING replaced threads may be finishing at a time; beyond that a late thread is
 * kept, and reads behind it wait and meet their own deadlines, so a flood of hostile reads costs a bounded number
 * of threads. The worker's code is plain JavaScript in a string, so it runs the same from the TypeScript sources
 * and from the build.
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import { DeadlineExceeded, type Queryable, type RunResult } from "./db.js";

const WORKER_CODE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.path, { readonly: true, fileMustExist: true });
for (const p of workerData.pragmas) db.pragma(p);
const cache = new Map();
parentPort.on("message", ({ id, sql, params }) => {
  try {
    let s = cache.get(sql);
    if (!s) {
      s = db.prepare(sql);
      if (cache.size > 500) cache.clear();
      cache.set(sql, s);
    }
    const rows = s.reader ? s.all(...params) : (s.run(...params), []);
    parentPort.postMessage({ id, rows });
  } catch (err) {
    parentPort.postMessage({ id, error: { message: String(err && err.message), code: err && err.code } });
  }
});
`;

const driver = createRequire(import.meta.url).resolve("better-sqlite3");

/** better-sqlite3 binds no booleans: SQLite stores them as 0 and 1. */
export function sqliteParams(params: readonly unknown[]): unknown[] {
  return params.map((p) => (typeof p === "boolean" ? (p ? 1 : 0) : p));
}

interface Pending {
  resolve: (rows: unknown[]) => void;
  reject: (err: unknown) => void;
}

class ReaderThread {
  readonly worker: Worker;
  private next = 0;
  private readonly pending = new Map<number, Pending>();

  constructor(path: string, pragmas: readonly string[]) {
    this.worker = new Worker(WORKER_CODE, { eval: true, workerData: { driver, path, pragmas } });
    this.worker.unref();
    this.worker.on(
      "message",
      (m: { id: number; rows?: unknown[]; error?: { message: string; code?: string } }) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if (m.error) p.reject(Object.assign(new Error(m.error.message), { code: m.error.code }));
        else p.resolve(m.rows ?? []);
      },
    );
    this.worker.on("error", (err) => this.failAll(err));
    this.worker.on("exit", () => {
      this.exitedNow = true;
      this.failAll(new Error("the SQLite reader thread exited"));
    });
    this.exited = new Promise((resolve) => this.worker.once("exit", () => resolve()));
  }

  readonly exited: Promise<void>;

  /** Still running a statement whose deadline passed, kept because the retiring cap was reached. */
  overdue = false;
  /** The thread is gone (it crashed, ran out of memory, or was terminated). */
  exitedNow = false;

  query(sql: string, params: readonly unknown[]): Promise<unknown[]> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, sql, params });
    });
  }

  private failAll(err: unknown): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

/** One reader thread and the read transactions queued on it, one at a time (they share its snapshot). */
interface Slot {
  thread: ReaderThread;
  chain: Promise<unknown>;
  queued: number;
}

export interface ReaderOptions {
  /** Threads serving reads side by side. */
  threads?: number;
  /** Replaced threads that may still be finishing a statement at once. */
  maxRetiring?: number;
}

export class SqliteReader {
  private readonly slots: Slot[];
  private retiring = 0;
  private readonly maxRetiring: number;

  /** `pragmas`: the ones every connection of the store runs (src/store/db-sqlite.ts). */
  constructor(
    private readonly path: string,
    private readonly pragmas: readonly string[],
    opts: ReaderOptions = {},
  ) {
    this.maxRetiring = opts.maxRetiring ?? 4;
    this.slots = Array.from({ length: Math.max(1, opts.threads ?? 2) }, () => ({
      thread: new ReaderThread(path, pragmas),
      chain: Promise.resolve(),
      queued: 0,
    }));
  }

  /** Replaced threads still finishing their statement. */
  get retiringThreads(): number {
    return this.retiring;
  }

  transaction<T>(fn: (q: Queryable) => Promise<T>, deadline: number | undefined): Promise<T> {
    // The least queued thread, and one kept busy past a deadline only when every thread is.
    // A thread that died by itself is replaced before it is given work: messages to it would never be answered.
    for (const x of this.slots)
      if (x.thread.exitedNow && x.queued === 0) x.thread = new ReaderThread(this.path, this.pragmas);
    const load = (x: Slot) => x.queued + (x.thread.overdue ? this.slots.length * 1000 : 0);
    const slot = this.slots.reduce((a, b) => (load(b) < load(a) ? b : a));
    const run = async (): Promise<T> => {
      const thread = slot.thread;
      const statement = (sql: string, params: readonly unknown[] = []) =>
        this.answer(slot, thread, sql, sqliteParams(params), deadline);
      const q: Queryable = {
        all: async <R>(sql: string, params?: readonly unknown[]) => (await statement(sql, params)) as R[],
        run: async (): Promise<RunResult> => {
          throw new Error("a read-only transaction cannot write");
        },
      };
      try {
        // Inside the try: a BEGIN that met its deadline still reaches the thread, and the COMMIT must follow it.
        await statement("BEGIN");
        return await fn(q);
      } finally {
        // A replaced thread took its transaction with it. COMMIT is not awaited: the thread runs it before the
        // next transaction's BEGIN anyway, and a thread kept busy past a deadline (see replace) must not hold
        // the queue behind it; each read behind it waits at most until its own deadline.
        if (thread === slot.thread) thread.query("COMMIT", []).catch(() => undefined);
      }
    };
    slot.queued++;
    const p = slot.chain.then(run, run).finally(() => slot.queued--);
    slot.chain = p.catch(() => undefined);
    return p;
  }

  /** A statement's rows, or DeadlineExceeded at the deadline, after which that thread is replaced. */
  private answer(
    slot: Slot,
    thread: ReaderThread,
    sql: string,
    params: readonly unknown[],
    deadline: number | undefined,
  ): Promise<unknown[]> {
    if (thread !== slot.thread) return Promise.reject(new DeadlineExceeded());
    // Past its deadline while it queued: refused without touching a healthy thread.
    if (deadline !== undefined && Date.now() >= deadline) return Promise.reject(new DeadlineExceeded());
    const rows = thread.query(sql, params);
    if (deadline === undefined) return rows;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => {
          if (!this.replace(slot, thread) && thread === slot.thread) {
            thread.overdue = true;
            void rows.catch(() => undefined).finally(() => (thread.overdue = false));
          }
          reject(new DeadlineExceeded());
        },
        Math.max(0, deadline - Date.now()),
      );
      rows.then(
        (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        (err) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  /** Whether `thread` was replaced: not when it already was, nor when MAX_RETIRING threads are finishing. */
  private replace(slot: Slot, thread: ReaderThread): boolean {
    if (thread !== slot.thread || this.retiring >= this.maxRetiring) return false;
    slot.thread = new ReaderThread(this.path, this.pragmas);
    this.retiring++;
    void thread.exited.then(() => this.retiring--);
    void thread.worker.terminate();
    return true;
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.chain));
    await Promise.all(this.slots.map((s) => s.thread.worker.terminate()));
  }
}
