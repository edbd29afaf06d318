/** The two SQL drivers behind one small interface: mysql2 for production, better-sqlite3 as the embedded default. */
export interface RunResult {
  changes: number;
  lastId: number;
}

export interface Queryable {
  all<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  run(sql: string, params?: readonly unknown[]): Promise<RunResult>;
}

export interface TxOptions {
  readOnly?: boolean;
  /** Epoch ms after which the transaction rolls back instead of committing. */
  deadline?: number;
}

export type Dialect = "mysql" | "sqlite";

export interface Db {
  readonly dialect: Dialect;
  transaction<T>(fn: (q: Queryable) => Promise<T>, opts?: TxOptions): Promise<T>;
  /** Runs `fn` holding a lock that other nodes' migrations respect. */
  withMigrationLock<T>(fn: (q: Queryable) => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export class DeadlineExceeded extends Error {
  constructor() {
    super("the store transaction ran past its deadline and was rolled back");
    this.name = "DeadlineExceeded";
  }
}

export function checkDeadline(opts: TxOptions | undefined): void {
  if (opts?.deadline !== undefined && Date.now() > opts.deadline) throw new DeadlineExceeded();
}

/** Values per `IN (…)` list: well under SQLite's bound-parameter limit. */
export const IN_CHUNK = 500;

export function placeholders(n: number): string {
  return Array.from({ length: n }, () => "?").join(", ");
}

/** Runs `${head} (…)` with `values` as the `IN` list, IN_CHUNK at a time, and returns all the rows. */
export async function allIn<T>(q: Queryable, head: string, values: readonly unknown[]): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < values.length; i += IN_CHUNK) {
    const chunk = values.slice(i, i + IN_CHUNK);
    out.push(...(await q.all<T>(`${head} (${placeholders(chunk.length)})`, chunk)));
  }
  return out;
}

/** Rows per multi-row INSERT: well under SQLite's bound-parameter limit and MySQL's packet size. */
const ROWS_PER_INSERT = 200;

/**
 * Runs `${head} VALUES (…), (…)` for `rows` (each a list of bound values), ROWS_PER_INSERT at a time, and
 * returns how many rows it inserted.
 */
export async function insertRows(q: Queryable, head: string, rows: unknown[][]): Promise<number> {
  let changes = 0;
  for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
    const chunk = rows.slice(i, i + ROWS_PER_INSERT);
    const tuple = `(${placeholders(chunk[0]!.length)})`;
    changes += (await q.run(`${head} VALUES ${chunk.map(() => tuple).join(", ")}`, chunk.flat())).changes;
  }
  return changes;
}
