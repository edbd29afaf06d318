/**
 * `provisiond okta-sim`: the subset of Okta's API the agent uses, served as Okta documents it (SSWS auth,
 * System Log polling with `next` links, app users with `expand=user`, groups, group push mappings, rate-limit
 * headers and 429s), plus a control API under /sim to drive an org and read the ground truth.
 */
import { randomUUID } from "node:crypto";
import express, { type NextFunction, type Request, type Response } from "express";
import { type Bucket, RateLimiter } from "./rate-limits.js";
import { type AppUser, LIFECYCLE_ACTIONS, type LogEvent, OktaOrg, SimError } from "./state.js";

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

/**
 * A control-API body field: what readBody enforces, and what the route list shows (simRoutes). Strings are
 * non-empty; fields not in an object's spec are refused.
 */
type Spec =
  | {
      readonly kind: "string";
      readonly optional?: true;
      readonly match?: readonly [RegExp, string];
      readonly label?: string;
    }
  | { readonly kind: "boolean"; readonly optional?: true }
  | { readonly kind: "int"; readonly optional?: true; readonly min: number; readonly max: number }
  | { readonly kind: "enum"; readonly optional?: true; readonly values: readonly string[] }
  | ObjectSpec
  | { readonly kind: "array"; readonly optional?: true; readonly of: Spec };
interface ObjectSpec {
  readonly kind: "object";
  readonly optional?: true;
  readonly fields: { readonly [name: string]: Spec };
  /** At least one field must be set. */
  readonly nonEmpty?: true;
}

/** The value a spec admits, as TypeScript sees it: what the route's handler receives. */
type OptionalKeys<F> = { [K in keyof F]: F[K] extends { optional: true } ? K : never }[keyof F];
type Infer<S> = S extends { kind: "string" }
  ? string
  : S extends { kind: "boolean" }
    ? boolean
    : S extends { kind: "int" }
      ? number
      : S extends { kind: "enum"; values: readonly (infer V)[] }
        ? V
        : S extends { kind: "array"; of: infer O }
          ? Infer<O>[]
          : S extends { kind: "object"; fields: infer F }
            ? { [K in Exclude<keyof F, OptionalKeys<F>>]: Infer<F[K]> } & {
                [K in OptionalKeys<F>]?: Infer<F[K]>;
              }
            : never;

const str = { kind: "string" } as const;
const email = { kind: "string", match: [/^[^@\s]+@[^@\s]+$/, "an email address"], label: "email" } as const;
const int = (min: number, max: number) => ({ kind: "int", min, max }) as const;
const bool = { kind: "boolean" } as const;
const opt = <S extends Spec>(s: S): S & { readonly optional: true } => ({ ...s, optional: true });
const obj = <F extends { readonly [name: string]: Spec }>(fields: F) => ({ kind: "object", fields }) as const;
const MAX = Number.MAX_SAFE_INTEGER;
const profileFields = { login: opt(str), email: opt(email), firstName: opt(str), lastName: opt(str) };

/**
 * The control API, one entry a route: its body and what it does. The router, `GET /sim`, `provisiond okta-sim
 * --help` and README's table ("The Okta simulator", checked by test/unit/okta-sim-control.test.ts) all come
 * from here.
 */
export const SIM_ROUTES = [
  { method: "GET", path: "/sim", does: "lists these routes (method, path, body, what it does) as JSON" },
  {
    method: "POST",
    path: "/sim/users",
    body: obj({ login: str, email: opt(email), firstName: opt(str), lastName: opt(str) }),
    does: "creates an ACTIVE user (email defaults to login, names to First Last); answers the user",
  },
  {
    method: "POST",
    path: "/sim/assign",
    body: obj({ userId: str }),
    does: "assigns the user to the app; answers the app user",
  },
  {
    method: "POST",
    path: "/sim/unassign",
    body: obj({ userId: str }),
    does: "removes the user's assignment (404 if it has none)",
  },
  {
    method: "POST",
    path: "/sim/profile",
    body: obj({ userId: str, profile: { ...obj(profileFields), nonEmpty: true } }),
    does: "changes the user's profile; an assigned user's app profile (and userName) follow",
  },
  {
    method: "POST",
    path: "/sim/lifecycle",
    body: obj({ userId: str, action: { kind: "enum", values: LIFECYCLE_ACTIONS } }),
    does: "deactivate: DEPROVISIONED, suspend: SUSPENDED, reactivate and unsuspend: ACTIVE",
  },
  { method: "POST", path: "/sim/groups", body: obj({ name: str }), does: "creates a group; answers {id}" },
  {
    method: "POST",
    path: "/sim/rename-group",
    body: obj({ groupId: str, name: str }),
    does: "renames the group",
  },
  {
    method: "POST",
    path: "/sim/membership",
    body: obj({ groupId: str, userId: str, add: opt(bool) }),
    does: "adds the user to the group (add: false removes)",
  },
  {
    method: "POST",
    path: "/sim/push",
    body: obj({ groupId: str }),
    does: "pushes the group to the app (a group push mapping)",
  },
  {
    method: "POST",
    path: "/sim/unpush",
    body: obj({ groupId: str }),
    does: "removes the group's push mapping",
  },
  {
    method: "POST",
    path: "/sim/load",
    body: obj({
      users: int(1, 1_000_000),
      updates: opt(int(0, 1_000_000)),
      perSecond: opt(int(0, 100_000)),
      prefix: opt(str),
    }),
    does:
      "creates and assigns `users` users `<prefix><n>@example.com` (prefix: load), then makes `updates` " +
      "profile changes among them, `perSecond` operations a second (0: all before answering); answers its progress",
  },
  {
    method: "GET",
    path: "/sim/load",
    does:
      "progress of the loads so far: {running, requested, done, startedAt, finishedAt, loads: [each one's]}; " +
      "running is false once every load has finished",
  },
  {
    method: "PUT",
    path: "/sim/faults",
    body: obj({
      faults: {
        kind: "array",
        of: obj({
          pathPrefix: { kind: "string", match: [/^\/api\//, "a path starting with /api/"] },
          status: int(400, 599),
          count: opt(int(1, MAX)),
        }),
      },
    }),
    does: "replaces the injected faults: the next `count` (1) /api calls under pathPrefix answer Okta's error for status",
  },
  {
    method: "PUT",
    path: "/sim/rate-limits",
    body: obj({
      enabled: opt(bool),
      perMinute: opt({
        ...obj({
          logs: opt(int(1, MAX)),
          apps: opt(int(1, MAX)),
          users: opt(int(1, MAX)),
          groups: opt(int(1, MAX)),
        }),
        nonEmpty: true,
      }),
      storm: opt(int(0, MAX)),
    }),
    does: "turns rate limits on or off, sets per-minute budgets, or answers the next `storm` calls 429; answers the limits",
  },
  { method: "GET", path: "/sim/truth", does: "what the app should hold now: {users, groups}" },
  {
    method: "GET",
    path: "/sim/stats",
    does: "API calls per endpoint family, 429s answered, System Log events",
  },
] as const satisfies readonly {
  method: "GET" | "POST" | "PUT";
  path: string;
  body?: ObjectSpec;
  does: string;
}[];

type SimRoute = (typeof SIM_ROUTES)[number];
type ControlHandlers = {
  [R in SimRoute as `${R["method"]} ${R["path"]}`]: (
    body: R extends { body: infer B } ? Infer<B> : undefined,
  ) => unknown;
};

function describe(s: Spec): string {
  switch (s.kind) {
    case "string":
      return s.label ?? "string";
    case "boolean":
      return "boolean";
    case "int":
      return "int";
    case "enum":
      return s.values.join("|");
    case "array":
      return `[${describe(s.of)}]`;
    case "object":
      return `{${Object.entries(s.fields)
        .map(
          ([k, f]) =>
            `${k}${f.optional ? "?" : ""}${f.kind === "string" && !f.label ? "" : `: ${describe(f)}`}`,
        )
        .join(", ")}}`;
  }
}

/** The control API's routes as GET /sim and --help show them; a body `-` takes none. */
export function simRoutes(): { method: string; path: string; body: string; does: string }[] {
  return SIM_ROUTES.map((r) => ({
    method: r.method,
    path: r.path,
    body: "body" in r ? describe(r.body) : "-",
    does: r.does,
  }));
}

/** `text` in lines of at most `width` characters, each after `indent`. */
function wrap(text: string, indent: string, width = 110): string {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && indent.length + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line].map((l) => indent + l).join("\n");
}

/** The control API for `provisiond okta-sim --help`. */
export function simUsage(): string {
  return [
    "control API (Authorization: SSWS <token>; bodies are JSON objects with Content-Type: application/json;",
    'a bad body is answered 400 {"error", "field"} and changes nothing; "?" marks an optional field):',
    ...simRoutes().map(
      (r) => `  ${r.method.padEnd(4)} ${r.path.padEnd(17)} ${r.body}\n${wrap(r.does, " ".repeat(7))}`,
    ),
  ].join("\n");
}

/** A control-API body that does not match its route's spec, naming the field. */
class BodyError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

function check(spec: Spec, v: unknown, field: string): unknown {
  const at = (k: string) => (field ? `${field}.${k}` : k);
  switch (spec.kind) {
    case "string":
      if (typeof v !== "string" || v.trim() === "") throw new BodyError(field, "must be a non-empty string");
      if (spec.match && !spec.match[0].test(v)) throw new BodyError(field, `must be ${spec.match[1]}`);
      return v;
    case "boolean":
      if (typeof v !== "boolean") throw new BodyError(field, "must be true or false");
      return v;
    case "int":
      if (typeof v !== "number" || !Number.isInteger(v) || v < spec.min || v > spec.max)
        throw new BodyError(field, `must be an integer from ${spec.min} to ${spec.max}`);
      return v;
    case "enum":
      if (typeof v !== "string" || !spec.values.includes(v))
        throw new BodyError(field, `must be one of ${spec.values.join(", ")} (got ${JSON.stringify(v)})`);
      return v;
    case "array":
      if (!Array.isArray(v)) throw new BodyError(field, "must be an array");
      return v.map((x, i) => check(spec.of, x, `${field}[${i}]`));
    case "object": {
      if (typeof v !== "object" || v === null || Array.isArray(v))
        throw new BodyError(field || "body", "must be a JSON object");
      const names = Object.keys(spec.fields);
      for (const k of Object.keys(v))
        if (!Object.hasOwn(spec.fields, k))
          throw new BodyError(at(k), `unknown field (${field || "the body"} takes ${names.join(", ")})`);
      const out: Record<string, unknown> = {};
      for (const [k, s] of Object.entries(spec.fields)) {
        const x = (v as Record<string, unknown>)[k];
        if (x === undefined) {
          if (!s.optional) throw new BodyError(at(k), "is required");
        } else out[k] = check(s, x, at(k));
      }
      if (spec.nonEmpty && !Object.keys(out).length)
        throw new BodyError(field || "body", `must set at least one of ${names.join(", ")}`);
      return out;
    }
  }
}

/** A route's body, checked against its spec; no body at all reads as `{}`. */
function readBody(spec: ObjectSpec, req: Request): unknown {
  let body: unknown = req.body;
  if (body === undefined) {
    const sent =
      req.headers["transfer-encoding"] !== undefined ||
      (req.headers["content-length"] !== undefined && req.headers["content-length"] !== "0");
    if (sent) throw new BodyError("body", "must be JSON sent with Content-Type: application/json");
    body = {};
  }
  return check(spec, body, "");
}

/** One `POST /sim/load`, as `GET /sim/load` reports it. */
interface LoadProgress {
  id: number;
  users: number;
  updates: number;
  perSecond: number;
  prefix: string;
  /** Operations asked for: users + updates. */
  requested: number;
  done: number;
  running: boolean;
  /** Ended by the simulator's stop() before it finished. */
  stopped: boolean;
  startedAt: string;
  finishedAt: string | null;
}

export function createOktaSim(opts: SimOptions): {
  app: express.Express;
  org: OktaOrg;
  limiter: RateLimiter;
  /** Ends any `/load` still generating changes. */
  stop: () => void;
} {
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

  // The control API: drive the org, read what the app should now hold. Its routes are SIM_ROUTES.
  const loads: LoadProgress[] = [];
  const loadTimers = new Map<LoadProgress, NodeJS.Timeout>();
  const loadsJson = () => {
    const running = loads.some((l) => l.running);
    // Set once every load has finished (none running, none ended by stop()): when the last one did.
    const finished = loads.map((l) => l.finishedAt);
    return {
      running,
      requested: loads.reduce((a, l) => a + l.requested, 0),
      done: loads.reduce((a, l) => a + l.done, 0),
      startedAt: loads[0]?.startedAt ?? null,
      finishedAt: !loads.length || finished.includes(null) ? null : finished.sort().at(-1)!,
      loads: loads.map((l) => ({ ...l })),
    };
  };
  const handlers: ControlHandlers = {
    "GET /sim": () => ({ routes: simRoutes() }),
    "POST /sim/users": (b) => org.createUser(b),
    "POST /sim/assign": (b) => org.assign(b.userId),
    "POST /sim/unassign": (b) => org.unassign(b.userId),
    "POST /sim/profile": (b) => org.updateProfile(b.userId, b.profile),
    "POST /sim/lifecycle": (b) => org.lifecycle(b.userId, b.action),
    "POST /sim/groups": (b) => ({ id: org.createGroup(b.name).id }),
    "POST /sim/rename-group": (b) => org.renameGroup(b.groupId, b.name),
    "POST /sim/membership": (b) => org.membership(b.groupId, b.userId, b.add !== false),
    "POST /sim/push": (b) => org.push(b.groupId),
    "POST /sim/unpush": (b) => org.unpush(b.groupId),
    "POST /sim/load": (b) => {
      const { users, updates = 0, perSecond = 0, prefix = "load" } = b;
      const load: LoadProgress = {
        id: loads.length + 1,
        users,
        updates,
        perSecond,
        prefix,
        requested: users + updates,
        done: 0,
        running: true,
        stopped: false,
        startedAt: new Date().toISOString(),
        finishedAt: null,
      };
      loads.push(load);
      const ids: string[] = [];
      const step = () => {
        const i = load.done;
        if (i < users) {
          const u = org.createUser({
            login: `${prefix}${i}@example.com`,
            firstName: `F${i}`,
            lastName: `L${i}`,
          });
          org.assign(u.id);
          ids.push(u.id);
        } else {
          const id = ids[(i * 7919) % ids.length]!;
          org.updateProfile(id, { lastName: `L${i}-updated` });
        }
        load.done++;
        if (load.done === load.requested) {
          load.running = false;
          load.finishedAt = new Date().toISOString();
        }
      };
      if (!perSecond) while (load.running) step();
      else {
        const interval = setInterval(() => {
          for (let k = 0; k < Math.max(1, Math.round(perSecond / 50)) && load.running; k++) step();
          if (!load.running) {
            clearInterval(interval);
            loadTimers.delete(load);
          }
        }, 20);
        loadTimers.set(load, interval);
      }
      return { ...load };
    },
    "GET /sim/load": () => loadsJson(),
    "PUT /sim/faults": (b) => {
      faults.length = 0;
      for (const f of b.faults)
        faults.push({ pathPrefix: f.pathPrefix, status: f.status, count: f.count ?? 1 });
      return { faults };
    },
    "PUT /sim/rate-limits": (b) => {
      if (b.enabled !== undefined) limiter.config.enabled = b.enabled;
      if (b.perMinute) Object.assign(limiter.config.perMinute, b.perMinute);
      if (b.storm) limiter.startStorm(b.storm);
      return limiter.config;
    },
    "GET /sim/truth": () => org.truth(),
    "GET /sim/stats": () => {
      const total = Object.values(limiter.calls).reduce((a, b) => a + b, 0);
      return {
        apiCalls: { ...limiter.calls, total },
        rateLimited: limiter.rejected,
        events: org.events.length,
      };
    },
  };
  const control = express.Router();
  for (const route of SIM_ROUTES) {
    const fn = handlers[`${route.method} ${route.path}` as keyof ControlHandlers] as (
      body: unknown,
    ) => unknown;
    const spec: ObjectSpec | undefined = "body" in route ? route.body : undefined;
    const method = route.method === "GET" ? "get" : route.method === "PUT" ? "put" : "post";
    control[method](route.path.slice("/sim".length) || "/", (req: Request, res: Response) => {
      try {
        res.json(fn(spec ? readBody(spec, req) : undefined) ?? { ok: true });
      } catch (err) {
        if (err instanceof BodyError) res.status(400).json({ error: err.message, field: err.field });
        else if (err instanceof SimError) res.status(err.status).json({ error: err.message });
        else res.status(500).json({ error: (err as Error).message });
      }
    });
  }
  app.use("/sim", control);
  // A body express.json() refused (not JSON, too large, a charset it cannot read): 4xx naming the body.
  app.use("/sim", (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (req.get("authorization") !== `SSWS ${opts.token}`)
      return oktaError(res, 401, "E0000011", "Invalid token provided");
    const e = err as { type?: string; status?: number; message?: string };
    const status = e.status && e.status >= 400 && e.status < 500 ? e.status : 400;
    const why = e.type === "entity.parse.failed" ? `not JSON (${e.message})` : String(e.message);
    res.status(status).json({ error: `body: ${why}`, field: "body" });
  });
  app.use("/sim", (req, res) => {
    const path = `/sim${req.path === "/" ? "" : req.path.replace(/\/$/, "")}`;
    const allow = SIM_ROUTES.filter((r) => r.path === path).map((r) => r.method);
    if (allow.length) res.status(405).set("Allow", allow.join(", "));
    else res.status(404);
    res.json({ error: `no control route ${req.method} ${path}; GET /sim lists them` });
  });
  app.use((_req, res) =>
    oktaError(res, 404, "E0000022", "The endpoint does not support the provided HTTP method"),
  );
  return {
    app,
    org,
    limiter,
    stop: () => {
      for (const [load, t] of loadTimers) {
        clearInterval(t);
        load.running = false;
        load.stopped = true;
      }
      loadTimers.clear();
    },
  };
}
