/** The Okta simulator on a free port, and a comparison of a connector's contents with its ground truth. */
import type { Server } from "node:http";
import { createOktaSim } from "../../src/okta-sim/server.js";

import { diffWithTruth, type Get, type Truth } from "../../src/okta-sim/truth-diff.js";

export { diffWithTruth, type Truth };

export const SIM_TOKEN = "sim-token-0123456789";
export const APP_ID = "0oatestapp00000000";

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
