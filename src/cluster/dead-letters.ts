/** Events that can never apply: recorded with the reason, never dropped silently, visible in /status. */
import { appendFileSync, mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Etcd3 } from "etcd3";
import { deadline } from "./etcd.js";

export interface DeadLetter {
  eventId: string;
  eventType: string;
  published: string;
  subject: string;
  reason: string;
  at: string;
}

export interface DeadLetters {
  record(d: DeadLetter): Promise<void>;
  /** The most recent ones, newest first, and the total. */
  recent(limit: number): Promise<{ total: number; items: DeadLetter[] }>;
}

export class EtcdDeadLetters implements DeadLetters {
  constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
  ) {}

  async record(d: DeadLetter): Promise<void> {
    await this.client
      .put(`${this.prefix}${d.published}/${d.eventId}`)
      .value(JSON.stringify(d))
      .options(deadline(5000))
      .exec();
  }

  async recent(limit: number): Promise<{ total: number; items: DeadLetter[] }> {
    const total = Number(await this.client.getAll().prefix(this.prefix).options(deadline(2000)).count());
    const items = await this.client
      .getAll()
      .prefix(this.prefix)
      .sort("Key", "Descend")
      .limit(limit)
      .options(deadline(2000))
      .strings();
    return { total, items: Object.values(items).map((v) => JSON.parse(v) as DeadLetter) };
  }
}

export class FileDeadLetters implements DeadLetters {
  constructor(private readonly file: string) {}

  async record(d: DeadLetter): Promise<void> {
    mkdirSync(dirname(this.file), { recursive: true });
    appendFileSync(this.file, `${JSON.stringify(d)}\n`);
  }

  async recent(limit: number): Promise<{ total: number; items: DeadLetter[] }> {
    let lines: string[] = [];
    try {
      lines = readFileSync(this.file, "utf8").split("\n").filter(Boolean);
    } catch {
      // none yet
    }
    return {
      total: lines.length,
      items: lines
        .slice(-limit)
        .reverse()
        .map((l) => JSON.parse(l) as DeadLetter),
    };
  }
}
