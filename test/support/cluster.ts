/**
 * A provisiond cluster of real processes: etcd, MariaDB, the Okta simulator (in this process) and N nodes as
 * child processes, so tests can SIGKILL, SIGSTOP and SIGTERM them.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EtcdCluster } from "./etcd.js";
import { freePort, MariaDb } from "./mariadb.js";
import { AGENT_TOKEN, TOKEN } from "./node.js";
import { SimHandle } from "./okta-sim.js";
import { running } from "./process.js";
import { ScimProxy } from "./scim-proxy.js";
import { ROOT } from "./vectors.js";

export interface NodeProc {
  id: string;
  scimPort: number;
  adminPort: number;
  dataDir: string;
  proc?: ChildProcess;
  log: string[];
  /** With `proxies`, the agent's SCIM requests go through this proxy to the node's own connector. */
  proxy?: ScimProxy;
}

export class Cluster {
  private constructor(
    readonly etcd: EtcdCluster,
    readonly maria: MariaDb,
    readonly sim: SimHandle,
    readonly storeUrl: string,
    readonly nodes: NodeProc[],
    private readonly env: Record<string, string>,
    private readonly nodeArgs: string[] = [],
  ) {}

  /** `nodeArgs`: extra node flags for the provisiond processes, e.g. --cpu-prof for a profiling run. */
  static async start(
    opts: {
      nodes?: number;
      ttlMs?: number;
      env?: Record<string, string>;
      nodeArgs?: string[];
      proxies?: boolean;
      etcdMembers?: number;
    } = {},
  ): Promise<Cluster> {
    const [etcd, maria, sim] = await Promise.all([
      EtcdCluster.start(opts.etcdMembers ?? 1),
      MariaDb.start({ fast: true }),
      SimHandle.start(),
    ]);
    const storeUrl = await maria.createDatabase("cluster");
    const nodes: NodeProc[] = [];
    for (let i = 0; i < (opts.nodes ?? 2); i++) {
      const n: NodeProc = {
        id: `node-${i}`,
        scimPort: await freePort(),
        adminPort: await freePort(),
        dataDir: mkdtempSync(join(tmpdir(), "provisiond-cnode-")),
        log: [],
      };
      if (opts.proxies) {
        n.proxy = await ScimProxy.start();
        n.proxy.setUpstream(`http://127.0.0.1:${n.scimPort}`);
      }
      nodes.push(n);
    }
    const env = {
      ...sim.agentEnv(),
      PROVISIOND_ETCD_ENDPOINTS: etcd.endpoints.join(","),
      PROVISIOND_LEASE_TTL_MS: String(opts.ttlMs ?? 2000),
      PROVISIOND_STORE_URL: storeUrl,
      PROVISIOND_SCIM_TOKEN: TOKEN,
      PROVISIOND_LOG_LEVEL: "info",
      PROVISIOND_BREAKER_VOLUME_THRESHOLD: "3",
      PROVISIOND_BREAKER_RESET_MS: "1000",
      ...opts.env,
    };
    const c = new Cluster(etcd, maria, sim, storeUrl, nodes, env, opts.nodeArgs);
    for (const n of nodes) await c.startNode(n);
    return c;
  }

  async startNode(n: NodeProc): Promise<void> {
    const proc = spawn(
      process.execPath,
      [...this.nodeArgs, "--import", "tsx", join(ROOT, "src/cli/main.ts"), "node"],
      {
        cwd: ROOT,
        env: {
          ...process.env,
          ...this.env,
          PROVISIOND_NODE_ID: n.id,
          PROVISIOND_SCIM_PORT: String(n.scimPort),
          PROVISIOND_ADMIN_PORT: String(n.adminPort),
          PROVISIOND_SCIM_HOST: "127.0.0.1",
          PROVISIOND_ADMIN_HOST: "127.0.0.1",
          PROVISIOND_DATA_DIR: n.dataDir,
          // Through a proxy to its own connector, the agent needs that connector's credential named.
          PROVISIOND_SCIM_AGENT_TOKEN: AGENT_TOKEN,
          ...(n.proxy
            ? {
                PROVISIOND_AGENT_SCIM_URL: `${n.proxy.url}/scim/v2`,
                PROVISIOND_AGENT_SCIM_TOKEN: AGENT_TOKEN,
              }
            : {}),
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    n.proc = proc;
    proc.stdout!.on("data", (c: Buffer) => n.log.push(c.toString()));
    await new Promise<void>((resolve, reject) => {
      let err = "";
      const onErr = (c: Buffer) => {
        err += c.toString();
        if (err.includes("SCIM base URL")) resolve();
      };
      proc.stderr!.on("data", onErr);
      proc.once("exit", (code) => reject(new Error(`${n.id} exited (${code}): ${err}`)));
    });
  }

  // biome-ignore lint/suspicious/noExplicitAny: /status JSON read by assertions
  async status(n: NodeProc): Promise<any> {
    const res = await fetch(`http://127.0.0.1:${n.adminPort}/status`, { signal: AbortSignal.timeout(3000) });
    return res.json();
  }

  /** The node that says it is primary, if exactly one does. */
  async primary(): Promise<NodeProc | undefined> {
    const found: NodeProc[] = [];
    for (const n of this.alive()) {
      try {
        if ((await this.status(n)).role === "primary") found.push(n);
      } catch {
        // stopped or unreachable: not primary
      }
    }
    return found.length === 1 ? found[0] : undefined;
  }

  alive(): NodeProc[] {
    return this.nodes.filter((n) => running(n.proc));
  }

  async kill(n: NodeProc, signal: NodeJS.Signals): Promise<void> {
    const p = n.proc!;
    if (signal === "SIGSTOP" || signal === "SIGCONT") {
      p.kill(signal);
      return;
    }
    const exited = new Promise<void>((r) => p.once("exit", () => r()));
    p.kill(signal);
    await exited;
  }

  /** GET through a live node's connector. */
  // biome-ignore lint/suspicious/noExplicitAny: SCIM JSON read by assertions
  async scim(path: string): Promise<{ status: number; body: any }> {
    const n = this.alive()[0]!;
    const res = await fetch(`http://127.0.0.1:${n.scimPort}/scim/v2${path}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    return { status: res.status, body: await res.json() };
  }

  async metrics(n: NodeProc): Promise<string> {
    return (await fetch(`http://127.0.0.1:${n.adminPort}/metrics`)).text();
  }

  query = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> => {
    const c = await this.maria.admin();
    try {
      await c.query("USE cluster");
      const [rows] = await c.query(sql, params);
      return rows as T[];
    } finally {
      await c.end();
    }
  };

  async destroy(): Promise<void> {
    for (const n of this.nodes) {
      if (running(n.proc)) {
        n.proc.kill("SIGCONT");
        await this.kill(n, "SIGKILL");
      }
      rmSync(n.dataDir, { recursive: true, force: true });
      await n.proxy?.stop();
    }
    await this.sim.stop();
    await this.etcd.destroy();
    await this.maria.destroy();
  }
}
