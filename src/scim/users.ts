/** User operations: validation and PATCH in memory, one store transaction per request. */

import { UniqueViolation } from "../store/errors.js";
import { compileUserFilter, userSortExpr } from "../store/filter-sql.js";
import { Replayed, type StoredResponse } from "../store/guards.js";
import type { AppStore } from "../store/index.js";
import type { UserRecord } from "../store/users.js";
import { auditBase, changedAttributes, type ListResult, type RequestContext } from "./context.js";
import { type ListParams, listResponse, planList } from "./list.js";
import type { Resource } from "./model/attribute-path.js";
import { badRequest, conflict, notFound, ScimError } from "./model/errors.js";
import type { ResourceSchema } from "./model/schema.js";
import { hashPassword } from "./password.js";
import { applyPatch, readPatchBody } from "./patch.js";
import type { Projection } from "./projection.js";
import { readOne } from "./read.js";
import { ifMatchHolds, render } from "./render.js";
import { checkRequired, normalizeBody } from "./resource.js";
import { createdResponse, deletedResponse, okResponse, type Written } from "./responses.js";

export const MAX_KEY_LENGTH = 255;

/** libuv's thread pool has 4 threads unless UV_THREADPOOL_SIZE says otherwise; scrypt takes one each. */
const HASHES_AT_ONCE = Math.max(1, Number(process.env.UV_THREADPOOL_SIZE) || 4);

/**
 * Runs `fn` over `items`, at most `limit` at once. Hand-written (ten lines) rather than a dependency: the agent's
 * forEachLimit lives above this layer, and nothing here needs its cancellation.
 */
async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** One create of a batch, with its own context (request id, audit, guard). */
export interface BatchItem {
  body: unknown;
  ctx: RequestContext;
}

export type BatchOutcome = { response: StoredResponse; replayed: boolean } | { error: unknown };

/** A batch that cannot be decided as one (a key twice, or a concurrent writer took a key or a userName). */
export class BatchConflict extends Error {
  constructor(reason: string) {
    super(`the batch must run one by one: ${reason}`);
    this.name = "BatchConflict";
  }
}

/**
 * On a replace or patch only the values that change are checked: a user stored before a rule existed (a
 * trailing space, say) can still be updated, or deactivated, without first repairing it.
 */
function checkColumns(doc: Resource, previous?: Resource): void {
  const changed = (attr: string) => previous === undefined || previous[attr] !== doc[attr];
  if (changed("userName")) checkUserName(doc);
  if (changed("externalId") && typeof doc.externalId === "string" && doc.externalId.length > MAX_KEY_LENGTH) {
    throw badRequest("invalidValue", `externalId is longer than ${MAX_KEY_LENGTH} characters`);
  }
}

function checkUserName(doc: Resource): void {
  if (String(doc.userName).length > MAX_KEY_LENGTH)
    throw badRequest("invalidValue", `userName is longer than ${MAX_KEY_LENGTH} characters`);
  // MySQL's unique index ignores trailing spaces ("bob " clashes with "bob") and SQLite's does not: refused on
  // both, so the two stores agree on which userNames exist.
  if (/^\s|\s$/.test(String(doc.userName)))
    throw badRequest("invalidValue", "userName may not begin or end with white space");
}

function preconditionFailed(id: string): ScimError {
  return new ScimError(412, undefined, `the user ${id} has changed since the version in If-Match`);
}

function takenUserName(doc: Resource): ScimError {
  return conflict(`userName '${String(doc.userName)}' is already taken`);
}

export class UserService {
  constructor(
    private readonly store: AppStore,
    readonly rs: ResourceSchema,
    private readonly passwordSync: boolean,
  ) {}

  private async passwordHash(password: string | undefined): Promise<string | undefined> {
    // Okta sends a placeholder password with every create; without password sync it is dropped unread.
    return password !== undefined && this.passwordSync ? hashPassword(password) : undefined;
  }

  private async renderMany(
    recs: UserRecord[],
    ctx: RequestContext,
    projection: Projection,
    groupsOf: (ids: string[]) => Promise<Map<string, Resource[]>>,
  ) {
    const groups = projection.wants("groups")
      ? await groupsOf(recs.map((r) => r.id))
      : new Map<string, Resource[]>();
    return recs.map((r) => {
      const g = groups.get(r.id);
      const groupAttr = g?.length
        ? {
            groups: g.map((x) => ({
              ...x,
              $ref: `${ctx.baseUrl}/Groups/${String(x.value)}`,
              type: "direct",
            })),
          }
        : {};
      return projection.apply(render(this.rs, r, ctx.baseUrl, groupAttr));
    });
  }

  async get(id: string, ctx: RequestContext, projection: Projection): Promise<Written> {
    return readOne(
      this.store,
      "users.get",
      (tx) => tx.users.findById(id),
      `user ${id} not found`,
      async (tx, rec) => (await this.renderMany([rec], ctx, projection, (ids) => tx.users.groupsOf(ids)))[0]!,
    );
  }

  async list(params: ListParams, ctx: RequestContext): Promise<ListResult> {
    const { projection, where, order } = planList(this.rs, params, compileUserFilter, userSortExpr);
    return this.store.run(
      "users.list",
      async (tx) => {
        const total = await tx.users.count(where);
        const render = (recs: UserRecord[]) =>
          this.renderMany(recs, ctx, projection, (ids) => tx.users.groupsOf(ids));
        const offset = params.startIndex - 1;
        const max = params.maxPageBytes;
        if (params.count === 0) return listResponse(total, params.startIndex, []);
        if (max === undefined)
          return listResponse(
            total,
            params.startIndex,
            await render(
              await tx.users.list({
                where,
                order,
                descending: params.descending,
                offset,
                limit: params.count,
              }),
            ),
          );
        // Sizes first, then the documents a chunk of at most `max` stored bytes at a time, each rendered
        // (projected) before the next loads: memory stays near `max`, and a page of users whose large
        // attributes the request leaves out is not cut by their stored size.
        const sizes = await tx.users.listSizes({
          where,
          order,
          descending: params.descending,
          offset,
          limit: params.count,
        });
        const page: Record<string, unknown>[] = [];
        let used = 0;
        for (let i = 0; i < sizes.length; ) {
          let chunkBytes = 0;
          let j = i;
          while (j < sizes.length && (j === i || chunkBytes + sizes[j]!.bytes <= max))
            chunkBytes += sizes[j++]!.bytes;
          for (const r of await render(await tx.users.bySeq(sizes.slice(i, j).map((x) => x.seq)))) {
            const bytes = Buffer.byteLength(JSON.stringify(r));
            if (page.length > 0 && used + bytes > max) return listResponse(total, params.startIndex, page);
            page.push(r);
            used += bytes;
          }
          i = j;
        }
        return listResponse(total, params.startIndex, page);
      },
      { readOnly: true },
    );
  }

  async create(body: unknown, ctx: RequestContext, projection: Projection): Promise<Written> {
    const { resource, password } = normalizeBody(this.rs, body, { create: true });
    checkRequired(this.rs, resource);
    checkColumns(resource);
    const passwordHash = await this.passwordHash(password);
    const now = new Date().toISOString();
    const id = crypto.randomUUID();
    try {
      return await this.store.run(
        "users.create",
        async (tx) => {
          const rec = await tx.users.insert({
            id,
            doc: resource,
            now,
            ...(passwordHash ? { passwordHash } : {}),
          });
          await tx.audit.record({
            ...auditBase(ctx, now),
            action: "create",
            resourceType: "User",
            resourceId: id,
            attributes: [...Object.keys(resource), ...(password !== undefined ? ["password"] : [])].sort(),
          });
          return {
            resource: projection.apply(render(this.rs, rec, ctx.baseUrl)),
            version: rec.version,
            location: `${ctx.baseUrl}/Users/${id}`,
          };
        },
        { guard: ctx.guard, answer: createdResponse },
      );
    } catch (err) {
      if (err instanceof UniqueViolation) throw takenUserName(resource);
      throw err;
    }
  }

  /**
   * Creates many users in one transaction with a few multi-row statements (the /Bulk fast path). Each item
   * fails or succeeds as a POST of its own would: bad input, a taken userName or a reused key is that item's
   * error, and a key applied before answers with its recorded response. A clash it cannot decide here (a key
   * twice in the batch, or a concurrent writer) throws BatchConflict, and nothing of the batch is written.
   */
  async createMany(items: BatchItem[], projection: Projection): Promise<BatchOutcome[]> {
    const out: BatchOutcome[] = new Array(items.length);
    const now = new Date().toISOString();
    const ready: { i: number; item: BatchItem; doc: Resource; password?: string; hash?: string }[] = [];
    for (const [i, item] of items.entries()) {
      try {
        const { resource, password } = normalizeBody(this.rs, item.body, { create: true });
        checkRequired(this.rs, resource);
        checkColumns(resource);
        ready.push({ i, item, doc: resource, ...(password !== undefined ? { password } : {}) });
      } catch (err) {
        out[i] = { error: err };
      }
    }
    // scrypt runs on libuv's thread pool: hash a batch's passwords a few at a time, not one after another.
    await inParallel(ready, HASHES_AT_ONCE, async (r) => {
      const hash = await this.passwordHash(r.password);
      if (hash) r.hash = hash;
    });
    const keyed = ready.flatMap((r) =>
      r.item.ctx.guard?.idempotencyKey
        ? [{ idempotencyKey: r.item.ctx.guard.idempotencyKey, signature: r.item.ctx.guard.signature }]
        : [],
    );
    if (new Set(keyed.map((k) => k.idempotencyKey)).size !== keyed.length)
      throw new BatchConflict("an Idempotency-Key appears twice");
    const token = items.find((x) => x.ctx.guard?.fencingToken !== undefined)?.ctx.guard?.fencingToken;
    try {
      await this.store.runBatch("users.createMany", token, async (tx) => {
        const prior = await tx.guards.priorUses(keyed);
        const taken = await tx.users.takenUserNames(ready.map((r) => String(r.doc.userName).toLowerCase()));
        const writes: ((typeof ready)[number] & { id: string; response: StoredResponse })[] = [];
        for (const r of ready) {
          const used = r.item.ctx.guard?.idempotencyKey
            ? prior.get(r.item.ctx.guard.idempotencyKey)
            : undefined;
          if (used) {
            out[r.i] =
              used instanceof Replayed ? { response: used.response, replayed: true } : { error: used };
            continue;
          }
          const nameCi = String(r.doc.userName).toLowerCase();
          if (taken.has(nameCi)) {
            out[r.i] = { error: takenUserName(r.doc) };
            continue;
          }
          taken.add(nameCi);
          const id = crypto.randomUUID();
          const rec = { id, created: now, lastModified: now, version: 1, doc: r.doc };
          const response = createdResponse({
            location: `${r.item.ctx.baseUrl}/Users/${id}`,
            resource: projection.apply(render(this.rs, rec, r.item.ctx.baseUrl)),
            version: 1,
          });
          writes.push({ ...r, id, response });
          out[r.i] = { response, replayed: false };
        }
        await tx.guards.recordMany(
          writes.flatMap((w) =>
            w.item.ctx.guard?.idempotencyKey
              ? [
                  {
                    key: w.item.ctx.guard.idempotencyKey,
                    signature: w.item.ctx.guard.signature,
                    fencingToken: token,
                    response: w.response,
                  },
                ]
              : [],
          ),
          now,
        );
        await tx.users.insertMany(
          writes.map((w) => ({ id: w.id, doc: w.doc, now, ...(w.hash ? { passwordHash: w.hash } : {}) })),
        );
        await tx.audit.recordMany(
          writes.map((w) => ({
            ...auditBase(w.item.ctx, now),
            idempotencyKey: w.item.ctx.guard?.idempotencyKey,
            fencingToken: token,
            action: "create" as const,
            resourceType: "User" as const,
            resourceId: w.id,
            attributes: [...Object.keys(w.doc), ...(w.password !== undefined ? ["password"] : [])].sort(),
          })),
        );
      });
    } catch (err) {
      if (err instanceof UniqueViolation) throw new BatchConflict(err.message);
      throw err;
    }
    return out;
  }

  /** Loads the user for writing, checks If-Match, writes `next`, audits, and renders the result. */
  private async write(
    id: string,
    ctx: RequestContext,
    projection: Projection,
    action: "replace" | "patch",
    compute: (current: UserRecord) => { doc: Resource; password?: string | undefined },
    passwordHash: (pw: string | undefined) => Promise<string | undefined>,
  ): Promise<Written> {
    const now = new Date().toISOString();
    let attempted: Resource | undefined;
    try {
      return await this.store.run(
        `users.${action}`,
        async (tx) => {
          const current = await tx.users.findById(id, true);
          if (!current) throw notFound(`user ${id} not found`);
          if (!ifMatchHolds(ctx.ifMatch, current.version)) throw preconditionFailed(id);
          const { doc, password } = compute(current);
          attempted = doc;
          checkRequired(this.rs, doc);
          checkColumns(doc, current.doc);
          const hash = await passwordHash(password);
          const rec = await tx.users.update(current, {
            id,
            doc,
            now,
            ...(hash ? { passwordHash: hash } : {}),
          });
          const attributes = changedAttributes(current.doc, doc);
          if (password !== undefined) attributes.push("password");
          await tx.audit.record({
            ...auditBase(ctx, now),
            action,
            resourceType: "User",
            resourceId: id,
            attributes,
          });
          const [resource] = await this.renderMany([rec], ctx, projection, (ids) => tx.users.groupsOf(ids));
          return { resource: resource!, version: rec.version };
        },
        { guard: ctx.guard, answer: okResponse },
      );
    } catch (err) {
      if (err instanceof UniqueViolation && attempted) throw takenUserName(attempted);
      throw err;
    }
  }

  async replace(id: string, body: unknown, ctx: RequestContext, projection: Projection): Promise<Written> {
    const { resource, password } = normalizeBody(this.rs, body, { create: false });
    const passwordHash = await this.passwordHash(password);
    return this.write(
      id,
      ctx,
      projection,
      "replace",
      () => ({ doc: resource, password }),
      async () => passwordHash,
    );
  }

  async patch(id: string, body: unknown, ctx: RequestContext, projection: Projection): Promise<Written> {
    const ops = readPatchBody(body);
    // The password (if any) is known only after the PATCH runs against the stored user, so it is hashed
    // inside the transaction; PATCHes that carry one are rare (Okta's password push).
    return this.write(
      id,
      ctx,
      projection,
      "patch",
      (current) => {
        const r = applyPatch(this.rs, current.doc, ops);
        return { doc: r.resource, password: r.password };
      },
      (pw) => this.passwordHash(pw),
    );
  }

  async delete(id: string, ctx: RequestContext): Promise<void> {
    const now = new Date().toISOString();
    await this.store.run(
      "users.delete",
      async (tx) => {
        const current = await tx.users.findById(id, true);
        if (!current) throw notFound(`user ${id} not found`);
        if (!ifMatchHolds(ctx.ifMatch, current.version)) throw preconditionFailed(id);
        await tx.users.delete(current, now);
        await tx.audit.record({
          ...auditBase(ctx, now),
          action: "delete",
          resourceType: "User",
          resourceId: id,
          attributes: [],
        });
      },
      { guard: ctx.guard, answer: deletedResponse },
    );
  }
}
