/** Runs a provisiond node in-process on free ports and talks to it over real HTTP. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { type RunningNode, startNode } from "../../src/cli/node.js";
import { loadConfig } from "../../src/config/index.js";
import { MariaDb } from "./mariadb.js";

export const TOKEN = "test-token-0123456789abcdef";
/** The agent credential (PROVISIOND_SCIM_AGENT_TOKEN) of every TestNode. */
export const AGENT_TOKEN = "test-agent-token-0123456789abcdef";

/** Headers only the agent credential may send. */
const AGENT_HEADERS = ["idempotency-key", "x-provisiond-fencing-token"];

export interface Reply {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: test assertions read arbitrary SCIM JSON
  body: any;
  text: string;
}

type LogWaiter = { pattern: RegExp; resolve: (line: string) => void };

export class TestNode {
  readonly logs: string[] = [];
  private readonly waiters: LogWaiter[];

  private constructor(
    readonly node: RunningNode,
    readonly base: string,
    private readonly dataDir: string,
    logs: string[],
    waiters: LogWaiter[],
  ) {
    this.logs = logs;
    this.waiters = waiters;
  }

  /** Resolves with the first log line, from now on, that matches `pattern`. */
  logged(pattern: RegExp): Promise<string> {
    return new Promise((resolve) => this.waiters.push({ pattern, resolve }));
  }

  static async start(storeUrl?: string, env: Record<string, string> = {}): Promise<TestNode> {
    const dataDir = mkdtempSync(join(tmpdir(), "provisiond-node-"));
    const logs: string[] = [];
    const waiters: LogWaiter[] = [];
    const cfg = loadConfig({
      PROVISIOND_NODE_ID: "test-node",
      PROVISIOND_SCIM_HOST: "127.0.0.1",
      PROVISIOND_ADMIN_HOST: "127.0.0.1",
      PROVISIOND_SCIM_PORT: "0",
      PROVISIOND_ADMIN_PORT: "0",
      PROVISIOND_DATA_DIR: dataDir,
      PROVISIOND_STORE_URL: storeUrl ?? `sqlite:${join(dataDir, "store.db")}`,
      PROVISIOND_LOG_LEVEL: "info",
      ...(env.PROVISIOND_SCIM_AUTH || env.PROVISIOND_SCIM_BASIC_USER || env.PROVISIOND_SCIM_HEADER_NAME
        ? {}
        : { PROVISIOND_SCIM_TOKEN: TOKEN }),
      PROVISIOND_SCIM_AGENT_TOKEN: AGENT_TOKEN,
      ...env,
    });
    const destination = new Writable({
      write(chunk, _enc, cb) {
        const line = chunk.toString();
        logs.push(line);
        for (let i = waiters.length - 1; i >= 0; i--) {
          if (waiters[i]!.pattern.test(line)) waiters.splice(i, 1)[0]!.resolve(line);
        }
        cb();
      },
    });
    const node = await startNode(cfg, {
      logDestination: destination as unknown as import("pino").DestinationStream,
    });
    return new TestNode(node, node.scimUrl.replace(/\/$/, ""), dataDir, logs, waiters);
  }

  // biome-ignore lint/suspicious/noExplicitAny: /status JSON read by assertions
  async status(): Promise<any> {
    return (await fetch(`${this.admin}/status`)).json();
  }

  /** The `n` of one row a query returns, such as `SELECT COUNT(*) AS n FROM …`, read from the node's store. */
  async count(sql: string, params: unknown[] = []): Promise<number> {
    return Number((await this.node.store.db.transaction((q) => q.all<{ n: number }>(sql, params)))[0]!.n);
  }

  async metrics(): Promise<string> {
    return (await fetch(`${this.admin}/metrics`)).text();
  }

  get admin(): string {
    return this.node.adminUrl;
  }

  /**
   * A SCIM request with the identity provider's token, or with the agent credential when it carries the
   * agent's headers (Idempotency-Key, X-Provisiond-Fencing-Token). An explicit authorization header wins.
   */
  async request(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Reply> {
    const asAgent = Object.keys(headers).some((h) => AGENT_HEADERS.includes(h.toLowerCase()));
    const init: RequestInit = {
      method,
      headers: {
        authorization: `Bearer ${asAgent ? AGENT_TOKEN : TOKEN}`,
        "user-agent": "Okta SCIM Client 1.0.0",
        ...(body !== undefined ? { "content-type": "application/scim+json" } : {}),
        ...headers,
      },
    };
    if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
    const res = await fetch(`${this.base}${path}`, init);
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: res.status, headers: res.headers, body: parsed, text };
  }

  async stop(): Promise<void> {
    await this.node.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** A TestNode on its own store: a fresh database on a throwaway MariaDB, or the embedded SQLite. */
export interface NodeOnStore {
  node: TestNode;
  maria: MariaDb | undefined;
  /** Stops the node, then the MariaDB it ran on. */
  stop(): Promise<void>;
}

export async function nodeOnStore(
  store: "mariadb" | "sqlite",
  database: string,
  env: Record<string, string> = {},
): Promise<NodeOnStore> {
  const maria = store === "mariadb" ? await MariaDb.start({ fast: true }) : undefined;
  const node = await TestNode.start(maria ? await maria.createDatabase(database) : undefined, env);
  return {
    node,
    maria,
    stop: async () => {
      await node.stop();
      await maria?.destroy();
    },
  };
}
