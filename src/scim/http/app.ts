/** The SCIM 2.0 HTTP server: express 5, one transaction per request, RFC 7644 errors for everything. */
import { randomUUID } from "node:crypto";
import express, { type NextFunction, type Request, type Response, Router } from "express";
import type { Logger } from "pino";
import { pinoHttp } from "pino-http";
import type { AuthConfig } from "../../config/index.js";
import { errorSerializer } from "../../observability/logger.js";
import type { Metrics } from "../../observability/metrics.js";
import { StoreUnavailable, UniqueViolation, ValueTooLarge } from "../../store/errors.js";
import {
  FencingRejected,
  IdempotencyKeyReused,
  IdempotencyRace,
  type WriteGuard,
} from "../../store/guards.js";
import type { AppStore } from "../../store/index.js";
import type { RequestContext } from "../context.js";
import { badRequest, conflict, ScimError } from "../errors.js";
import type { GroupService } from "../groups.js";
import {
  fitPage,
  LIST_RESPONSE,
  type ListLimits,
  type ListParams,
  readListParams,
  readSearchBody,
} from "../list.js";
import { Projection } from "../projection.js";
import { etagOf, ifNoneMatchHolds } from "../render.js";
import type { ResourceSchema } from "../schema.js";
import type { UserService } from "../users.js";
import { authMiddleware } from "./auth.js";
import { bulkGuard, readBulkRequest, runBulk } from "./bulk.js";
import { discoveryRouter } from "./discovery.js";
import { checkJsonShape } from "./json-shape.js";
import { baseUrlOf, send, sendScim } from "./respond.js";
import { type Endpoint, runWrite, type WriteMethod, writeOp } from "./writes.js";

export interface ScimAppOptions {
  auth: AuthConfig;
  /** Configured tokens plus a generated one, if any. */
  bearerTokens: string[];
  /** The agent credential (see AuthConfig.agentToken). */
  agentToken: string;
  maxBodyBytes: number;
  /** Operations a /Bulk request may carry; 0 turns /Bulk off. */
  bulkMaxOperations: number;
  limits: ListLimits;
  passwordSync: boolean;
  publicBaseUrl?: string;
}

export interface ScimAppDeps {
  store: AppStore;
  users: UserService;
  groups: GroupService;
  metrics: Metrics;
  logger: Logger;
}

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;
const IDEMPOTENCY_KEY_RE = /^[\x21-\x7e]{1,255}$/;

/** Refused before anything is read or written; counted, since it is what a forged fence looks like. */
class NotTheAgent extends ScimError {
  constructor(what: string) {
    super(403, undefined, `${what} only with the agent credential (PROVISIOND_SCIM_AGENT_TOKEN)`);
  }
}

/**
 * The agent's headers on a write: Idempotency-Key (the source event) and X-Provisiond-Fencing-Token (its term).
 * Honoured only from the agent credential: a token from anyone else could fence the agent out for good.
 */
function guardOf(req: Request, res: Response): Omit<WriteGuard, "respond"> | undefined {
  const key = req.get("idempotency-key");
  const token = req.get("x-provisiond-fencing-token");
  if (key === undefined && token === undefined) return undefined;
  if (res.locals.agent !== true)
    throw new NotTheAgent("X-Provisiond-Fencing-Token and Idempotency-Key are accepted");
  // Its width, as the key's, is checked where it is stored (src/store/guards.ts).
  const guard: Omit<WriteGuard, "respond"> = { signature: `${req.method} ${req.path}` };
  if (key !== undefined) {
    if (!IDEMPOTENCY_KEY_RE.test(key))
      throw badRequest("invalidValue", "Idempotency-Key must be 1 to 255 visible ASCII characters");
    guard.idempotencyKey = key;
  }
  if (token !== undefined) {
    if (!/^[1-9][0-9]{0,15}$/.test(token) || !Number.isSafeInteger(Number(token))) {
      throw badRequest("invalidValue", "X-Provisiond-Fencing-Token must be a positive integer");
    }
    guard.fencingToken = Number(token);
  }
  return guard;
}
/** MySQL's refusals of a value (too long, out of range, wrong for its column): the request's fault, not the store's. */
const MYSQL_VALUE_ERRORS = new Set([
  "ER_DATA_TOO_LONG",
  "ER_WARN_DATA_OUT_OF_RANGE",
  "ER_TRUNCATED_WRONG_VALUE_FOR_FIELD",
  "ER_TRUNCATED_WRONG_VALUE",
]);
const JSON_TYPES = ["application/json", "application/scim+json", "application/*+json"];
/** Far deeper than any SCIM resource or bulk request nests. */
const MAX_BODY_DEPTH = 32;

function queryParams(req: Request): Record<string, unknown> {
  return req.query as Record<string, unknown>;
}

export function createScimApp(opts: ScimAppOptions, deps: ScimAppDeps): express.Express {
  const { users, groups, metrics, logger } = deps;
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.set("query parser", "simple");

  // Okta's agent wants a base URL ending in "/", so it asks for /scim/v2//Users; collapse repeated slashes.
  app.use((req, _res, next) => {
    const q = req.url.indexOf("?");
    const path = q < 0 ? req.url : req.url.slice(0, q);
    if (path.includes("//")) req.url = path.replace(/\/{2,}/g, "/") + (q < 0 ? "" : req.url.slice(q));
    next();
  });

  app.use(
    pinoHttp({
      logger,
      genReqId: (req, res) => {
        const given = req.headers["x-request-id"];
        const id = typeof given === "string" && REQUEST_ID_RE.test(given) ? given : randomUUID();
        res.setHeader("X-Request-Id", id);
        return id;
      },
      customLogLevel: (_req, res, err) =>
        err || res.statusCode >= 500 ? "error" : res.statusCode >= 400 ? "warn" : "info",
      serializers: {
        req: (req) => ({
          id: req.id,
          method: req.method,
          url: req.url,
          userAgent: req.headers["user-agent"],
        }),
        res: (res) => ({ statusCode: res.statusCode }),
        err: errorSerializer,
      },
    }),
  );

  app.use((req, res, next) => {
    const start = process.hrtime.bigint();
    res.on("finish", () => {
      const route = (res.locals.route as string | undefined) ?? "other";
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      metrics.scimRequests.inc({ method: req.method, route, status: String(res.statusCode) });
      metrics.scimDuration.observe({ method: req.method, route }, seconds);
    });
    next();
  });

  const scim = Router({ caseSensitive: false });
  scim.use(authMiddleware(opts.auth, opts.bearerTokens, opts.agentToken, () => metrics.authFailures.inc()));
  scim.use(
    express.json({
      limit: opts.maxBodyBytes,
      type: JSON_TYPES,
      strict: true,
      verify: (_req, _res, buf, encoding) =>
        checkJsonShape(buf.toString(encoding as BufferEncoding), MAX_BODY_DEPTH),
    }),
  );

  const ctxOf = (req: Request, res: Response): RequestContext => {
    const ctx: RequestContext = {
      baseUrl: baseUrlOf(req, opts.publicBaseUrl),
      actor: String(res.locals.actor ?? "unknown"),
    };
    const ua = req.get("user-agent");
    if (ua) ctx.client = ua;
    ctx.requestId = String(req.id);
    const ifMatch = req.get("if-match");
    if (ifMatch) ctx.ifMatch = ifMatch;
    return ctx;
  };
  const bodyOf = (req: Request): unknown => {
    if (req.body === undefined) {
      throw badRequest(
        "invalidSyntax",
        "the request needs a JSON body with Content-Type application/scim+json",
      );
    }
    return req.body;
  };
  const projectionOf = (rs: ResourceSchema, req: Request): Projection => {
    const p = readListParams(queryParams(req), opts.limits, false);
    return Projection.parse(rs, p.attributes, p.excludedAttributes);
  };
  const label = (route: string) => (_req: Request, res: Response, next: NextFunction) => {
    res.locals.route = route;
    next();
  };
  const services = { users, groups };
  /** Runs a route's write and answers it (see writes.ts for how an agent's write is recorded). */
  const write = async (req: Request, res: Response, method: WriteMethod, endpoint: Endpoint, id?: string) => {
    const ctx = ctxOf(req, res);
    const guard = guardOf(req, res);
    const body = method === "DELETE" ? undefined : bodyOf(req);
    const op = writeOp(services, opts.limits, method, endpoint, id, body, queryParams(req));
    const { response, replayed } = await runWrite(op, ctx, guard, deps.store, metrics);
    send(res, response, replayed ? { "Idempotent-Replayed": "true" } : {});
  };
  const methodNotAllowed = (_req: Request, _res: Response) => {
    throw new ScimError(405, undefined, "method not allowed on this endpoint");
  };

  for (const [svc, endpoint] of [
    [users, "/Users"],
    [groups, "/Groups"],
  ] as const) {
    const rs = svc.rs;
    scim
      .route(endpoint)
      .all(label(endpoint))
      .get(async (req, res) => {
        sendScim(
          res,
          200,
          await svc.list(readListParams(queryParams(req), opts.limits, false), ctxOf(req, res)),
        );
      })
      .post((req, res) => write(req, res, "POST", endpoint))
      .all(methodNotAllowed);
    scim
      .route(`${endpoint}/.search`)
      .all(label(`${endpoint}/.search`))
      .post(async (req, res) => {
        sendScim(res, 200, await svc.list(readSearchBody(bodyOf(req), opts.limits), ctxOf(req, res)));
      })
      .all(methodNotAllowed);
    scim
      .route(`${endpoint}/:id`)
      .all(label(`${endpoint}/:id`))
      .get(async (req, res) => {
        const out = await svc.get(String(req.params.id), ctxOf(req, res), projectionOf(rs, req));
        if (!ifNoneMatchHolds(req.get("if-none-match"), out.version)) {
          res.status(304).set("ETag", etagOf(out.version)).end();
          return;
        }
        sendScim(res, 200, out.resource, { ETag: etagOf(out.version) });
      })
      .put((req, res) => write(req, res, "PUT", endpoint, String(req.params.id)))
      .patch((req, res) => write(req, res, "PATCH", endpoint, String(req.params.id)))
      .delete((req, res) => write(req, res, "DELETE", endpoint, String(req.params.id)))
      .all(methodNotAllowed);
  }

  scim
    .route("/Bulk")
    .all(label("/Bulk"))
    .post(async (req, res) => {
      if (opts.bulkMaxOperations === 0)
        throw new ScimError(
          501,
          undefined,
          "bulk operations are turned off (PROVISIOND_SCIM_BULK_MAX_OPERATIONS=0)",
        );
      const guard = bulkGuard(req, guardOf(req, res));
      const bulk = readBulkRequest(bodyOf(req), opts.bulkMaxOperations);
      const log = (req as Request & { log?: Logger }).log ?? logger;
      const out = await runBulk(bulk, ctxOf(req, res), guard, {
        services,
        store: deps.store,
        metrics,
        limits: opts.limits,
        log,
        toScimError: (err) => toScimError(err, metrics, log),
      });
      sendScim(res, 200, out);
    })
    .all(methodNotAllowed);

  // A new primary's explicit raise of the fence, before its first read (see AppStore.raiseFence).
  scim
    .route("/provisiond/fence")
    .all(label("/provisiond/fence"))
    .post(async (req, res) => {
      if (res.locals.agent !== true) throw new NotTheAgent("the fence is raised");
      const guard = guardOf(req, res);
      if (guard?.fencingToken === undefined || guard.idempotencyKey !== undefined)
        throw badRequest(
          "invalidValue",
          "send X-Provisiond-Fencing-Token (and no Idempotency-Key) to raise the fence",
        );
      sendScim(res, 200, { fencingToken: await deps.store.raiseFence(guard.fencingToken) });
    })
    .all(methodNotAllowed);

  scim
    .route("/.search")
    .all(label("/.search"))
    .post(async (req, res) => {
      sendScim(
        res,
        200,
        await rootSearch(readSearchBody(bodyOf(req), opts.limits), ctxOf(req, res), users, groups),
      );
    })
    .all(methodNotAllowed);

  scim.use((_req, res, next) => {
    res.locals.route ??= "discovery";
    next();
  });
  scim.use(
    discoveryRouter(
      [users.rs, groups.rs],
      {
        maxResults: opts.limits.maxResults,
        bulkMaxOperations: opts.bulkMaxOperations,
        maxBodyBytes: opts.maxBodyBytes,
        passwordSync: opts.passwordSync,
        basic: opts.auth.basic !== undefined,
        bearer: opts.bearerTokens.length > 0,
        ...(opts.auth.header ? { header: opts.auth.header.name } : {}),
      },
      opts.publicBaseUrl,
    ),
  );

  app.use("/scim/v2", scim);
  app.use((_req, _res, next) =>
    next(new ScimError(404, undefined, "no such endpoint; the SCIM base path is /scim/v2")),
  );
  app.use(errorHandler(logger, metrics));
  return app;
}

/** Root-level search (RFC 7644 §3.4.3): users, then groups, paged as one list. */
async function rootSearch(p: ListParams, ctx: RequestContext, users: UserService, groups: GroupService) {
  const attempt = async <T>(fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await fn();
    } catch (err) {
      // A filter or attribute that one resource type lacks selects nothing of that type.
      if (err instanceof ScimError && err.status === 400) return undefined;
      throw err;
    }
  };
  const u = await attempt(() => users.list({ ...p, count: 0 }, ctx));
  const g = await attempt(() => groups.list({ ...p, count: 0 }, ctx));
  if (!u && !g) await users.list({ ...p, count: 0 }, ctx);
  const uTotal = u?.totalResults ?? 0;
  const gTotal = g?.totalResults ?? 0;
  const Resources: Record<string, unknown>[] = [];
  if (u && p.startIndex <= uTotal && p.count > 0) {
    const page = (await users.list(p, ctx)).Resources;
    Resources.push(...page);
    // A users part cut short by the byte cap ends the page: groups here would be skipped users' places, and
    // the next page (from startIndex + itemsPerPage) would repeat them.
    if (p.startIndex - 1 + page.length < Math.min(uTotal, p.startIndex - 1 + p.count))
      return listOf(uTotal + gTotal, p.startIndex, Resources);
  }
  const left = p.count - Resources.length;
  if (g && left > 0) {
    const start = Math.max(1, p.startIndex - uTotal);
    if (start <= gTotal)
      Resources.push(...(await groups.list({ ...p, startIndex: start, count: left }, ctx)).Resources);
  }
  // The two parts together keep to the byte cap; trimming the tail keeps the paging consistent.
  return listOf(uTotal + gTotal, p.startIndex, fitPage(Resources, p.maxPageBytes));
}

function listOf(totalResults: number, startIndex: number, Resources: Record<string, unknown>[]) {
  return { schemas: [LIST_RESPONSE], totalResults, itemsPerPage: Resources.length, startIndex, Resources };
}

/** The RFC 7644 error for anything a request or a bulk operation throws; unexpected errors are logged once. */
export function toScimError(err: unknown, metrics: Metrics, log: Logger): ScimError {
  const bodyErr = err as { type?: string; status?: number; limit?: number };
  if (err instanceof NotTheAgent) metrics.agentHeaderRefusals.inc();
  if (err instanceof ScimError) return err;
  if (err instanceof FencingRejected) {
    metrics.fencingRejections.inc();
    // The header is the machine-readable signal an agent acts on; the detail is for people.
    return new ScimError(
      409,
      undefined,
      `${err.message}: this request comes from a deposed primary and was not applied`,
      { "X-Provisiond-Fencing": `stale; current=${err.current}` },
    );
  }
  if (err instanceof IdempotencyKeyReused) return new ScimError(422, "invalidValue", err.message);
  if (err instanceof IdempotencyRace)
    return new ScimError(409, undefined, `${err.message}; retry to get its answer`);
  if (err instanceof UniqueViolation) return conflict("the resource clashes with an existing one");
  if (err instanceof ValueTooLarge) return badRequest("invalidValue", err.message);
  // A fallback: every width is checked before the write (ValueTooLarge); MySQL's own refusal is the same 400.
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && MYSQL_VALUE_ERRORS.has(code))
    return badRequest("invalidValue", "a value does not fit the store's column for it");
  if (err instanceof StoreUnavailable) {
    return new ScimError(503, undefined, `${err.message}; retry later`, {
      "Retry-After": String(err.retryAfterSeconds),
    });
  }
  if (bodyErr?.type === "entity.too.large")
    return new ScimError(413, undefined, `the request body is larger than ${bodyErr.limit} bytes`);
  if (bodyErr?.type === "entity.shape.invalid") return badRequest("invalidSyntax", (err as Error).message);
  if (bodyErr?.type === "entity.parse.failed")
    return badRequest("invalidSyntax", "the request body is not valid JSON");
  if (bodyErr?.type === "encoding.unsupported" || bodyErr?.type === "charset.unsupported")
    return new ScimError(415, undefined, "unsupported body encoding or charset; send UTF-8 JSON");
  if (bodyErr?.type === "request.aborted") return badRequest("invalidSyntax", "the request body was cut off");
  log.error({ err }, "unexpected error");
  return new ScimError(
    500,
    undefined,
    "internal error; the request id in X-Request-Id identifies it in the logs",
  );
}

function errorHandler(logger: Logger, metrics: Metrics) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    // The request's own logger carries its request id; log through it when there is one.
    const e = toScimError(err, metrics, (req as Request & { log?: Logger }).log ?? logger);
    if (res.headersSent) return;
    sendScim(res, e.status, e.toJSON(), e.headers);
  };
}
