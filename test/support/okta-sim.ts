/** The Okta simulator on a free port, and a comparison of a connector's contents with its ground truth. */
import type { Server } from "node:http";
import { createOktaSim } from "../../src/okta-sim/server.js";

export const SIM_TOKEN = "sim-token-0123456789";
export const APP_ID = "0oatestapp00000000";

export interface Truth {
  users: {
    externalId: string;
    assigned: boolean;
    userName: string;
    active: boolean;
    givenName: string;
    familyName: string;
    email: string;
  }[];
  groups: { externalId: string; displayName: string; members: string[] }[];
}

// biome-ignore lint/suspicious/noExplicitAny: the control API answers arbitrary JSON
type ControlReply = any;

/** A call to a simulator's control API (/sim) at `url`, in-process or in a container. */
export async function simControl(
  url: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<ControlReply> {
  const res = await fetch(`${url}/sim${path}`, {
    method,
    headers: { authorization: `SSWS ${token}`, "content-type": "application/json" },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  if (res.status >= 400) throw new Error(`${method} /sim${path} → ${res.status} ${await res.text()}`);
  return res.json();
}

export class SimHandle {
  private constructor(
    readonly url: string,
    private readonly server: Server,
    readonly sim: ReturnType<typeof createOktaSim>,
  ) {}

  /** Okta's budgets (a few hundred calls a minute) would make these tests wait for minutes; bursts and 429s are tested on purpose. */
  static async start(opts: { oktaBudgets?: boolean } = {}): Promise<SimHandle> {
    const sim = createOktaSim({ token: SIM_TOKEN, appId: APP_ID });
    if (!opts.oktaBudgets)
      sim.limiter.config.perMinute = {
        logs: 1_000_000,
        apps: 1_000_000,
        users: 1_000_000,
        groups: 1_000_000,
      };
    const server = await new Promise<Server>((resolve) => {
      const s = sim.app.listen(0, "127.0.0.1", () => resolve(s));
    });
    const { port } = server.address() as { port: number };
    return new SimHandle(`http://127.0.0.1:${port}`, server, sim);
  }

  // biome-ignore lint/suspicious/noExplicitAny: the control API answers arbitrary JSON
  control(method: string, path: string, body?: unknown): Promise<any> {
    return simControl(this.url, SIM_TOKEN, method, path, body);
  }

  agentEnv(extra: Record<string, string> = {}): Record<string, string> {
    return {
      PROVISIOND_AGENT_SOURCE: "okta-sim",
      PROVISIOND_OKTA_ORG_URL: this.url,
      PROVISIOND_OKTA_API_TOKEN: SIM_TOKEN,
      PROVISIOND_OKTA_APP_ID: APP_ID,
      PROVISIOND_AGENT_START_AT: new Date(Date.now() - 60_000).toISOString(),
      PROVISIOND_AGENT_POLL_MS: "50",
      ...extra,
    };
  }

  async stop(): Promise<void> {
    this.sim.stop();
    await new Promise<void>((r) => {
      this.server.close(() => r());
      this.server.closeAllConnections();
    });
  }
}

// biome-ignore lint/suspicious/noExplicitAny: SCIM JSON read by the comparison
type Get = (path: string) => Promise<{ status: number; body: any }>;

interface ScimUserJson {
  id: string;
  externalId?: string;
  userName: string;
  active?: boolean;
  name?: { givenName?: string; familyName?: string };
  emails?: { value: string }[];
}

/** Differences between the connector (read through `get`) and the simulator's ground truth; empty when equal. */
export async function diffWithTruth(get: Get, truth: Truth): Promise<string[]> {
  const diffs: string[] = [];
  const all: ScimUserJson[] = [];
  for (let start = 1; ; start += 1000) {
    const page = await get(`/Users?startIndex=${start}&count=1000`);
    all.push(...page.body.Resources);
    if (page.body.Resources.length < 1000) break;
  }
  const byExt = new Map(all.map((u) => [u.externalId, u]));
  for (const t of truth.users) {
    const u = byExt.get(t.externalId);
    if (!u) {
      if (t.active) diffs.push(`missing user ${t.userName}`);
      continue;
    }
    // An unassigned user's account is deactivated; the profile it keeps is what it had when the agent last
    // saw it assigned, and a change Okta logged in the same round as the unassignment may not reach it
    // (README, "Guarantees and their limits"). Only the deactivation is compared.
    if (!t.assigned) {
      if (u.active !== false) diffs.push(`user ${t.externalId}: unassigned but still active`);
      continue;
    }
    const got = {
      userName: u.userName,
      active: u.active ?? true,
      givenName: u.name?.givenName,
      familyName: u.name?.familyName,
      email: u.emails?.[0]?.value,
    };
    const want = {
      userName: t.userName,
      active: t.active,
      givenName: t.givenName,
      familyName: t.familyName,
      email: t.email,
    };
    if (JSON.stringify(got) !== JSON.stringify(want))
      diffs.push(`user ${t.externalId}: have ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
  const known = new Set(truth.users.map((u) => u.externalId));
  for (const u of all) if (!known.has(u.externalId ?? "")) diffs.push(`unexpected user ${u.userName}`);
  const idToExt = new Map(all.map((u) => [u.id, u.externalId]));
  const groups = (await get("/Groups?count=1000")).body.Resources as {
    externalId?: string;
    displayName: string;
    members?: { value: string }[];
  }[];
  for (const t of truth.groups) {
    const g = groups.find((x) => x.externalId === t.externalId);
    if (!g) {
      diffs.push(`missing group ${t.displayName}`);
      continue;
    }
    const members = (g.members ?? []).map((m) => idToExt.get(m.value)).sort();
    if (g.displayName !== t.displayName || JSON.stringify(members) !== JSON.stringify(t.members)) {
      diffs.push(
        `group ${t.displayName}: have ${g.displayName} ${JSON.stringify(members)}, want ${JSON.stringify(t.members)}`,
      );
    }
  }
  return diffs;
}

/** Polls `check` until it returns true; for conditions that have no event to await (state across processes). */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Waits until the connector (read through `get`) matches the simulator's ground truth; says what differs if not. */
export async function waitConverged(sim: SimHandle, get: Get, what = "the connector to match the simulator") {
  let diff: string[] = [];
  await waitFor(
    what,
    async () => {
      diff = await diffWithTruth(get, (await sim.control("GET", "/truth")) as Truth);
      return diff.length === 0;
    },
    120_000,
  ).catch((err) => {
    throw new Error(
      `${(err as Error).message}: ${diff.length} differences, e.g. ${diff.slice(0, 3).join("; ")}`,
    );
  });
}
