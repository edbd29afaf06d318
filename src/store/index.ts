/** The app store: SQL behind a circuit breaker, one transaction per SCIM request. */
import type { Metrics } from "../observability/metrics.js";
import type { ResourceSchema } from "../scim/schema.js";
import { AuditRepo } from "./audit.js";
import { type BreakerOptions, StoreBreaker } from "./breaker.js";
import type { Db, Queryable } from "./db.js";
import { MysqlDb } from "./db-mysql.js";
import { SqliteDb } from "./db-sqlite.js";
import { GroupRepo } from "./groups.js";
import { type ColumnType, ensureColumns, migrate } from "./migrations.js";
import { type CustomColumn, UserRepo } from "./users.js";

export interface StoreOptions {
  /** `mysql://user:pass@host:port/db` or `sqlite:PATH`. */
  url: string;
  mysqlPoolSize: number;
  queryTimeoutMs: number;
  breaker: BreakerOptions;
  customColumns: (CustomColumn & { type: ColumnType })[];
}

/** What one request's transaction can reach. */
export class StoreTx {
  readonly users: UserRepo;
  readonly groups: GroupRepo;
  readonly audit: AuditRepo;

  constructor(q: Queryable, db: Db, userSchema: ResourceSchema, custom: CustomColumn[]) {
    const forUpdate = db.dialect === "mysql" ? " FOR UPDATE" : "";
    this.users = new UserRepo(q, userSchema, custom, forUpdate);
    this.groups = new GroupRepo(q, forUpdate, (table, cols, n) => {
      const values = Array.from({ length: n }, () => `(${cols.map(() => "?").join(", ")})`).join(", ");
      return db.dialect === "mysql"
        ? `INSERT IGNORE INTO ${table} (${cols.join(", ")}) VALUES ${values}`
        : `INSERT OR IGNORE INTO ${table} (${cols.join(", ")}) VALUES ${values}`;
    });
    this.audit = new AuditRepo(q);
  }
}

export class AppStore {
  private constructor(
    readonly db: Db,
    readonly breaker: StoreBreaker,
    private readonly metrics: Metrics,
    private readonly userSchema: ResourceSchema,
    private readonly custom: CustomColumn[],
    readonly kind: "mysql" | "sqlite",
  ) {}

  static async open(opts: StoreOptions, userSchema: ResourceSchema, metrics: Metrics): Promise<AppStore> {
    const db: Db = opts.url.startsWith("mysql:")
      ? new MysqlDb({
          url: opts.url,
          poolSize: opts.mysqlPoolSize,
          queryTimeoutMs: opts.queryTimeoutMs,
          connectTimeoutMs: 10_000,
        })
      : new SqliteDb(opts.url.slice("sqlite:".length));
    try {
      await migrate(db, (q) =>
        ensureColumns(
          db,
          q,
          opts.customColumns.map((c) => ({ name: c.column, type: c.multiValued ? "json" : c.type })),
        ),
      );
    } catch (err) {
      await db.close().catch(() => undefined);
      throw err;
    }
    return new AppStore(
      db,
      new StoreBreaker(opts.breaker, metrics),
      metrics,
      userSchema,
      opts.customColumns,
      db.dialect,
    );
  }

  /** Runs `fn` in one transaction, through the breaker; it commits only if `fn` resolves in time. */
  async run<T>(
    operation: string,
    fn: (tx: StoreTx) => Promise<T>,
    opts: { readOnly?: boolean } = {},
  ): Promise<T> {
    const end = this.metrics.storeQueryDuration.startTimer({ operation });
    try {
      return await this.breaker.fire(() =>
        this.db.transaction((q) => fn(new StoreTx(q, this.db, this.userSchema, this.custom)), {
          readOnly: opts.readOnly ?? false,
          deadline: Date.now() + this.breaker.opts.timeoutMs,
        }),
      );
    } finally {
      end();
    }
  }

  async ping(): Promise<void> {
    await this.db.ping();
  }

  async close(): Promise<void> {
    this.breaker.shutdown();
    await this.db.close();
  }
}
