/** The app store: SQL behind a circuit breaker, one transaction per SCIM request. */
import type { Metrics } from "../observability/metrics.js";
import type { ResourceSchema } from "../scim/schema.js";
import { AuditRepo } from "./audit.js";
import { type BreakerOptions, StoreBreaker } from "./breaker.js";
import type { Db, Queryable } from "./db.js";
import { MysqlDb } from "./db-mysql.js";
import { SqliteDb } from "./db-sqlite.js";
import { GroupRepo } from "./groups.js";
import { GuardRepo, type StoredResponse, type WriteGuard } from "./guards.js";
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
  readonly guards: GuardRepo;

  constructor(q: Queryable, db: Db, userSchema: ResourceSchema, custom: CustomColumn[]) {
    const forUpdate = db.dialect === "mysql" ? " FOR UPDATE" : "";
    this.users = new UserRepo(q, userSchema, custom, forUpdate);
    this.groups = new GroupRepo(q, forUpdate, db.dialect === "mysql" ? "INSERT IGNORE" : "INSERT OR IGNORE");
    this.audit = new AuditRepo(q);
    this.guards = new GuardRepo(q, db.dialect);
  }
}

export class AppStore {
  /** The highest fencing token this node has already raised the stored fence to. */
  private fenceRaisedTo = 0;

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

  /**
   * Runs `fn` in one transaction, through the breaker; it commits only if `fn` resolves in time. With a guard,
   * the fencing check, the replay check and the recording of the response share that transaction.
   */
  async run<T>(
    operation: string,
    fn: (tx: StoreTx) => Promise<T>,
    opts: { readOnly?: boolean; guard?: WriteGuard | undefined } = {},
  ): Promise<T> {
    const guard = opts.guard;
    return this.transact(operation, guard?.fencingToken, opts.readOnly ?? false, async (tx) => {
      if (guard) {
        await tx.guards.checkReplay(guard);
        await tx.guards.claim(guard, new Date().toISOString());
      }
      const out = await fn(tx);
      if (guard) await tx.guards.record(guard, guard.respond(out));
      return out;
    });
  }

  /**
   * Runs a batch of writes in one transaction behind one fencing check, whose shared lock covers them all until
   * commit. The batch keeps its own idempotency records (GuardRepo.findMany and recordMany).
   */
  async runBatch<T>(
    operation: string,
    fencingToken: number | undefined,
    fn: (tx: StoreTx) => Promise<T>,
  ): Promise<T> {
    return this.transact(operation, fencingToken, false, fn);
  }

  private async transact<T>(
    operation: string,
    fencingToken: number | undefined,
    readOnly: boolean,
    fn: (tx: StoreTx) => Promise<T>,
  ): Promise<T> {
    const end = this.metrics.storeQueryDuration.startTimer({ operation });
    try {
      if (fencingToken !== undefined && fencingToken > this.fenceRaisedTo)
        await this.raiseFence(fencingToken);
      return await this.breaker.fire(() =>
        this.db.transaction(
          async (q) => {
            const tx = new StoreTx(q, this.db, this.userSchema, this.custom);
            if (fencingToken !== undefined) await tx.guards.checkFence(fencingToken);
            return fn(tx);
          },
          { readOnly, deadline: Date.now() + this.breaker.opts.timeoutMs },
        ),
      );
    } finally {
      end();
    }
  }

  /**
   * The first write of a new term raises the stored fence in a transaction of its own: its exclusive lock waits
   * for the older term's in-flight writes (which hold shared locks) and shuts out any that come later.
   */
  private async raiseFence(token: number): Promise<void> {
    await this.breaker.fire(() =>
      this.db.transaction((q) => new GuardRepo(q, this.db.dialect).raise(token, new Date().toISOString()), {
        deadline: Date.now() + this.breaker.opts.timeoutMs,
      }),
    );
    this.fenceRaisedTo = Math.max(this.fenceRaisedTo, token);
  }

  async findIdempotent(key: string): Promise<{ signature: string; response: StoredResponse } | undefined> {
    return this.run("idempotency.find", (tx) => tx.guards.find(key), { readOnly: true });
  }

  /** Forgets idempotency keys recorded before `before`, in batches. */
  async purgeIdempotency(before: Date): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.run("idempotency.purge", (tx) => tx.guards.purge(before.toISOString(), 5000));
      total += n;
      if (n < 5000) return total;
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
