/**
 * The admin port: / (the status page), /healthz (alive), /readyz (store reachable), /metrics (Prometheus) and
 * /status (JSON).
 */
import { readFileSync } from "node:fs";
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

/**
 * The status page: plain files beside this module (the build copies them to dist), read once. It draws with
 * textContent only; the policy below also forbids inline script, so a value that slipped into the markup could
 * not run.
 */
const PAGE_DIR = new URL("./status-page/", import.meta.url);
const PAGE: Record<string, { type: string; body: Buffer }> = {
  "/": { type: "text/html; charset=utf-8", body: readFileSync(new URL("index.html", PAGE_DIR)) },
  "/status-page/page.js": {
    type: "text/javascript; charset=utf-8",
    body: readFileSync(new URL("page.js", PAGE_DIR)),
  },
  "/status-page/page.css": {
    type: "text/css; charset=utf-8",
    body: readFileSync(new URL("page.css", PAGE_DIR)),
  },
};
const PAGE_HEADERS = {
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "Cache-Control": "no-cache",
};

/** Plain node:http rather than express: four read-only routes need no framework. */
export function createAdminServer(h: AdminHandlers): Server {
  return createServer(async (req, res) => {
    const [path, search] = (req.url ?? "/").split("?");
    try {
      if (req.method !== "GET" && req.method !== "HEAD")
        return json(res, 405, { error: "method not allowed" });
      const file = PAGE[path ?? ""];
      if (file) {
        res.writeHead(200, { "Content-Type": file.type, ...PAGE_HEADERS });
        return res.end(req.method === "HEAD" ? undefined : file.body);
      }
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
            routes: ["/", "/healthz", "/readyz", "/metrics", "/status"],
          });
      }
    } catch (err) {
      json(res, 500, { error: (err as Error).message });
    }
  });
}
