/**
 * The agent's SCIM client: keep-alive HTTP to a connector, with the source event as Idempotency-Key and the
 * term as X-Provisiond-Fencing-Token on every write. 503 means "later" (the store is down): wait Retry-After
 * and try again, in order, for as long as this node is primary. A 409 for a stale token means this node was
 * deposed; other 4xx mean the request can never apply.
 */
import type { Logger } from "pino";
import { Pool } from "undici";
import type { Metrics } from "../observability/metrics.js";

export class Deposed extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Deposed";
  }
}

/** A request the connector refused for good (400, 404 on a write, 409 uniqueness, 422): a dead letter. */
export class Refused extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`${status}: ${detail}`);
    this.name = "Refused";
  }
}

export interface ScimReply {
  status: number;
  body: unknown;
}

export interface ScimClientOptions {
  baseUrl: string;
  authorization: string;
  logger: Logger;
  metrics: Metrics;
  /** Whether this node may still write; checked before every attempt. */
  mayWrite: () => boolean;
  term: () => number | undefined;
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

export class ScimClient {
  private readonly pool: Pool;
  private limits: Promise<BulkLimits | undefined> | undefined;
  private readonly basePath: string;
  private closed = false;

  constructor(private readonly o: ScimClientOptions) {
    const url = new URL(o.baseUrl);
    this.basePath = url.pathname.replace(/\/+$/, "");
    this.pool = new Pool(url.origin, {
      connections: 32,
      keepAliveTimeout: 60_000,
      ...(o.tls
        ? {
            connect: {
              ca: o.tls.ca,
              rejectUnauthorized: o.tls.rejectUnauthorized ?? true,
              minVersion: "TLSv1.2" as const,
            },
          }
        : {}),
    });
  }

  async request(
    method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
    path: string,
    body?: unknown,
    idempotencyKey?: string,
  ): Promise<ScimReply> {
    let attempt = 0;
    for (;;) {
      if (this.closed || !this.o.mayWrite()) throw new Deposed("no longer primary");
      const term = this.o.term();
      const headers: Record<string, string> = {
        authorization: this.o.authorization,
        accept: "application/scim+json",
        "user-agent": "provisiond-agent",
      };
      if (body !== undefined) headers["content-type"] = "application/scim+json";
      if (term !== undefined) headers["x-provisiond-fencing-token"] = String(term);
      if (idempotencyKey && method !== "GET") headers["idempotency-key"] = idempotencyKey;
      let status: number;
      let text: string;
      let retryAfter: string | string[] | undefined;
      try {
        const res = await this.pool.request({
          method,
          path: this.basePath + path,
          headers,
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          headersTimeout: 60_000,
          bodyTimeout: 60_000,
        });
        status = res.statusCode;
        retryAfter = res.headers["retry-after"];
        text = await res.body.text();
      } catch (err) {
        this.o.metrics.agentRetries.inc({ target: "scim", reason: "network" });
        this.o.logger.warn({ err: (err as Error).message, method, path }, "connector unreachable; retrying");
        await new Promise((r) => setTimeout(r, Math.min(10_000, 100 * 2 ** Math.min(attempt++, 7))));
        continue;
      }
      const parsed = text ? (JSON.parse(text) as { detail?: string }) : undefined;
      if (status === 503 || status === 429 || status >= 500) {
        this.o.metrics.agentRetries.inc({ target: "scim", reason: String(status) });
        const seconds = Number(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter);
        const wait = Number.isFinite(seconds)
          ? seconds * 1000
          : Math.min(10_000, 100 * 2 ** Math.min(attempt, 7));
        attempt++;
        this.o.logger.warn({ status, method, path, waitMs: wait }, "connector cannot apply now; backing off");
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      if (status === 409 && parsed?.detail?.includes("fencing token")) throw new Deposed(parsed.detail);
      if (status >= 400 && !(status === 404 && method === "GET"))
        throw new Refused(status, parsed?.detail ?? text.slice(0, 200));
      return { status, body: parsed };
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
        if (err instanceof Refused) return undefined;
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
    ).Operations;
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
