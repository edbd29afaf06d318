import { chmodSync, closeSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { checkDeadline, type Db, type Queryable, type RunResult, type TxOptions } from "./db.js";
import { UniqueViolation } from "./errors.js";
import { SqliteReader, sqliteParams } from "./sqlite-reader.js";

type Stmt = Database.Statement<unknown[]>;

function wrap(conn: Database.Database): Queryable {
  const cache = new Map<string, Stmt>();
  const prepare = (sql: string): Stmt => {
    let s = cache.get(sql);
    if (!s) {
      s = conn.prepare(sql);
      if (cache.size > 500) cache.clear();
      cache.set(sql, s);
    }
    return s;
  };
  return {
    async all<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
      return prepare(sql).all(...sqliteParams(params)) as T[];
    },
    async run(sql: string, params: readonly unknown[] = []): Promise<RunResult> {
      try {
        const r = prepare(sql).run(...sqliteParams(params));
        return { changes: r.changes, lastId: Number(r.lastInsertRowid) };
      } catch (err) {
        const e = err as { code?: string; message?: string };
        if (e.code === "SQLITE_CONSTRAINT_UNIQUE" || e.code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
          throw new UniqueViolation(e.message ?? "unique");
        }
        throw err;
      }
    },
  };
}

/**
 * What every connection runs, the reader thread's too. LIKE must be case-sensitive: case-insensitive matching
 * goes through the lowercased *_ci columns.
 */
export const CONNECTION_PRAGMAS = ["busy_timeout = 5000", "foreign_keys = ON", "case_sensitive_like = ON"];

function openWriter(path: string): Database.Database {
  const conn = new Database(path);
  for (const p of CONNECTION_PRAGMAS) conn.pragma(p);
  conn.pragma("journal_mode = WAL");
  conn.pragma("synchronous = NORMAL");
  return conn;
}

/**
 * better-sqlite3 is synchronous and one connection carries one transaction, so writing transactions are
 * serialized through a promise chain (SQLite has a single writer anyway). Read-only work goes to a second
 * connection, in a worker thread (src/store/sqlite-reader.ts), which WAL gives a consistent snapshot without
 * waiting for the writer; a heavy read never stops the event loop.
 */
export class SqliteDb implements Db {
  readonly dialect = "sqlite" as const;
  private readonly writer: Database.Database;
  /** Undefined for an in-memory database, which only its own connection can see. */
  private readonly reader: SqliteReader | undefined;
  private readonly w: Queryable;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(path: string) {
    if (path !== ":memory:") {
      // The file holds personal data and password hashes: a private directory, a file only the owner reads.
      // SQLite creates the -wal and -shm files with the database file's mode.
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      closeSync(openSync(path, "a", 0o600));
      chmodSync(path, 0o600);
    }
    this.writer = openWriter(path);
    this.reader = path === ":memory:" ? undefined : new SqliteReader(path, CONNECTION_PRAGMAS);
    this.w = wrap(this.writer);
  }

  transaction<T>(fn: (q: Queryable) => Promise<T>, opts?: TxOptions): Promise<T> {
    if (opts?.readOnly && this.reader) return this.reader.transaction(fn, opts.deadline);
    const run = async (): Promise<T> => {
      this.writer.exec("BEGIN IMMEDIATE");
      try {
        const out = await fn(this.w);
        checkDeadline(opts);
        this.writer.exec("COMMIT");
        return out;
      } catch (err) {
        if (this.writer.inTransaction) this.writer.exec("ROLLBACK");
        throw err;
      }
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  withMigrationLock<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    // BEGIN IMMEDIATE takes SQLite's write lock, which serializes migrations across processes.
    return this.transaction(fn);
  }

  async ping(): Promise<void> {
    this.writer.prepare("SELECT 1").get();
  }

  async close(): Promise<void> {
    await this.chain;
    await this.reader?.close();
    this.writer.close();
  }
}
