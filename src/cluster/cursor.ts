/**
 * Where the agent is in the event stream. In a cluster it lives in etcd and moves only through a transaction
 * guarded by `create_revision(campaign key) == term`, so a deposed primary cannot move it. A standalone node
 * (no etcd) keeps it in a file in its data directory.
 *
 * The starting position is stored once, by the first primary, with a put-if-absent: a cluster that is stopped
 * before it applied anything, and started again later, goes on from where it first started, never from when
 * some process happened to start.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import type { Etcd3 } from "etcd3";
import { deadline } from "./etcd.js";
import type { Leadership } from "./leadership.js";

export interface CursorValue {
  /** The source's opaque position: for Okta, the `next` link of the last applied page. */
  position: string;
  /** Published time of the last applied event, for lag metrics and /status. */
  published?: string;
  updatedAt: string;
  term?: number;
}

export interface Cursor {
  read(): Promise<CursorValue | undefined>;
  /**
   * The stored position, after storing `initial` if there is none yet. Undefined when `lead` is no longer the
   * current term, which may then store nothing.
   */
  start(lead: Leadership, initial: CursorValue): Promise<CursorValue | undefined>;
  /** Moves the cursor; false means `lead` may no longer move it (its term is over). */
  advance(lead: Leadership, value: CursorValue): Promise<boolean>;
}

export class EtcdCursor implements Cursor {
  constructor(
    private readonly client: Etcd3,
    private readonly key: string,
  ) {}

  async read(): Promise<CursorValue | undefined> {
    const v = await this.client.get(this.key).options(deadline(5000)).string();
    return v ? (JSON.parse(v) as CursorValue) : undefined;
  }

  async start(lead: Leadership, initial: CursorValue): Promise<CursorValue | undefined> {
    if (!lead.campaignKey || lead.term === undefined) return undefined;
    const res = await this.client
      .if(this.key, "Create", "==", 0)
      .and(lead.campaignKey, "Create", "==", lead.term)
      .then(this.client.put(this.key).value(JSON.stringify(initial)))
      .else(this.client.get(this.key), this.client.get(lead.campaignKey))
      .options(deadline(5000))
      .commit();
    if (res.succeeded) return initial;
    const [stored, mine] = res.responses.map((r) => r.response_range?.kvs[0]);
    if (Number(mine?.create_revision ?? 0) !== lead.term) return undefined;
    return stored ? (JSON.parse(stored.value.toString()) as CursorValue) : undefined;
  }

  async advance(lead: Leadership, value: CursorValue): Promise<boolean> {
    if (!lead.campaignKey || lead.term === undefined || !lead.isCurrent()) return false;
    const res = await this.client
      .if(lead.campaignKey, "Create", "==", lead.term)
      .then(this.client.put(this.key).value(JSON.stringify(value)))
      .options(deadline(5000))
      .commit();
    return res.succeeded;
  }
}

export class FileCursor implements Cursor {
  constructor(private readonly file: string) {}

  async read(): Promise<CursorValue | undefined> {
    let text: string;
    try {
      text = readFileSync(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    try {
      return JSON.parse(text) as CursorValue;
    } catch {
      // Never start over silently: that would skip or replay the stream.
      throw new Error(
        `the agent cursor ${this.file} is not valid JSON; restore it or delete it to start anew`,
      );
    }
  }

  async start(lead: Leadership, initial: CursorValue): Promise<CursorValue | undefined> {
    const stored = await this.read();
    if (stored) return stored;
    if (!lead.isCurrent()) return undefined;
    this.write(initial);
    return initial;
  }

  async advance(lead: Leadership, value: CursorValue): Promise<boolean> {
    if (!lead.isCurrent()) return false;
    this.write(value);
    return true;
  }

  /** Write, sync, then rename, so a crash leaves the old cursor or the new one, never half of one. */
  private write(value: CursorValue): void {
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, JSON.stringify(value));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
  }
}
