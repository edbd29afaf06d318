/** The app store: SQL behind a circuit breaker, one transaction per SCIM request. */
import type { Logger } from "pino";
import type { Metrics } from "../observability/metrics.js";
import type { ResourceSchema } from "../scim/model/schema.js";
import { AuditRepo } from "./audit.js";
import { type BreakerOptions, StoreBreaker } from "./breaker.js";
import type { Db, Queryable } from "./db.js";
import { MysqlDb } from "./db-mysql.js";
import { SqliteDb } from "./db-sqlite.js";
import { storeEndpoint } from "./errors.js";
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
    this.users = new UserRepo(
      q,
      userSchema,
      custom,
      forUpdate,
      db.dialect === "mysql" ? "LENGTH(u.doc)" : "LENGTH(CAST(u.doc AS BLOB))",
    );
    this.groups = new GroupRepo(q, forUpdate, db.dialect === "mysql" ? "INSERT IGNORE" : "INSERT OR IGNORE");
    this.audit = new AuditRepo(q);
    this.guards = new GuardRepo(q, db.dialect);
  }
}

/** Test-only hooks into a transaction's life; production code never sets them. */
export interface StoreTestHooks {
  /** Runs inside an agent write's transaction, right after its fencing check passed. */
  afterFenceCheck?: (token: number, deadline: number) => Promise<void>;
}

export class AppStore {
  readonly testHooks: StoreTestHooks = {};

  private constructor(
    readonly db: Db,
    readonly breaker: StoreBreaker,
    private readonly metrics: Metrics,
    private readonly userSchema: ResourceSchema,
    private readonly custom: CustomColumn[],
    readonly kind: "mysql" | "sqlite",
  ) {}

  /** `logger`: where the breaker's transitions and the store's outages are logged (none: not logged). */
  static async open(
    opts: StoreOptions,
    userSchema: ResourceSchema,
    metrics: Metrics,
    logger?: Logger,
  ): Promise<AppStore> {
    const db: Db = opts.url.startsWith("mysql:")
      ? new MysqlDb({
          url: opts.url,
          poolSize: opts.mysqlPoolSize,
          queryTimeoutMs: opts.queryTimeoutMs,
          connectTimeoutMs: 10_000,
          idleTransactionTimeoutS: Math.max(1, Math.ceil(opts.breaker.timeoutMs / 1000)),
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
      new StoreBreaker(
        opts.breaker,
        metrics,
        "store",
        logger
          ? { logger: logger.child({ component: "store" }), endpoint: storeEndpoint(opts.url) }
          : undefined,
      ),
      metrics,
      userSchema,
      opts.customColumns,
      db.dialect,
    );
  }

  /**
   * Runs `fn` in one transaction, through the breaker; it commits only if `fn` resolves in time. With a guard,
   * the fencing check, the replay check and the recording of the response share that transaction; `answer`
   * (the write's own response, src/scim/responses.ts) gives what is recorded.
   */
  async run<T>(
    operation: string,
    fn: (tx: StoreTx) => Promise<T>,
    opts: { readOnly?: boolean; guard?: WriteGuard | undefined; answer?: (out: T) => StoredResponse } = {},
  ): Promise<T> {
    const { guard, answer } = opts;
    if (guard?.idempotencyKey !== undefined && !answer)
      throw new Error(`${operation}: a write with an Idempotency-Key needs the response to record`);
    return this.transact(operation, guard?.fencingToken, opts.readOnly ?? false, async (tx) => {
      if (guard) {
        await tx.guards.checkReplay(guard);
        await tx.guards.claim(guard, new Date().toISOString());
      }
      const out = await fn(tx);
      if (guard && answer) await tx.guards.record(guard, answer(out));
      return out;
    });
  }

  /**
   * Runs a batch of writes in one transaction behind one fencing check, whose shared lock covers them all until
   * commit. The batch keeps its own idempotency records (GuardRepo.priorUses and recordMany).
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
    const deadline = Date.now() + this.breaker.opts.timeoutMs;
    try {
      return await this.breaker.fire(() =>
        this.db.transaction(
          async (q) => {
            const tx = new StoreTx(q, this.db, this.userSchema, this.custom);
            if (fencingToken !== undefined) {
              // In the write's own transaction: a write that fails moves nothing, the fence included.
              await tx.guards.admit(fencingToken, new Date().toISOString());
              await this.testHooks.afterFenceCheck?.(fencingToken, deadline);
            }
            return fn(tx);
          },
          { readOnly, deadline },
        ),
      );
    } finally {
      end();
    }
  }

  /**
   * A new term's explicit raise, before its first read: the exclusive lock waits for the older term's writes in
   * flight (which hold shared locks on the fence) and shuts out any that come later. Returns the stored token.
   */
  async raiseFence(token: number): Promise<number> {
    return this.run("fence.raise", (tx) => tx.guards.raise(token, new Date().toISOString()));
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

  /** The readiness check's ping, which also tells the store's reachability (an idle node notices an outage). */
  async ping(): Promise<void> {
    await this.breaker.reachability.watch(this.db.ping());
  }

  async close(): Promise<void> {
    this.breaker.shutdown();
    await this.db.close();
  }
}
