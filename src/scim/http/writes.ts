/**
 * The writes a route or a bulk operation runs (POST, PUT, PATCH, DELETE on /Users and /Groups), and how an
 * agent's write is answered: the response is recorded with its Idempotency-Key in the write's transaction, so a
 * replay answers byte for byte the same.
 */
import type { Metrics } from "../../observability/metrics.js";
import { IdempotencyRace, Replayed, type StoredResponse } from "../../store/guards.js";
import type { AppStore } from "../../store/index.js";
import type { RequestContext } from "../context.js";
import type { GroupService } from "../groups.js";
import { type ListLimits, readListParams } from "../list.js";
import { ScimError } from "../model/errors.js";
import { Projection } from "../projection.js";
import {
  createdResponse,
  deletedResponse,
  groupPatchResponse,
  okResponse,
  type Written,
} from "../responses.js";
import type { UserService } from "../users.js";

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
      respond: (o) => okResponse(o as Written),
    };
  if (method === "DELETE") return { run: (ctx) => svc.delete(id, ctx), respond: deletedResponse };
  if (svc === s.users)
    return {
      run: (ctx) => s.users.patch(id, body, ctx, projection()),
      respond: (o) => okResponse(o as Written),
    };
  const wantsBody = query.attributes !== undefined || query.excludedAttributes !== undefined;
  return {
    run: (ctx) => s.groups.patch(id, body, ctx, wantsBody ? projection() : undefined),
    respond: (o) => groupPatchResponse(o as { version: number }),
  };
}

/** Runs `op`; with a guard (in `ctx`), a request applied before answers its recorded response instead. */
export async function runWrite(
  op: WriteOp,
  ctx: RequestContext,
  store: AppStore,
  metrics: Metrics,
): Promise<{ response: StoredResponse; replayed: boolean }> {
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
