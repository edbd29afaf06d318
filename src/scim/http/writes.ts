/**
 * The writes a route or a bulk operation runs (POST, PUT, PATCH, DELETE on /Users and /Groups), and how an
 * agent's write is answered: the response is recorded with its Idempotency-Key in the write's transaction, so a
 * replay answers byte for byte the same.
 */
import type { Metrics } from "../../observability/metrics.js";
import { IdempotencyRace, Replayed, type StoredResponse, type WriteGuard } from "../../store/guards.js";
import type { AppStore } from "../../store/index.js";
import type { RequestContext } from "../context.js";
import { ScimError } from "../errors.js";
import type { GroupService } from "../groups.js";
import { type ListLimits, readListParams } from "../list.js";
import { Projection } from "../projection.js";
import { etagOf } from "../render.js";
import type { UserService, Written } from "../users.js";

export type WriteMethod = "POST" | "PUT" | "PATCH" | "DELETE";
export type Endpoint = "/Users" | "/Groups";

export interface WriteOp {
  run(ctx: RequestContext): Promise<unknown>;
  respond(out: unknown): StoredResponse;
}

export interface Services {
  users: UserService;
  groups: GroupService;
}

export function createdResponse(w: Written): StoredResponse {
  return {
    status: 201,
    headers: { ETag: etagOf(w.version), Location: (w.resource.meta as { location: string }).location },
    body: w.resource,
  };
}

const withEtag = (status: number, out: Written): StoredResponse => ({
  status,
  headers: { ETag: etagOf(out.version) },
  body: out.resource,
});

/**
 * The operation for `method` on `endpoint` (with `id` unless it is a POST). `query` holds `attributes` and
 * `excludedAttributes`; a group PATCH answers 204 unless one of them asks for the group back, so a big
 * group's members are not echoed.
 */
export function writeOp(
  s: Services,
  limits: ListLimits,
  method: WriteMethod,
  endpoint: Endpoint,
  id: string | undefined,
  body: unknown,
  query: Record<string, unknown>,
): WriteOp {
  const svc = endpoint === "/Users" ? s.users : s.groups;
  const projection = () => {
    const p = readListParams(query, limits, false);
    return Projection.parse(svc.rs, p.attributes, p.excludedAttributes);
  };
  if (method === "POST") {
    return {
      run: (ctx) => svc.create(body, ctx, projection()),
      respond: (out) => createdResponse(out as Written),
    };
  }
  if (id === undefined) throw new ScimError(405, undefined, `${method} needs a resource id in the path`);
  if (method === "PUT")
    return {
      run: (ctx) => svc.replace(id, body, ctx, projection()),
      respond: (o) => withEtag(200, o as Written),
    };
  if (method === "DELETE")
    return { run: (ctx) => svc.delete(id, ctx), respond: () => ({ status: 204, headers: {} }) };
  if (svc === s.users)
    return {
      run: (ctx) => s.users.patch(id, body, ctx, projection()),
      respond: (o) => withEtag(200, o as Written),
    };
  const wantsBody = query.attributes !== undefined || query.excludedAttributes !== undefined;
  return {
    run: (ctx) => s.groups.patch(id, body, ctx, wantsBody ? projection() : undefined),
    respond: (o) => {
      const w = o as Partial<Written> & { version: number };
      return w.resource ? withEtag(200, w as Written) : { status: 204, headers: { ETag: etagOf(w.version) } };
    },
  };
}

/** Runs `op`; with a guard, a request applied before answers its recorded response instead. */
export async function runWrite(
  op: WriteOp,
  ctx: RequestContext,
  guard: Omit<WriteGuard, "respond"> | undefined,
  store: AppStore,
  metrics: Metrics,
): Promise<{ response: StoredResponse; replayed: boolean }> {
  if (guard) ctx.guard = { ...guard, respond: (out) => op.respond(out) };
  try {
    return { response: op.respond(await op.run(ctx)), replayed: false };
  } catch (err) {
    // A race with a concurrent request holding the same key: the winner's answer is the one to give.
    const replay =
      err instanceof Replayed
        ? err.response
        : err instanceof IdempotencyRace
          ? (await store.findIdempotent(err.key))?.response
          : undefined;
    if (!replay) throw err;
    metrics.idempotentReplays.inc();
    return { response: replay, replayed: true };
  }
}
