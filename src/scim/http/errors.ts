/** Maps whatever a request or a /Bulk operation throws to its RFC 7644 error response (RFC 7644 §3.12). */
import type { NextFunction, Request, Response } from "express";
import type { Logger } from "pino";
import type { Metrics } from "../../observability/metrics.js";
import { StoreUnavailable, UniqueViolation, UnsupportedQuery, ValueTooLarge } from "../../store/errors.js";
import { FencingRejected, IdempotencyKeyReused, IdempotencyRace } from "../../store/guards.js";
import { badRequest, conflict, ScimError } from "../model/errors.js";
import { sendScim } from "./respond.js";

export /** Refused before anything is read or written; counted, since it is what a forged fence looks like. */
class NotTheAgent extends ScimError {
  constructor(what: string) {
    super(403, undefined, `${what} only with the agent credential (PROVISIOND_SCIM_AGENT_TOKEN)`);
  }
}

/** MySQL's refusals of a value (too long, out of range, wrong for its column): the request's fault, not the store's. */
const MYSQL_VALUE_ERRORS = new Set([
  "ER_DATA_TOO_LONG",
  "ER_WARN_DATA_OUT_OF_RANGE",
  "ER_TRUNCATED_WRONG_VALUE_FOR_FIELD",
  "ER_TRUNCATED_WRONG_VALUE",
]);
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
  if (err instanceof UnsupportedQuery)
    return badRequest(err.part === "filter" ? "invalidFilter" : "invalidValue", err.message);
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

export function errorHandler(logger: Logger, metrics: Metrics) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    // The request's own logger carries its request id; log through it when there is one.
    const e = toScimError(err, metrics, (req as Request & { log?: Logger }).log ?? logger);
    if (res.headersSent) return;
    sendScim(res, e.status, e.toJSON(), e.headers);
  };
}
