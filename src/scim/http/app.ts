/** The SCIM 2.0 HTTP server: express 5, one transaction per request, RFC 7644 errors for everything. */
import { randomUUID } from "node:crypto";
import express, { type NextFunction, type Request, type Response, Router } from "express";
import type { Logger } from "pino";
import { pinoHttp } from "pino-http";
import type { AuthConfig } from "../../config/index.js";
import { errorSerializer, loggedUrl } from "../../observability/logger.js";
import type { Metrics } from "../../observability/metrics.js";
import type { WriteGuard } from "../../store/guards.js";
import type { AppStore } from "../../store/index.js";
import type { RequestContext } from "../context.js";
import type { GroupService } from "../groups.js";
import { type ListLimits, readListParams, readSearchBody } from "../list.js";
import { badRequest, ScimError } from "../model/errors.js";
import type { ResourceSchema } from "../model/schema.js";
import { Projection } from "../projection.js";
import { etagOf, ifNoneMatchHolds } from "../render.js";
import { RootSearch } from "../search.js";
import type { UserService } from "../users.js";
import { authMiddleware } from "./auth.js";
import { bulkGuard, readBulkRequest, runBulk } from "./bulk.js";
import { discoveryRouter } from "./discovery.js";
import { errorHandler, NotTheAgent, toScimError } from "./errors.js";
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
const AGENT_HEADERS = ["idempotency-key", "x-provisiond-fencing-token"];

/**
 * The agent's headers on a write: Idempotency-Key (the source event) and X-Provisiond-Fencing-Token (its term).
 * Honoured only from the agent credential: a token from anyone else could fence the agent out for good.
 */
function guardOf(req: Request, res: Response): WriteGuard | undefined {
  const key = req.get("idempotency-key");
  const token = req.get("x-provisiond-fencing-token");
  if (key === undefined && token === undefined) return undefined;
  // Refused from anyone else before any route (see createScimApp); checked again where it matters.
  if (res.locals.agent !== true)
    throw new NotTheAgent("X-Provisiond-Fencing-Token and Idempotency-Key are accepted");
  // Its width, as the key's, is checked where it is stored (src/store/guards.ts).
  const guard: WriteGuard = { signature: `${req.method} ${req.path}` };
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
const JSON_TYPES = ["application/json", "application/scim+json", "application/*+json"];
/** Far deeper than any SCIM resource or bulk request nests. */
const MAX_BODY_DEPTH = 32;

function queryParams(req: Request): Record<string, unknown> {
  return req.query as Record<string, unknown>;
}

export function createScimApp(opts: ScimAppOptions, deps: ScimAppDeps): express.Express {
  const { users, groups, metrics, logger } = deps;
  const rootSearch = new RootSearch(users, groups);
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
          url: loggedUrl(req.url),
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
  // On every route, reads included: a client sending the agent's headers is either confused or probing.
  scim.use((req, res, next) => {
    if (res.locals.agent !== true && AGENT_HEADERS.some((h) => req.get(h) !== undefined))
      throw new NotTheAgent("X-Provisiond-Fencing-Token and Idempotency-Key are accepted");
    next();
  });
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
    const guard = guardOf(req, res);
    const ctx = { ...ctxOf(req, res), ...(guard ? { guard } : {}) };
    const body = method === "DELETE" ? undefined : bodyOf(req);
    const op = writeOp(services, opts.limits, method, endpoint, id, body, queryParams(req));
    const { response, replayed } = await runWrite(op, ctx, deps.store, metrics);
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
      sendScim(res, 200, await rootSearch.search(readSearchBody(bodyOf(req), opts.limits), ctxOf(req, res)));
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
