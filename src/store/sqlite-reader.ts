/**
 * The embedded store's reads, in a worker thread. better-sqlite3 runs each statement synchronously on the thread
 * that calls it; on the main thread one heavy read (a hostile filter, a sort over many users) would stop
 * everything else, `/healthz` included, for as long as it runs. Here the main thread only waits for an answer.
 *
 * A statement that outlives its transaction's deadline is answered DeadlineExceeded at the deadline, and its
 * worker is replaced at once, so later reads do not queue behind it. better-sqlite3 offers no sqlite3_interrupt,
 * so the replaced worker finishes that statement before it exits: its cost is bounded by the query-cost cap
 * (src/scim/list.ts), not cut short. The worker's code is plain JavaScript in a string, so it runs the same from
 * the TypeScript sources and from the build.
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
    this.worker.on("exit", () => this.failAll(new Error("the SQLite reader thread exited")));
  }

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

export class SqliteReader {
  private thread: ReaderThread;
  /** One read transaction at a time: its statements share the worker connection's snapshot. */
  private chain: Promise<unknown> = Promise.resolve();

  /** `pragmas`: the ones every connection of the store runs (src/store/db-sqlite.ts). */
  constructor(
    private readonly path: string,
    private readonly pragmas: readonly string[],
  ) {
    this.thread = new ReaderThread(path, pragmas);
  }

  transaction<T>(fn: (q: Queryable) => Promise<T>, deadline: number | undefined): Promise<T> {
    const run = async (): Promise<T> => {
      const thread = this.thread;
      const statement = (sql: string, params: readonly unknown[] = []) =>
        this.answer(thread, sql, sqliteParams(params), deadline);
      const q: Queryable = {
        all: async <R>(sql: string, params?: readonly unknown[]) => (await statement(sql, params)) as R[],
        run: async (): Promise<RunResult> => {
          throw new Error("a read-only transaction cannot write");
        },
      };
      await statement("BEGIN");
      try {
        return await fn(q);
      } finally {
        // A replaced thread took its transaction with it. COMMIT ends a read at once: no deadline on it.
        if (thread === this.thread) await this.answer(thread, "COMMIT", [], undefined).catch(() => undefined);
      }
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** A statement's rows, or DeadlineExceeded at the deadline, after which that thread is replaced. */
  private answer(
    thread: ReaderThread,
    sql: string,
    params: readonly unknown[],
    deadline: number | undefined,
  ): Promise<unknown[]> {
    if (thread !== this.thread) return Promise.reject(new DeadlineExceeded());
    // Past its deadline while it queued: refused without touching a healthy thread.
    if (deadline !== undefined && Date.now() >= deadline) return Promise.reject(new DeadlineExceeded());
    const rows = thread.query(sql, params);
    if (deadline === undefined) return rows;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => {
          if (thread === this.thread) {
            this.thread = new ReaderThread(this.path, this.pragmas);
            void thread.worker.terminate();
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

  async close(): Promise<void> {
    await this.chain;
    await this.thread.worker.terminate();
  }
}
