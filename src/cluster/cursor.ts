/**
 * Where the agent is in the event stream. In a cluster it lives in etcd and moves only through a transaction
 * guarded by `create_revision(campaign key) == term`, so a deposed primary cannot move it. A standalone node
 * (no etcd) keeps it in a file in its data directory.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Etcd3 } from "etcd3";
import { deadline } from "./etcd.js";

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
  /** Moves the cursor; false means this node may no longer move it (it was deposed). */
  advance(value: CursorValue, guard: { campaignKey: string; term: number } | undefined): Promise<boolean>;
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

  async advance(
    value: CursorValue,
    guard: { campaignKey: string; term: number } | undefined,
  ): Promise<boolean> {
    if (!guard) return false;
    const res = await this.client
      .if(guard.campaignKey, "Create", "==", guard.term)
      .then(this.client.put(this.key).value(JSON.stringify(value)))
      .options(deadline(5000))
      .commit();
    return res.succeeded;
  }
}

export class FileCursor implements Cursor {
  constructor(private readonly file: string) {}

  async read(): Promise<CursorValue | undefined> {
    try {
      return JSON.parse(readFileSync(this.file, "utf8")) as CursorValue;
    } catch {
      return undefined;
    }
  }

  async advance(value: CursorValue): Promise<boolean> {
    mkdirSync(dirname(this.file), { recursive: true });
    // Write then rename, so a crash leaves the old cursor or the new one, never half of one.
    writeFileSync(`${this.file}.tmp`, JSON.stringify(value));
    renameSync(`${this.file}.tmp`, this.file);
    return true;
  }
}
