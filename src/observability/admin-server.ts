/** The admin port: /healthz (alive), /readyz (store reachable), /metrics (Prometheus) and /status (JSON). */
import { createServer, type Server } from "node:http";
import type { Metrics } from "./metrics.js";

export interface AdminHandlers {
  metrics: Metrics;
  /** Resolves when the node can serve (or, with ?role=primary, when it is the primary); rejects with why not. */
  ready: (query: URLSearchParams) => Promise<void>;
  status: () => Promise<Record<string, unknown>> | Record<string, unknown>;
}

function json(res: import("node:http").ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store" });
  res.end(JSON.stringify(body, null, 2));
}

/** Plain node:http rather than express: four read-only routes need no framework. */
export function createAdminServer(h: AdminHandlers): Server {
  return createServer(async (req, res) => {
    const [path, search] = (req.url ?? "/").split("?");
    try {
      if (req.method !== "GET" && req.method !== "HEAD")
        return json(res, 405, { error: "method not allowed" });
      switch (path) {
        case "/healthz":
          return json(res, 200, { status: "ok" });
        case "/readyz":
          try {
            await h.ready(new URLSearchParams(search ?? ""));
            return json(res, 200, { status: "ready" });
          } catch (err) {
            return json(res, 503, { status: "not ready", reason: (err as Error).message });
          }
        case "/metrics": {
          const body = await h.metrics.registry.metrics();
          res.writeHead(200, { "Content-Type": h.metrics.registry.contentType });
          return res.end(body);
        }
        case "/status":
          return json(res, 200, await h.status());
        default:
          return json(res, 404, {
            error: "not found",
            routes: ["/healthz", "/readyz", "/metrics", "/status"],
          });
      }
    } catch (err) {
      json(res, 500, { error: (err as Error).message });
    }
  });
}
