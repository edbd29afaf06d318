/**
 * The chaos suite's cluster, one container per process as Kubernetes would run it: a 3-member etcd, MariaDB,
 * the Okta simulator and two provisiond nodes, from the images deploy/images.sh builds.
 *
 * Two networks: `app` (MariaDB, the simulator, the nodes) and `etcd` (the members, the nodes). Cutting a node
 * off etcd alone is then a disconnect from one network, with no iptables inside the image. The test reaches every
 * container at its address on `app` (the host is on that bridge), so a node cut off etcd is still observed.
 *
 * testcontainers has no pause or disconnect API: those go through its runtime client's dockerode. Ryuk cannot
 * run without a registry, so the suite stops and removes all of it in `stop`, and `sweep` removes what a crashed
 * run left behind, by label.
 */
import mysql from "mysql2/promise";
import {
  GenericContainer,
  getContainerRuntimeClient,
  Network,
  type StartedNetwork,
  type StartedTestContainer,
  Wait,
} from "testcontainers";
import type { Query } from "../support/history.js";
import { simControl, type Truth } from "../support/okta-sim.js";

/**
 * A container on a second network from its first instant: testcontainers attaches one network at create, and
 * a network connected after start raced the node's first etcd connections (a SYN sent from the wrong
 * interface before the route existed hung that connection until TCP gave up).
 */
class TwoNetworkContainer extends GenericContainer {
  constructor(
    image: string,
    private readonly second: StartedNetwork,
    private readonly alias: string,
  ) {
    super(image);
  }

  protected override async containerCreated(containerId: string): Promise<void> {
    const client = await getContainerRuntimeClient();
    await client.container.connectToNetwork(
      client.container.getById(containerId),
      client.network.getById(this.second.getId()),
      [this.alias],
    );
  }
}

export const LABEL = "io.provisiond.chaos";
export const TTL_MS = 2000;
export const IMAGE = process.env.PROVISIOND_IMAGE ?? "provisiond:local";
export const ETCD_IMAGE = process.env.PROVISIOND_ETCD_IMAGE ?? "provisiond-etcd:local";
const MARIADB_IMAGE = process.env.PROVISIOND_MARIADB_IMAGE ?? "provisiond-mariadb:local";
export const SCIM_TOKEN = "chaos-scim-token-0123456789abcdef";
const AGENT_TOKEN = "chaos-agent-token-0123456789abcdef";
export const SIM_TOKEN = "chaos-sim-token-0123456789";
export const APP_ID = "0oachaosapp0000000";
export const DB_PASSWORD = "chaos-db-password-0123";

// biome-ignore lint/suspicious/noExplicitAny: JSON read by the scenarios
type Json = any;

export interface Member {
  name: string;
  container: StartedTestContainer;
  running: boolean;
}

export interface Node {
  id: string;
  container: StartedTestContainer;
  /** Its address on `app`, where the test reaches it. */
  ip: string;
  running: boolean;
}

/** Removes containers and networks an earlier run left behind. */
export async function sweep(): Promise<void> {
  const { dockerode } = (await getContainerRuntimeClient()).container;
  const filters = JSON.stringify({ label: [LABEL] });
  for (const c of await dockerode.listContainers({ all: true, filters }))
    await dockerode
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => undefined);
  // testcontainers' networks carry its own label, not ours: remove those no container uses any more.
  const nets = await dockerode.listNetworks({
    filters: JSON.stringify({ label: ["org.testcontainers=true"] }),
  });
  for (const n of nets) {
    const info = await dockerode
      .getNetwork(n.Id)
      .inspect()
      .catch(() => undefined);
    if (info && Object.keys(info.Containers ?? {}).length === 0)
      await dockerode
        .getNetwork(n.Id)
        .remove()
        .catch(() => undefined);
  }
}

async function ipOn(container: StartedTestContainer, network: StartedNetwork): Promise<string> {
  const { dockerode } = (await getContainerRuntimeClient()).container;
  const info = await dockerode.getContainer(container.getId()).inspect();
  return info.NetworkSettings.Networks[network.getName()]!.IPAddress;
}

export class Topology {
  private constructor(
    readonly app: StartedNetwork,
    readonly etcdNet: StartedNetwork,
    readonly members: Member[],
    readonly maria: StartedTestContainer,
    public mariaIp: string,
    readonly sim: StartedTestContainer,
    readonly simIp: string,
    readonly nodes: Node[],
  ) {}

  /** `nodes`: how many provisiond nodes to start (the chart check starts its own pods instead). */
  static async start(run: string, opts: { nodes?: number } = {}): Promise<Topology> {
    const labels = { [LABEL]: run };
    const app = await new Network().start();
    const etcdNet = await new Network().start();
    const names = ["e1", "e2", "e3"];
    const initial = names.map((n) => `${n}=http://${n}:2380`).join(",");
    const members = await Promise.all(
      names.map(async (name) => ({
        name,
        running: true,
        container: await new GenericContainer(ETCD_IMAGE)
          .withNetwork(etcdNet)
          .withNetworkAliases(name)
          .withLabels(labels)
          .withCommand([
            `--name=${name}`,
            "--data-dir=/var/lib/etcd/data",
            "--listen-client-urls=http://0.0.0.0:2379",
            `--advertise-client-urls=http://${name}:2379`,
            "--listen-peer-urls=http://0.0.0.0:2380",
            `--initial-advertise-peer-urls=http://${name}:2380`,
            `--initial-cluster=${initial}`,
            "--initial-cluster-state=new",
            "--initial-cluster-token=chaos",
          ])
          .withWaitStrategy(Wait.forLogMessage(/ready to serve client requests/))
          .withStartupTimeout(60_000)
          .start(),
      })),
    );
    const [maria, sim] = await Promise.all([
      new GenericContainer(MARIADB_IMAGE)
        .withNetwork(app)
        .withNetworkAliases("mariadb")
        .withLabels(labels)
        .withEnvironment({ MARIADB_PASSWORD: DB_PASSWORD, MARIADB_DATABASE: "provisiond" })
        .withWaitStrategy(Wait.forLogMessage(/ready for connections/))
        .withStartupTimeout(60_000)
        .start(),
      new GenericContainer(IMAGE)
        .withNetwork(app)
        .withNetworkAliases("okta-sim")
        .withLabels(labels)
        .withCommand(["okta-sim"])
        .withEnvironment({
          PROVISIOND_OKTA_SIM_HOST: "0.0.0.0",
          PROVISIOND_OKTA_SIM_TOKEN: SIM_TOKEN,
          PROVISIOND_OKTA_SIM_APP_ID: APP_ID,
        })
        .withWaitStrategy(Wait.forLogMessage(/okta-sim listening/))
        .start(),
    ]);
    const t = new Topology(
      app,
      etcdNet,
      members,
      maria,
      await ipOn(maria, app),
      sim,
      await ipOn(sim, app),
      [],
    );
    // Okta's budgets would make the suite wait for minutes; its 429s have their own tests.
    await t.control("PUT", "/rate-limits", {
      perMinute: { logs: 1_000_000, apps: 1_000_000, users: 1_000_000, groups: 1_000_000 },
    });
    const startAt = new Date(Date.now() - 60_000).toISOString();
    for (const id of ["node-1", "node-2"].slice(0, opts.nodes ?? 2))
      t.nodes.push(await t.startNode(id, labels, startAt));
    return t;
  }

  private async startNode(id: string, labels: Record<string, string>, startAt: string): Promise<Node> {
    const container = await new TwoNetworkContainer(IMAGE, this.etcdNet, id)
      .withNetwork(this.app)
      .withNetworkAliases(id)
      .withLabels(labels)
      .withTmpFs({ "/data": "rw,uid=10001,gid=10001,mode=0700", "/tmp": "rw" })
      .withEnvironment({
        PROVISIOND_NODE_ID: id,
        PROVISIOND_ETCD_ENDPOINTS: "e1:2379,e2:2379,e3:2379",
        PROVISIOND_LEASE_TTL_MS: String(TTL_MS),
        PROVISIOND_STORE_URL: `mysql://provisiond:${DB_PASSWORD}@mariadb:3306/provisiond`,
        PROVISIOND_SCIM_TOKEN: SCIM_TOKEN,
        PROVISIOND_SCIM_AGENT_TOKEN: AGENT_TOKEN,
        PROVISIOND_AGENT_SOURCE: "okta-sim",
        PROVISIOND_OKTA_ORG_URL: "http://okta-sim:8090",
        PROVISIOND_OKTA_API_TOKEN: SIM_TOKEN,
        PROVISIOND_OKTA_APP_ID: APP_ID,
        PROVISIOND_AGENT_START_AT: startAt,
        PROVISIOND_AGENT_POLL_MS: "100",
        PROVISIOND_LOG_LEVEL: "warn",
      })
      .withWaitStrategy(Wait.forHttp("/readyz", 9464).forStatusCode(200))
      .withExposedPorts(9464)
      .withStartupTimeout(60_000)
      .start();
    return { id, container, ip: await ipOn(container, this.app), running: true };
  }

  private async dockerode() {
    return (await getContainerRuntimeClient()).container.dockerode;
  }

  // biome-ignore lint/suspicious/noExplicitAny: the control API answers arbitrary JSON
  control(method: string, path: string, body?: unknown): Promise<any> {
    return simControl(`http://${this.simIp}:8090`, SIM_TOKEN, method, path, body);
  }

  truth(): Promise<Truth> {
    return this.control("GET", "/truth");
  }

  /** `/status` of a node, or undefined when it does not answer within 2 s (killed, paused, cut off). */
  async status(n: Node): Promise<Json | undefined> {
    try {
      const res = await fetch(`http://${n.ip}:9464/status`, { signal: AbortSignal.timeout(2000) });
      return await res.json();
    } catch {
      return undefined;
    }
  }

  async metrics(n: Node): Promise<string> {
    return (await fetch(`http://${n.ip}:9464/metrics`, { signal: AbortSignal.timeout(2000) })).text();
  }

  /** A SCIM GET through the first node that answers. */
  async scim(path: string): Promise<{ status: number; headers: Headers; body: Json }> {
    let last: unknown;
    for (const n of this.nodes.filter((x) => x.running)) {
      try {
        const res = await fetch(`http://${n.ip}:8080/scim/v2${path}`, {
          headers: { authorization: `Bearer ${SCIM_TOKEN}` },
          signal: AbortSignal.timeout(5000),
        });
        return { status: res.status, headers: res.headers, body: await res.json() };
      } catch (err) {
        last = err;
      }
    }
    throw new Error(`no node answered SCIM: ${(last as Error)?.message}`);
  }

  query: Query = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => {
    const c = await mysql.createConnection({
      host: this.mariaIp,
      port: 3306,
      user: "provisiond",
      password: DB_PASSWORD,
      database: "provisiond",
    });
    try {
      const [rows] = await c.query(sql, params);
      return rows as T[];
    } finally {
      await c.end();
    }
  };

  /** SIGKILL: docker kill. */
  async kill(n: Node | Member): Promise<void> {
    await (await this.dockerode()).getContainer(n.container.getId()).kill();
    n.running = false;
  }

  /** SIGTERM through tini, then SIGKILL after `graceSeconds`: docker stop, as Kubernetes does. */
  async terminate(n: Node, graceSeconds = 30): Promise<void> {
    await (await this.dockerode()).getContainer(n.container.getId()).stop({ t: graceSeconds });
    n.running = false;
  }

  /** Starts a stopped or killed container again, with its data; a node is back when /readyz says so. */
  async restart(n: Node | Member): Promise<void> {
    await (await this.dockerode()).getContainer(n.container.getId()).start();
    n.running = true;
    // A container started again may get another address.
    if ("ip" in n) n.ip = await ipOn(n.container, this.app);
  }

  async pause(n: Node): Promise<void> {
    await (await this.dockerode()).getContainer(n.container.getId()).pause();
  }

  async unpause(n: Node): Promise<void> {
    await (await this.dockerode()).getContainer(n.container.getId()).unpause();
  }

  /** Takes `n` off `network`; `connect` puts it back with its alias (a disconnect drops the aliases). */
  async disconnect(n: Node, network: StartedNetwork): Promise<void> {
    await (await this.dockerode())
      .getNetwork(network.getId())
      .disconnect({ Container: n.container.getId(), Force: true });
  }

  async connect(n: Node, network: StartedNetwork): Promise<void> {
    await (await this.dockerode())
      .getNetwork(network.getId())
      .connect({ Container: n.container.getId(), EndpointConfig: { Aliases: [n.id] } });
    if (network === this.app) n.ip = await ipOn(n.container, this.app);
  }

  async stopMaria(): Promise<void> {
    await (await this.dockerode()).getContainer(this.maria.getId()).stop({ t: 10 });
  }

  async startMaria(): Promise<void> {
    await (await this.dockerode()).getContainer(this.maria.getId()).start();
    // A container started again may get another address.
    this.mariaIp = await ipOn(this.maria, this.app);
  }

  /** The etcd member that leads raft now, asked of each running member (v3 gRPC gateway). */
  async etcdLeader(): Promise<Member> {
    for (const m of this.members.filter((x) => x.running)) {
      const ip = await ipOn(m.container, this.etcdNet);
      try {
        const res = await fetch(`http://${ip}:2379/v3/maintenance/status`, {
          method: "POST",
          body: "{}",
          signal: AbortSignal.timeout(1000),
        });
        const s = (await res.json()) as { header: { member_id: string }; leader: string };
        if (s.leader && s.leader === s.header.member_id) return m;
      } catch {
        // not answering: ask the next
      }
    }
    throw new Error("no etcd member says it leads");
  }

  async logs(n: Node, lines = 30): Promise<string> {
    const { dockerode } = (await getContainerRuntimeClient()).container;
    const buf = (await dockerode.getContainer(n.container.getId()).logs({
      stdout: true,
      stderr: true,
      tail: lines,
    })) as unknown as Buffer;
    return buf.toString("utf8");
  }

  async stop(): Promise<void> {
    const { dockerode } = (await getContainerRuntimeClient()).container;
    const all = [
      ...this.nodes.map((n) => n.container),
      this.sim,
      this.maria,
      ...this.members.map((m) => m.container),
    ];
    for (const c of all)
      await dockerode
        .getContainer(c.getId())
        .remove({ force: true })
        .catch(() => undefined);
    for (const net of [this.app, this.etcdNet]) await net.stop().catch(() => undefined);
  }
}
