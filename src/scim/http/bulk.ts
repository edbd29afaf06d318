/**
 * POST /Bulk (RFC 7644 §3.7). Operations run in order, each as the request of its own would (its own
 * transaction, errors and audit), and `bulkId:x` references in a path or in data resolve to resources created
 * earlier in the same request. A run of consecutive POST /Users without references is created in one
 * transaction with multi-row statements instead, which is what makes a burst of assignments cheap.
 *
 * The agent's guards: `X-Provisiond-Fencing-Token` covers every operation, and `Idempotency-Key: bulkId` makes
 * each operation's bulkId its idempotency key, exactly as if it had been sent alone with that key. A fencing
 * rejection or an unavailable store ends the whole request with that status (409, 503): what ran before is
 * committed, and a retry with the same keys replays it.
 */
import type { Request } from "express";
import type { Logger } from "pino";
import type { Metrics } from "../../observability/metrics.js";
import { StoreUnavailable, ValueTooLarge } from "../../store/errors.js";
import { FencingRejected, type StoredResponse, type WriteGuard } from "../../store/guards.js";
import type { AppStore } from "../../store/index.js";
import type { RequestContext } from "../context.js";
import type { ListLimits } from "../list.js";
import { badRequest, ScimError } from "../model/errors.js";
import { Projection } from "../projection.js";
import { isObject } from "../resource.js";
import { BatchConflict, type BatchItem, type BatchOutcome } from "../users.js";
import { type Endpoint, runWrite, type Services, type WriteMethod, writeOp } from "./writes.js";

export const BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
export const BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

const METHODS = new Set<WriteMethod>(["POST", "PUT", "PATCH", "DELETE"]);
const PATH_RE = /^\/(users|groups)(?:\/([^/?#]+))?$/i;
const REF = "bulkId:";

export interface BulkOperation {
  method: WriteMethod;
  endpoint: Endpoint;
  /** The id in the path, possibly a `bulkId:x` reference. */
  id?: string;
  bulkId?: string;
  version?: string;
  data?: unknown;
}

export interface BulkRequest {
  failOnErrors?: number;
  operations: BulkOperation[];
}

/** Reads and checks a BulkRequest; anything malformed refuses the whole request, before anything runs. */
export function readBulkRequest(body: unknown, maxOperations: number): BulkRequest {
  if (!isObject(body)) throw badRequest("invalidSyntax", "the request body must be a JSON object");
  const schemas = body.schemas;
  if (!Array.isArray(schemas) || !schemas.includes(BULK_REQUEST))
    throw badRequest("invalidSyntax", `a bulk request needs "schemas": ["${BULK_REQUEST}"]`);
  const out: BulkRequest = { operations: [] };
  if (body.failOnErrors !== undefined) {
    if (!Number.isSafeInteger(body.failOnErrors) || (body.failOnErrors as number) < 1)
      throw badRequest("invalidValue", "failOnErrors must be a positive integer");
    out.failOnErrors = body.failOnErrors as number;
  }
  if (!Array.isArray(body.Operations)) throw badRequest("invalidSyntax", "Operations must be an array");
  if (body.Operations.length > maxOperations) {
    throw new ScimError(
      413,
      undefined,
      `the bulk request has ${body.Operations.length} operations; maxOperations is ${maxOperations}`,
    );
  }
  const bulkIds = new Set<string>();
  for (const [i, raw] of body.Operations.entries()) {
    const at = `Operations[${i}]`;
    if (!isObject(raw)) throw badRequest("invalidSyntax", `${at} must be an object`);
    const method = typeof raw.method === "string" ? (raw.method.toUpperCase() as WriteMethod) : undefined;
    if (!method || !METHODS.has(method))
      throw badRequest("invalidValue", `${at}.method must be POST, PUT, PATCH or DELETE`);
    const m = typeof raw.path === "string" ? PATH_RE.exec(raw.path) : null;
    if (!m || (method === "POST") !== (m[2] === undefined)) {
      throw badRequest(
        "invalidPath",
        `${at}.path must be /Users or /Groups for POST, and /Users/{id} or /Groups/{id} otherwise`,
      );
    }
    const op: BulkOperation = { method, endpoint: m[1]!.toLowerCase() === "users" ? "/Users" : "/Groups" };
    if (m[2] !== undefined) op.id = decodeURIComponent(m[2]);
    if (raw.bulkId !== undefined) {
      if (typeof raw.bulkId !== "string" || raw.bulkId.length === 0 || raw.bulkId.length > 255)
        throw badRequest("invalidValue", `${at}.bulkId must be a string of 1 to 255 characters`);
      if (bulkIds.has(raw.bulkId))
        throw badRequest("invalidValue", `${at}.bulkId "${raw.bulkId}" is not unique`);
      bulkIds.add(raw.bulkId);
      op.bulkId = raw.bulkId;
    } else if (method === "POST") throw badRequest("invalidValue", `${at}.bulkId is required with POST`);
    if (raw.version !== undefined) {
      if (typeof raw.version !== "string") throw badRequest("invalidValue", `${at}.version must be a string`);
      op.version = raw.version;
    }
    if (method !== "DELETE") {
      if (!isObject(raw.data)) throw badRequest("invalidSyntax", `${at}.data must be an object`);
      op.data = raw.data;
    }
    out.operations.push(op);
  }
  return out;
}

/** Replaces every `bulkId:x` string in `v` with the id created for x; an unknown x is a 409 (RFC 7644 §3.7.2). */
function resolveRefs(v: unknown, created: Map<string, string>): unknown {
  if (typeof v === "string") {
    if (!v.startsWith(REF)) return v;
    const id = created.get(v.slice(REF.length));
    if (id === undefined) {
      throw new ScimError(
        409,
        undefined,
        `${v} does not name a resource created by an earlier operation of this request`,
      );
    }
    return id;
  }
  if (Array.isArray(v)) return v.map((x) => resolveRefs(x, created));
  if (isObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolveRefs(x, created)]));
  return v;
}

function mentionsRef(v: unknown): boolean {
  return JSON.stringify(v).includes(`"${REF}`);
}

export interface BulkDeps {
  services: Services;
  store: AppStore;
  metrics: Metrics;
  limits: ListLimits;
  log: Logger;
  toScimError: (err: unknown) => ScimError;
}

interface Result {
  op: BulkOperation;
  response?: StoredResponse;
  error?: ScimError;
  location?: string;
}

/** Reads the guard headers of a bulk request: the fencing token, and whether bulkIds are idempotency keys. */
export function bulkGuard(
  req: Request,
  fencing: { fencingToken?: number } | undefined,
): { keyed: boolean; fencingToken?: number } {
  const key = req.get("idempotency-key");
  if (key !== undefined && key !== "bulkId") {
    throw badRequest(
      "invalidValue",
      'on /Bulk, Idempotency-Key must be "bulkId": each operation is then keyed by its own bulkId',
    );
  }
  return {
    keyed: key === "bulkId",
    ...(fencing?.fencingToken !== undefined ? { fencingToken: fencing.fencingToken } : {}),
  };
}

export async function runBulk(
  bulk: BulkRequest,
  baseCtx: RequestContext,
  guard: { keyed: boolean; fencingToken?: number },
  d: BulkDeps,
): Promise<Record<string, unknown>> {
  const created = new Map<string, string>();
  const results: Result[] = [];
  let errors = 0;
  /** Operation i's own context: its request id, its If-Match, and its guard (for `path`). */
  const ctxFor = (i: number, op: BulkOperation, path: string): RequestContext => {
    const ctx: RequestContext = { ...baseCtx, requestId: `${baseCtx.requestId ?? "bulk"}#${i}` };
    delete ctx.ifMatch;
    delete ctx.guard;
    if (op.version !== undefined) ctx.ifMatch = op.version;
    const g = guardFor(op, path);
    if (g) ctx.guard = g;
    return ctx;
  };
  const guardFor = (op: BulkOperation, path: string): WriteGuard | undefined => {
    if (!guard.keyed && guard.fencingToken === undefined) return undefined;
    const g: WriteGuard = { signature: `${op.method} ${path}` };
    if (guard.keyed) {
      if (op.bulkId === undefined)
        throw badRequest("invalidValue", "with Idempotency-Key: bulkId, every operation needs a bulkId");
      g.idempotencyKey = op.bulkId;
    }
    if (guard.fencingToken !== undefined) g.fencingToken = guard.fencingToken;
    return g;
  };
  const record = (r: Result) => {
    results.push(r);
    if (r.error) errors++;
    const id = (r.response?.body as { id?: unknown } | undefined)?.id;
    if (r.op.method === "POST" && r.op.bulkId !== undefined && typeof id === "string")
      created.set(r.op.bulkId, id);
    d.metrics.scimBulkOperations.inc({
      method: r.op.method,
      route: r.op.endpoint,
      status: String(r.error?.status ?? r.response?.status),
    });
  };
  const failed = (err: unknown): ScimError => {
    // The term is over or the store is down: no later operation could apply either.
    if (err instanceof FencingRejected || err instanceof StoreUnavailable) throw err;
    return d.toScimError(err);
  };

  const ops = bulk.operations;
  for (let i = 0; i < ops.length; ) {
    if (bulk.failOnErrors !== undefined && errors >= bulk.failOnErrors) break;
    let end = i;
    if (bulk.failOnErrors === undefined) {
      while (
        end < ops.length &&
        ops[end]!.method === "POST" &&
        ops[end]!.endpoint === "/Users" &&
        !mentionsRef(ops[end]!.data)
      )
        end++;
    }
    if (end - i >= 2) {
      const run = ops.slice(i, end);
      const outcomes = await createBatch(run, i, ctxFor, d);
      if (outcomes) {
        for (const [k, o] of outcomes.entries()) {
          const op = run[k]!;
          record("error" in o ? { op, error: failed(o.error) } : { op, response: o.response });
        }
        i = end;
        continue;
      }
      // A clash the batch could not decide: the same operations, one by one, decide it exactly.
    }
    const op = ops[i]!;
    try {
      const id = op.id === undefined ? undefined : (resolveRefs(op.id, created) as string);
      const path = `${op.endpoint}${id === undefined ? "" : `/${id}`}`;
      const ctx = ctxFor(i, op, path);
      const w = writeOp(d.services, d.limits, op.method, op.endpoint, id, resolveRefs(op.data, created), {});
      const { response } = await runWrite(w, ctx, d.store, d.metrics);
      record({ op, response, ...(id !== undefined ? { location: `${baseCtx.baseUrl}${path}` } : {}) });
    } catch (err) {
      record({ op, error: failed(err) });
    }
    i++;
  }
  return {
    schemas: [BULK_RESPONSE],
    Operations: results.map((r) => {
      const entry: Record<string, unknown> = { method: r.op.method };
      if (r.op.bulkId !== undefined) entry.bulkId = r.op.bulkId;
      const location = r.response?.headers.Location ?? r.location;
      if (location && r.response) entry.location = location;
      if (r.response?.headers.ETag) entry.version = r.response.headers.ETag;
      entry.status = String(r.error?.status ?? r.response?.status);
      if (r.error) entry.response = r.error.toJSON();
      return entry;
    }),
  };
}

async function createBatch(
  run: BulkOperation[],
  first: number,
  ctxFor: (i: number, op: BulkOperation, path: string) => RequestContext,
  d: BulkDeps,
): Promise<BatchOutcome[] | undefined> {
  const items: BatchItem[] = run.map((op, k) => ({ body: op.data, ctx: ctxFor(first + k, op, "/Users") }));
  try {
    const outcomes = await d.services.users.createMany(
      items,
      Projection.parse(d.services.users.rs, undefined, undefined),
    );
    for (const o of outcomes) if ("response" in o && o.replayed) d.metrics.idempotentReplays.inc();
    return outcomes;
  } catch (err) {
    // A value too wide for its column also ends the batch whole: one by one, only its own operation fails.
    if (err instanceof BatchConflict || err instanceof ValueTooLarge) {
      d.log.info({ reason: err.name }, "bulk batch falls back to one operation at a time");
      return undefined;
    }
    throw err;
  }
}
