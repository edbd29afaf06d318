/**
 * The agent's SCIM client: keep-alive HTTP to a connector. Every write carries the source event as
 * Idempotency-Key and the term (src/cluster/leadership.ts) as X-Provisiond-Fencing-Token. A client belongs to
 * one term: it starts no attempt once that term is over or its agent has stopped, so work begun in one term
 * never goes out under the next.
 *
 * 503 (and 429, and other 5xx) means "later": wait Retry-After and try again, in order. A 409 that carries
 * X-Provisiond-Fencing means the store knows a newer term: this node was deposed. Other 4xx mean the request
 * can never apply.
 */
import { ExponentialBackoff, halfJitterGenerator } from "cockatiel";
import type { Logger } from "pino";
import { Pool } from "undici";
import type { Leadership } from "../cluster/leadership.js";
import type { Metrics } from "../observability/metrics.js";
import { Blocked, Fenced, ProtocolError, Refused, Stopped } from "./errors.js";
import { parseJson } from "./json.js";
import { pause } from "./pause.js";

/** Retries of one request: doubling from 100 ms to 10 s, jittered within each step's upper half. */
const RETRY = new ExponentialBackoff({ initialDelay: 100, maxDelay: 10_000, generator: halfJitterGenerator });

export const FENCING_HEADER = "x-provisiond-fencing-token";
const SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error";
/** Answers about the agent, not about the request's subject (see Blocked). */
const AGENT_REFUSED = new Set([401, 403, 405, 407]);
/** The connector has no such endpoint: a SCIM server that is not provisiond, or one without /Bulk. */
function noSuchRoute(err: unknown): boolean {
  return (err instanceof Refused || err instanceof Blocked) && (err.status === 404 || err.status === 405);
}

/** The connector's machine-readable answer to a stale token: `stale; current=<token>`. */
export const FENCING_REFUSED_HEADER = "x-provisiond-fencing";

export interface ScimReply {
  status: number;
  body: unknown;
}

export interface ScimClientOptions {
  baseUrl: string;
  authorization: string;
  logger: Logger;
  metrics: Metrics;
  /** The term whose writes this client carries; none for a plain SCIM client (`provisiond reconcile`). */
  lead?: Leadership;
  /** Aborted when the agent stops taking work: no new attempt starts, and back-off waits end. */
  halt?: AbortSignal;
  /** Aborted to cut off the requests in flight. */
  cancel?: AbortSignal;
  tls?: { ca?: Buffer; rejectUnauthorized?: boolean };
}

export interface BulkLimits {
  maxOperations: number;
  maxPayloadSize: number;
}

export interface BulkWrite {
  method: "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  body: unknown;
  key: string;
}

export interface BulkResult {
  status: number;
  location?: string;
  detail?: string;
}

type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** `stale; current=123` → 123. */
function storedTokenOf(header: string | string[] | undefined): number | undefined {
  const m = /current=(\d+)/.exec(Array.isArray(header) ? header.join(",") : (header ?? ""));
  return m ? Number(m[1]) : undefined;
}

export class ScimClient {
  private readonly pool: Pool;
  private limits: Promise<BulkLimits | undefined> | undefined;
  private readonly basePath: string;
  private closed = false;

  constructor(private readonly opts: ScimClientOptions) {
    const url = new URL(opts.baseUrl);
    this.basePath = url.pathname.replace(/\/+$/, "");
    this.pool = new Pool(url.origin, {
      connections: 32,
      keepAliveTimeout: 60_000,
      ...(opts.tls
        ? {
            connect: {
              ca: opts.tls.ca,
              rejectUnauthorized: opts.tls.rejectUnauthorized ?? true,
              minVersion: "TLSv1.2" as const,
            },
          }
        : {}),
    });
  }

  /** Why nothing more may go out, or undefined while it may. */
  private stopReason(): string | undefined {
    if (this.closed) return "client closed";
    if (this.opts.halt?.aborted || this.opts.cancel?.aborted) return "agent stopped";
    if (this.opts.lead && !this.opts.lead.isCurrent()) return `term ${this.opts.lead.term} is over`;
    return undefined;
  }

  private backOff(ms: number): Promise<void> {
    return pause(ms, [this.opts.halt, this.opts.cancel], "backing off");
  }

  async request(method: Method, path: string, body?: unknown, idempotencyKey?: string): Promise<ScimReply> {
    let delay = RETRY.next();
    for (;;) {
      const stop = this.stopReason();
      if (stop) throw new Stopped(stop);
      const headers: Record<string, string> = {
        authorization: this.opts.authorization,
        accept: "application/scim+json",
        "user-agent": "provisiond-agent",
      };
      if (body !== undefined) headers["content-type"] = "application/scim+json";
      const term = this.opts.lead?.term;
      if (term !== undefined && method !== "GET") headers[FENCING_HEADER] = String(term);
      if (idempotencyKey && method !== "GET") headers["idempotency-key"] = idempotencyKey;
      let status: number;
      let text: string;
      let resHeaders: Record<string, string | string[] | undefined>;
      try {
        const res = await this.pool.request({
          method,
          path: this.basePath + path,
          headers,
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          headersTimeout: 60_000,
          bodyTimeout: 60_000,
          ...(this.opts.cancel ? { signal: this.opts.cancel } : {}),
        });
        status = res.statusCode;
        resHeaders = res.headers;
        text = await res.body.text();
      } catch (err) {
        const stopped = this.stopReason();
        if (stopped) throw new Stopped(stopped);
        this.opts.metrics.agentRetries.inc({ target: "scim", reason: "network" });
        this.opts.logger.warn(
          { err: (err as Error).message, method, path },
          "connector unreachable; retrying",
        );
        await this.backOff(delay.duration);
        delay = delay.next(undefined);
        continue;
      }
      // The status decides first: a proxy's error page is not JSON, and must not be read as a refusal.
      if (status === 408 || status === 429 || status >= 500) {
        this.opts.metrics.agentRetries.inc({ target: "scim", reason: String(status) });
        const after = resHeaders["retry-after"];
        const seconds = Number(Array.isArray(after) ? after[0] : after);
        const wait =
          after !== undefined && Number.isFinite(seconds) && seconds >= 0
            ? Math.min(seconds * 1000, 60_000)
            : delay.duration;
        delay = delay.next(undefined);
        this.opts.logger.warn(
          { status, method, path, waitMs: wait },
          "connector cannot apply now; backing off",
        );
        await this.backOff(wait);
        continue;
      }
      const parsed = parseJson(text) as { detail?: string; schemas?: unknown } | undefined;
      const fenced = resHeaders[FENCING_REFUSED_HEADER];
      if (status === 409 && fenced !== undefined)
        throw new Fenced(term, storedTokenOf(fenced), parsed?.detail ?? "stale fencing token");
      const scimError = Array.isArray(parsed?.schemas) && parsed.schemas.includes(SCIM_ERROR);
      if (AGENT_REFUSED.has(status) || (status === 404 && !scimError))
        throw new Blocked(status, parsed?.detail ?? text.slice(0, 200));
      if (status >= 400 && !(status === 404 && method === "GET"))
        throw new Refused(status, parsed?.detail ?? text.slice(0, 200));
      if (text && parsed === undefined)
        throw new ProtocolError(`${method} ${path} answered ${status} with a body that is not JSON`);
      return { status, body: parsed };
    }
  }

  /**
   * Raises the store's fence to this client's term before the term reads or writes anything (see DESIGN.md,
   * "one term, one writer"): in-flight writes of older terms finish first, later ones are refused. Answers
   * false when the connector has no fence (a SCIM server that is not provisiond).
   */
  async raiseFence(): Promise<boolean> {
    if (this.opts.lead?.term === undefined) return false;
    try {
      await this.request("POST", "/provisiond/fence", {});
      return true;
    } catch (err) {
      if (noSuchRoute(err)) return false;
      throw err;
    }
  }

  /** What the connector's ServiceProviderConfig allows a /Bulk request, read once; undefined: no bulk. */
  async bulkLimits(): Promise<BulkLimits | undefined> {
    this.limits ??= this.request("GET", "/ServiceProviderConfig").then(
      (r) => {
        const b = (
          r.body as { bulk?: { supported?: boolean; maxOperations?: number; maxPayloadSize?: number } }
        ).bulk;
        if (!b?.supported || !b.maxOperations || !b.maxPayloadSize) return undefined;
        return { maxOperations: b.maxOperations, maxPayloadSize: b.maxPayloadSize };
      },
      (err) => {
        // A connector that will not say is one without /Bulk; anything transient is asked again next round.
        if (err instanceof Refused || noSuchRoute(err)) return undefined;
        this.limits = undefined;
        throw err;
      },
    );
    return this.limits;
  }

  /**
   * Sends writes as one /Bulk request, each keyed by its own Idempotency-Key (as its bulkId), under this
   * term's fencing token. Returns each operation's status and location, in order.
   */
  async bulk(requests: BulkWrite[]): Promise<BulkResult[]> {
    const reply = await this.request(
      "POST",
      "/Bulk",
      {
        schemas: ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        Operations: requests.map((r) => ({ method: r.method, path: r.path, bulkId: r.key, data: r.body })),
      },
      "bulkId",
    );
    const ops = (
      reply.body as { Operations?: { status?: string; location?: string; response?: { detail?: string } }[] }
    )?.Operations;
    if (!Array.isArray(ops) || ops.length !== requests.length)
      throw new Refused(reply.status, "the bulk response does not answer every operation");
    return ops.map((o) => ({
      status: Number(o.status),
      ...(o.location ? { location: o.location } : {}),
      ...(o.response?.detail ? { detail: o.response.detail } : {}),
    }));
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.pool.close();
  }
}
