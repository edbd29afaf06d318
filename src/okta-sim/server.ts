/**
 * `provisiond okta-sim`: the subset of Okta's API the agent uses, served as Okta documents it (SSWS auth,
 * System Log polling with `next` links, app users with `expand=user`, groups, group push mappings, rate-limit
 * headers and 429s), plus a control API under /sim to drive an org and read the ground truth.
 */
import { randomUUID } from "node:crypto";
import express, { type NextFunction, type Request, type Response } from "express";
import { type Bucket, RateLimiter } from "./rate-limits.js";
import { type AppUser, type LogEvent, OktaOrg, SimError } from "./state.js";

export interface SimOptions {
  token: string;
  appId: string;
}

function oktaError(res: Response, status: number, code: string, summary: string): void {
  res.status(status).json({
    errorCode: code,
    errorSummary: summary,
    errorLink: code,
    errorId: `oae${randomUUID().slice(0, 18)}`,
    errorCauses: [],
  });
}

function publicEvent({ seq: _seq, ...e }: LogEvent): Record<string, unknown> {
  return e;
}

function encodeAfter(seq: number): string {
  return Buffer.from(`seq:${seq}`).toString("base64url");
}

function decodeAfter(after: string): number | undefined {
  const m = /^seq:(-?\d+)$/.exec(Buffer.from(after, "base64url").toString());
  return m ? Number(m[1]) : undefined;
}

/** Okta's filter syntax, as far as the agent uses it: `eventType eq "x"` and `target.id eq "x"` joined by or. */
function parseLogFilter(filter: string): ((e: LogEvent) => boolean) | undefined {
  const clauses = filter.split(/\s+or\s+/i).map((c) => c.trim().replace(/^\(|\)$/g, ""));
  const tests: ((e: LogEvent) => boolean)[] = [];
  for (const c of clauses) {
    const m = /^(eventType|target\.id)\s+eq\s+"([^"]*)"$/.exec(c);
    if (!m) return undefined;
    const [, field, value] = m;
    tests.push(
      field === "eventType" ? (e) => e.eventType === value : (e) => e.target.some((t) => t.id === value),
    );
  }
  return (e) => tests.some((t) => t(e));
}

/**
 * Okta's cursor paging over ids in code-unit order (the order the `after` comparison uses; localeCompare would
 * disagree on case): the page after `after`, found by binary search, and the cursor of the next page if any.
 */
function pageAfter(
  sorted: readonly string[],
  after: string | undefined,
  limit: number,
): { page: string[]; next?: string } {
  let lo = 0;
  let hi = sorted.length;
  while (after !== undefined && lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! > after) hi = mid;
    else lo = mid + 1;
  }
  const page = sorted.slice(lo, lo + limit);
  return lo + limit < sorted.length ? { page, next: page[page.length - 1]! } : { page };
}

function link(res: Response, links: [string, string][]): void {
  res.setHeader(
    "Link",
    links.map(([url, rel]) => `<${url}>; rel="${rel}"`),
  );
}

export function createOktaSim(opts: SimOptions): {
  app: express.Express;
  org: OktaOrg;
  limiter: RateLimiter;
  /** Ends any `/load` still generating changes. */
  stop: () => void;
} {
  const loads = new Set<NodeJS.Timeout>();
  const org = new OktaOrg(opts.appId);
  const limiter = new RateLimiter();
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.use(express.json());

  app.use((req, res, next) => {
    if (req.get("authorization") !== `SSWS ${opts.token}`)
      return oktaError(res, 401, "E0000011", "Invalid token provided");
    next();
  });

  /**
   * Injected failures, for tests of the agent's error handling: the next `count` API calls whose path starts
   * with `pathPrefix` answer `status` with the Okta error Okta documents for it.
   */
  const faults: { pathPrefix: string; status: number; count: number }[] = [];
  const FAULT_CODES: Record<number, [string, string]> = {
    400: ["E0000001", "Api validation failed"],
    401: ["E0000011", "Invalid token provided"],
    403: ["E0000006", "You do not have permission to perform the requested action"],
    404: ["E0000007", "Not found: Resource not found"],
    500: ["E0000009", "Internal Server Error"],
  };
  app.use("/api", (req, res, next) => {
    const f = faults.find((x) => x.count > 0 && `/api${req.path}`.startsWith(x.pathPrefix));
    if (!f) return next();
    f.count--;
    const [code, summary] = FAULT_CODES[f.status] ?? ["E0000009", "Internal Server Error"];
    oktaError(res, f.status, code, summary);
  });

  const limited = (bucket: Bucket) => (_req: Request, res: Response, next: NextFunction) => {
    const v = limiter.take(bucket);
    res.set(v.headers);
    if (!v.allowed)
      return oktaError(res, 429, "E0000047", "API call exceeded rate limit due to too many requests.");
    next();
  };
  const base = (req: Request) => `${req.protocol}://${req.get("host")}`;

  app.get("/api/v1/logs", limited("logs"), (req, res) => {
    const q = req.query as Record<string, string | undefined>;
    const limit = Math.min(1000, Math.max(1, Number(q.limit ?? 100) || 100));
    const ascending = (q.sortOrder ?? "ASCENDING").toUpperCase() === "ASCENDING";
    const polling = q.until === undefined && ascending;
    const since = q.since ? Date.parse(q.since) : Date.now() - 7 * 86_400_000;
    if (Number.isNaN(since)) return oktaError(res, 400, "E0000001", "Api validation failed: since");
    const filter = q.filter ? parseLogFilter(q.filter) : () => true;
    if (!filter) return oktaError(res, 400, "E0000031", "Invalid search criteria.");
    const after = q.after !== undefined ? decodeAfter(q.after) : -1;
    if (after === undefined) return oktaError(res, 400, "E0000031", "Invalid search criteria.");
    const until = q.until ? Date.parse(q.until) : Number.POSITIVE_INFINITY;
    const page: LogEvent[] = [];
    let scanned = after;
    for (let i = after + 1; i < org.events.length && page.length < limit; i++) {
      const e = org.events[i]!;
      scanned = i;
      const t = Date.parse(e.published);
      if (t < since || t >= until) continue;
      if (filter(e)) page.push(e);
    }
    const params = new URLSearchParams();
    for (const k of ["since", "until", "filter", "q", "sortOrder"] as const)
      if (q[k] !== undefined) params.set(k, q[k]!);
    params.set("limit", String(limit));
    const self = `${base(req)}/api/v1/logs?${new URLSearchParams(q as Record<string, string>)}`;
    const links: [string, string][] = [[self, "self"]];
    // A polling request always has a next link: the place to ask again, even when the page is empty.
    if (polling || page.length === limit) {
      params.set("after", encodeAfter(scanned));
      links.push([`${base(req)}/api/v1/logs?${params}`, "next"]);
    }
    link(res, links);
    res.json((ascending ? page : page.reverse()).map(publicEvent));
  });

  const appUserJson = (au: AppUser, expand: boolean, req: Request) => ({
    ...au,
    ...(expand ? { _embedded: { user: { ...org.users.get(au.id) } } } : {}),
    _links: {
      app: { href: `${base(req)}/api/v1/apps/${opts.appId}` },
      user: { href: `${base(req)}/api/v1/users/${au.id}` },
    },
  });

  app.get("/api/v1/apps/:appId/users", limited("apps"), (req, res) => {
    if (req.params.appId !== opts.appId)
      return oktaError(
        res,
        404,
        "E0000007",
        `Not found: Resource not found: ${req.params.appId} (AppInstance)`,
      );
    const q = req.query as Record<string, string | undefined>;
    const limit = Math.min(500, Math.max(1, Number(q.limit ?? 50) || 50));
    const { page: ids, next } = pageAfter(org.sortedAppUserIds(), q.after, limit);
    const page = ids.map((id) => org.appUsers.get(id)!);
    const links: [string, string][] = [[`${base(req)}${req.originalUrl}`, "self"]];
    if (next) {
      const p = new URLSearchParams({ ...(q as Record<string, string>), after: next, limit: String(limit) });
      links.push([`${base(req)}/api/v1/apps/${opts.appId}/users?${p}`, "next"]);
    }
    link(res, links);
    res.json(page.map((au) => appUserJson(au, q.expand === "user", req)));
  });

  app.get("/api/v1/apps/:appId/users/:userId", limited("apps"), (req, res) => {
    const au = req.params.appId === opts.appId ? org.appUsers.get(String(req.params.userId)) : undefined;
    if (!au)
      return oktaError(res, 404, "E0000007", `Not found: Resource not found: ${req.params.userId} (AppUser)`);
    res.json(appUserJson(au, req.query.expand === "user", req));
  });

  app.get("/api/v1/apps/:appId/group-push/mappings", limited("apps"), (_req, res) => {
    res.json([...org.pushed.values()].map((m) => ({ ...m, targetGroupId: null })));
  });

  app.get("/api/v1/users/:id", limited("users"), (req, res) => {
    const u = org.users.get(String(req.params.id));
    if (!u) return oktaError(res, 404, "E0000007", `Not found: Resource not found: ${req.params.id} (User)`);
    res.json(u);
  });

  // Okta's "List all groups of a user": every group the user belongs to, in one page.
  app.get("/api/v1/users/:id/groups", limited("users"), (req, res) => {
    const id = String(req.params.id);
    if (!org.users.has(id))
      return oktaError(res, 404, "E0000007", `Not found: Resource not found: ${id} (User)`);
    res.json(
      [...org.groups.values()]
        .filter((g) => g.members.has(id))
        .map((g) => ({ id: g.id, type: "OKTA_GROUP", profile: g.profile })),
    );
  });

  app.get("/api/v1/groups/:id", limited("groups"), (req, res) => {
    const g = org.groups.get(String(req.params.id));
    if (!g)
      return oktaError(res, 404, "E0000007", `Not found: Resource not found: ${req.params.id} (UserGroup)`);
    res.json({ id: g.id, type: "OKTA_GROUP", profile: g.profile });
  });

  app.get("/api/v1/groups/:id/users", limited("groups"), (req, res) => {
    const g = org.groups.get(String(req.params.id));
    if (!g)
      return oktaError(res, 404, "E0000007", `Not found: Resource not found: ${req.params.id} (UserGroup)`);
    const q = req.query as Record<string, string | undefined>;
    const limit = Math.min(1000, Math.max(1, Number(q.limit ?? 1000) || 1000));
    const { page, next } = pageAfter([...g.members].sort(), q.after, limit);
    if (next) link(res, [[`${base(req)}/api/v1/groups/${g.id}/users?limit=${limit}&after=${next}`, "next"]]);
    res.json(page.map((id) => org.users.get(id)));
  });

  // The control API: drive the org, read what the app should now hold.
  const control = express.Router();
  // biome-ignore lint/suspicious/noExplicitAny: control API bodies are checked by the org methods
  const handle = (fn: (body: Record<string, any>) => unknown) => (req: Request, res: Response) => {
    try {
      res.json(fn(req.body ?? {}) ?? { ok: true });
    } catch (err) {
      const status = err instanceof SimError ? err.status : 400;
      res.status(status).json({ error: (err as Error).message });
    }
  };
  control.post(
    "/users",
    handle((b) => org.createUser(b as { login: string })),
  );
  control.post(
    "/assign",
    handle((b) => org.assign(b.userId)),
  );
  control.post(
    "/unassign",
    handle((b) => org.unassign(b.userId)),
  );
  control.post(
    "/profile",
    handle((b) => org.updateProfile(b.userId, b.profile)),
  );
  control.post(
    "/lifecycle",
    handle((b) => org.lifecycle(b.userId, b.action)),
  );
  control.post(
    "/groups",
    handle((b) => ({ id: org.createGroup(b.name).id })),
  );
  control.post(
    "/rename-group",
    handle((b) => org.renameGroup(b.groupId, b.name)),
  );
  control.post(
    "/membership",
    handle((b) => org.membership(b.groupId, b.userId, b.add !== false)),
  );
  control.post(
    "/push",
    handle((b) => org.push(b.groupId)),
  );
  control.post(
    "/unpush",
    handle((b) => org.unpush(b.groupId)),
  );
  /** Creates `users` users and assigns them, then makes `updates` profile changes, at `perSecond` operations. */
  control.post(
    "/load",
    handle((b) => {
      const users = Number(b.users ?? 0);
      const updates = Number(b.updates ?? 0);
      const perSecond = Number(b.perSecond ?? 0);
      const prefix = String(b.prefix ?? "load");
      const ids: string[] = [];
      let i = 0;
      const step = () => {
        if (i < users) {
          const u = org.createUser({
            login: `${prefix}${i}@example.com`,
            firstName: `F${i}`,
            lastName: `L${i}`,
          });
          org.assign(u.id);
          ids.push(u.id);
        } else if (i < users + updates && ids.length) {
          const id = ids[(i * 7919) % ids.length]!;
          org.updateProfile(id, { lastName: `L${i}-updated` });
        }
        i++;
      };
      const total = users + updates;
      if (!perSecond) {
        while (i < total) step();
        return { started: total, done: true };
      }
      const interval = setInterval(() => {
        for (let k = 0; k < Math.max(1, Math.round(perSecond / 50)) && i < total; k++) step();
        if (i >= total) {
          clearInterval(interval);
          loads.delete(interval);
        }
      }, 20);
      loads.add(interval);
      return { started: total, done: false };
    }),
  );
  control.put(
    "/faults",
    handle((b) => {
      faults.length = 0;
      for (const f of (b.faults ?? []) as { pathPrefix: string; status: number; count?: number }[])
        faults.push({
          pathPrefix: String(f.pathPrefix),
          status: Number(f.status),
          count: Number(f.count ?? 1),
        });
      return { faults };
    }),
  );
  control.get("/truth", (_req, res) => res.json(org.truth()));
  control.get("/stats", (_req, res) => {
    const total = Object.values(limiter.calls).reduce((a, b) => a + b, 0);
    res.json({
      apiCalls: { ...limiter.calls, total },
      rateLimited: limiter.rejected,
      events: org.events.length,
    });
  });
  control.put(
    "/rate-limits",
    handle((b) => {
      if (typeof b.enabled === "boolean") limiter.config.enabled = b.enabled;
      if (b.perMinute) Object.assign(limiter.config.perMinute, b.perMinute);
      if (b.storm) limiter.startStorm(Number(b.storm));
      return limiter.config;
    }),
  );
  app.use("/sim", control);
  app.use((_req, res) =>
    oktaError(res, 404, "E0000022", "The endpoint does not support the provided HTTP method"),
  );
  return {
    app,
    org,
    limiter,
    stop: () => {
      for (const t of loads) clearInterval(t);
      loads.clear();
    },
  };
}
