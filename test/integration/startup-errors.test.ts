/**
 * Failures after validation name the setting to fix and the endpoint (issue 12): a store that does not answer
 * at startup (retried with back-off, then a line that says what to fix), one that comes up while the node
 * waits, an unreachable etcd, TLS files swapped or of the wrong kind, a port in use; and a store outage under a
 * running node, logged once with its cause and once at recovery, with the breaker's transitions.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { tlsPair } from "../../src/cli/connector.js";
import { ConfigError, loadConfig } from "../../src/config/index.js";
import { freePort, MariaDb } from "../support/mariadb.js";
import { TestNode, TOKEN } from "../support/node.js";
import { running } from "../support/process.js";
import { USER_SCHEMA } from "../support/schemas.js";
import { ROOT } from "../support/vectors.js";

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "provisiond-startup-"));

/** The CLI as a child process, its output collected, with a way to await a line of it. */
class Cli {
  out = "";
  private readonly waiters: { pattern: RegExp; resolve: () => void }[] = [];
  readonly exited: Promise<number | null>;

  constructor(readonly proc: ChildProcess) {
    const take = (c: Buffer) => {
      this.out += c.toString();
      for (let i = this.waiters.length - 1; i >= 0; i--)
        if (this.waiters[i]!.pattern.test(this.out)) this.waiters.splice(i, 1)[0]!.resolve();
    };
    proc.stdout!.on("data", take);
    proc.stderr!.on("data", take);
    this.exited = new Promise((resolve) => proc.once("exit", (code) => resolve(code)));
  }

  /** Every CLI started, so that a test that fails or times out leaves none running. */
  static readonly all: Cli[] = [];

  static start(env: Record<string, string>): Cli {
    const data = mkdtempSync(join(dir, "node-"));
    const cli = new Cli(
      spawn(process.execPath, ["--import", "tsx", join(ROOT, "src/cli/main.ts"), "node"], {
        cwd: ROOT,
        env: {
          ...process.env,
          PROVISIOND_NODE_ID: "startup-test",
          PROVISIOND_SCIM_HOST: "127.0.0.1",
          PROVISIOND_SCIM_PORT: "0",
          PROVISIOND_ADMIN_PORT: "0",
          PROVISIOND_DATA_DIR: data,
          PROVISIOND_SCIM_TOKEN: TOKEN,
          PROVISIOND_LOG_LEVEL: "info",
          ...env,
        },
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    Cli.all.push(cli);
    return cli;
  }

  /** Resolves once the output so far matches `pattern`; rejects if the process exits first. */
  seen(pattern: RegExp): Promise<void> {
    if (pattern.test(this.out)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ pattern, resolve });
      void this.exited.then((code) =>
        reject(new Error(`exited (${code}) before printing ${pattern}:\n${this.out}`)),
      );
    });
  }

  /** The pino lines of the output whose msg matches `pattern`. */
  logLines(pattern: RegExp): { msg: string; [k: string]: unknown }[] {
    return this.out
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { msg: string })
      .filter((l) => pattern.test(l.msg));
  }

  async stop(): Promise<void> {
    if (running(this.proc)) this.proc.kill("SIGTERM");
    await this.exited;
  }
}

/** Log lines of an in-process node whose msg matches `pattern`. */
function logLines(node: TestNode, pattern: RegExp): { msg: string; [k: string]: unknown }[] {
  return node.logs.map((l) => JSON.parse(l) as { msg: string }).filter((l) => pattern.test(l.msg));
}

async function selfSigned(name: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}-cert.pem`);
  const key = join(dir, `${name}-key.pem`);
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    "1",
    "-subj",
    "/CN=localhost",
  ]);
  return { cert, key };
}

async function startFailure(storeUrl: string | undefined, env: Record<string, string>): Promise<Error> {
  return TestNode.start(storeUrl, env).then(
    async (n) => {
      await n.stop();
      return assert.fail("the node started");
    },
    (err: Error) => err,
  );
}

describe("startup errors name what to fix", () => {
  let maria: MariaDb;
  before(async () => {
    maria = await MariaDb.start({ fast: true });
  });
  after(async () => {
    for (const cli of Cli.all) if (running(cli.proc)) cli.proc.kill("SIGKILL");
    await maria.destroy();
  });

  it("reads PROVISIOND_STORE_CONNECT_TIMEOUT_MS, 60 s by default", () => {
    const cfg = (env: Record<string, string>) =>
      loadConfig({ PROVISIOND_DATA_DIR: dir, ...env }).store as { connectTimeoutMs?: number };
    assert.equal(cfg({}).connectTimeoutMs, 60_000);
    assert.equal(cfg({ PROVISIOND_STORE_CONNECT_TIMEOUT_MS: "0" }).connectTimeoutMs, 0);
    assert.throws(
      () => cfg({ PROVISIOND_STORE_CONNECT_TIMEOUT_MS: "soon" }),
      (e: ConfigError) => e.variable === "PROVISIOND_STORE_CONNECT_TIMEOUT_MS",
    );
  });

  it("a store on a closed port: retried with back-off, then exits naming PROVISIOND_STORE_URL and host:port", {
    timeout: 60_000,
  }, async () => {
    const port = await freePort();
    const cli = Cli.start({
      PROVISIOND_STORE_URL: `mysql://app:Sup3r-Secret@127.0.0.1:${port}/app`,
      PROVISIOND_STORE_CONNECT_TIMEOUT_MS: "1500",
    });
    const code = await cli.exited;
    assert.equal(code, 1, cli.out);
    const attempts = cli.logLines(/cannot reach the store/);
    assert.ok(attempts.length >= 2, `at least two attempts logged:\n${cli.out}`);
    attempts.forEach((a, i) => {
      assert.match(a.msg, new RegExp(`127\\.0\\.0\\.1:${port} \\(PROVISIOND_STORE_URL\\): ECONNREFUSED`));
      assert.match(a.msg, new RegExp(`attempt ${i + 1} of at most \\d+, next in \\d+\\.\\d s`));
      assert.equal(a.variable, "PROVISIOND_STORE_URL");
    });
    const last = cli.out.trim().split("\n").at(-1)!;
    assert.match(
      last,
      new RegExp(
        `^provisiond: failed to start: PROVISIOND_STORE_URL: cannot reach the store at 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\), ${attempts.length + 1} attempts in .*\\(PROVISIOND_STORE_CONNECT_TIMEOUT_MS=1500 is how long a starting node waits`,
      ),
    );
    assert.doesNotMatch(cli.out, /Sup3r-Secret/, "the password in the URL is never printed");
  });

  it("a store that comes up while the node waits for it: the node becomes ready", {
    timeout: 90_000,
  }, async () => {
    const url = await maria.createDatabase("late");
    await maria.stop();
    const admin = await freePort();
    const cli = Cli.start({ PROVISIOND_STORE_URL: url, PROVISIOND_ADMIN_PORT: String(admin) });
    let restarted = false;
    try {
      await cli.seen(
        /cannot reach the store at 127\.0\.0\.1:\d+ \(PROVISIOND_STORE_URL\): ECONNREFUSED; attempt 1 /,
      );
      await maria.restart();
      restarted = true;
      await cli.seen(/SCIM base URL/);
      assert.equal((await fetch(`http://127.0.0.1:${admin}/readyz`)).status, 200);
      assert.equal(cli.logLines(/store reached at 127\.0\.0\.1:\d+/).length, 1, cli.out);
    } finally {
      await cli.stop();
      if (!restarted) await maria.restart();
    }
  });

  it("what retrying cannot fix fails at once: a missing database, a refused login", {
    timeout: 20_000,
  }, async () => {
    const missing = await startFailure(`mysql://root@127.0.0.1:${maria.port}/no_such_db`, {});
    assert.match(
      missing.message,
      new RegExp(
        `^PROVISIOND_STORE_URL: the database "no_such_db" does not exist on 127\\.0\\.0\\.1:${maria.port}`,
      ),
    );
    const denied = await startFailure(`mysql://nobody:wrong-pass@127.0.0.1:${maria.port}/x`, {});
    assert.match(
      denied.message,
      new RegExp(
        `^PROVISIOND_STORE_URL: the MySQL server at 127\\.0\\.0\\.1:${maria.port} refused user "nobody"`,
      ),
    );
    assert.doesNotMatch(denied.message, /wrong-pass/);
  });

  it("an unreachable etcd: the node stays up, and the log names PROVISIOND_ETCD_ENDPOINTS and the endpoint", {
    timeout: 30_000,
  }, async () => {
    // A child process: a node stopped while etcd never answered leaves etcd3's watch reconnect timers behind.
    const port = await freePort();
    const cli = Cli.start({
      PROVISIOND_STORE_URL: await maria.createDatabase("no_etcd"),
      PROVISIOND_ETCD_ENDPOINTS: `127.0.0.1:${port}`,
      PROVISIOND_LEASE_TTL_MS: "2000",
    });
    try {
      await cli.seen(/"msg":"etcd unreachable[^\n]*\n/);
      const [line] = cli.logLines(/^etcd unreachable/);
      assert.equal(line!.variable, "PROVISIOND_ETCD_ENDPOINTS");
      assert.equal(line!.endpoints, `127.0.0.1:${port}`);
      assert.match(
        line!.msg,
        new RegExp(
          `^etcd unreachable: connect ECONNREFUSED 127\\.0\\.0\\.1:${port} \\(PROVISIOND_ETCD_ENDPOINTS=127\\.0\\.0\\.1:${port}\\); this node stays standby`,
        ),
      );
    } finally {
      await cli.stop();
    }
  });

  it("swapped TLS certificate and key: the CLI names the variables and the files", {
    timeout: 30_000,
  }, async () => {
    const { cert, key } = await selfSigned("swapped");
    const cli = Cli.start({ PROVISIOND_TLS_CERT_FILE: key, PROVISIOND_TLS_KEY_FILE: cert });
    assert.equal(await cli.exited, 2, cli.out);
    assert.equal(
      cli.out.trim().split("\n").at(-1),
      `provisiond: configuration error: PROVISIOND_TLS_KEY_FILE: ${cert} holds a CERTIFICATE, expected a PRIVATE KEY, and PROVISIOND_TLS_CERT_FILE=${key} holds the PRIVATE KEY: the two files are swapped`,
    );
  });

  it("TLS files of the wrong kind, a key of another certificate, a missing file", async () => {
    const a = await selfSigned("a");
    const b = await selfSigned("b");
    const junk = join(dir, "junk.pem");
    writeFileSync(junk, "not a pem file\n");
    const named = (cert: string, key: string) => () =>
      tlsPair(
        { variable: "PROVISIOND_TLS_CERT_FILE", file: cert },
        { variable: "PROVISIOND_TLS_KEY_FILE", file: key },
      );
    const refused = (fn: () => unknown, variable: string, message: RegExp) =>
      assert.throws(fn, (e: ConfigError) => {
        assert.ok(e instanceof ConfigError);
        assert.equal(e.variable, variable);
        assert.match(e.message, message);
        return true;
      });
    assert.doesNotThrow(named(a.cert, a.key));
    refused(
      named(a.cert, junk),
      "PROVISIOND_TLS_KEY_FILE",
      new RegExp(`${junk} holds no PEM block, expected a PRIVATE KEY`),
    );
    refused(
      named(a.key, a.key),
      "PROVISIOND_TLS_CERT_FILE",
      new RegExp(`${a.key} holds a PRIVATE KEY, expected a CERTIFICATE`),
    );
    refused(
      named(a.cert, b.key),
      "PROVISIOND_TLS_KEY_FILE",
      new RegExp(`${b.key} is not the key of the certificate in PROVISIOND_TLS_CERT_FILE=${a.cert}`),
    );
    refused(named(join(dir, "absent.pem"), a.key), "PROVISIOND_TLS_CERT_FILE", /absent\.pem \(ENOENT\)/);
  });

  it("etcd TLS files: a key given as the CA names PROVISIOND_ETCD_CA_FILE, and nothing is left running", {
    timeout: 30_000,
  }, async () => {
    const { key } = await selfSigned("etcd");
    const err = await startFailure(await maria.createDatabase("etcd_tls"), {
      PROVISIOND_ETCD_ENDPOINTS: "127.0.0.1:2379",
      PROVISIOND_ETCD_CA_FILE: key,
    });
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.message, `PROVISIOND_ETCD_CA_FILE: ${key} holds a PRIVATE KEY, expected a CERTIFICATE`);
  });

  it("a port in use names PROVISIOND_SCIM_PORT or PROVISIOND_ADMIN_PORT", async () => {
    const taken: Server = createServer();
    const port = await new Promise<number>((resolve) =>
      taken.listen(0, "127.0.0.1", () => resolve((taken.address() as { port: number }).port)),
    );
    try {
      for (const variable of ["PROVISIOND_SCIM_PORT", "PROVISIOND_ADMIN_PORT"]) {
        const err = await startFailure(undefined, { [variable]: String(port) });
        assert.ok(err instanceof ConfigError, String(err));
        assert.equal(err.message, `${variable}: 127.0.0.1:${port} is in use by another process`);
      }
    } finally {
      taken.close();
    }
  });

  it("a store outage under a running node: one line with its cause, the breaker's transitions, one recovery line", {
    timeout: 90_000,
  }, async () => {
    const node = await TestNode.start(await maria.createDatabase("outage_log"), {
      PROVISIOND_BREAKER_VOLUME_THRESHOLD: "2",
      PROVISIOND_BREAKER_RESET_MS: "500",
      PROVISIOND_STORE_QUERY_TIMEOUT_MS: "2000",
    });
    const create = (userName: string) => node.request("POST", "/Users", { schemas: [USER_SCHEMA], userName });
    try {
      assert.equal((await create("before@example.com")).status, 201);
      await maria.stop();
      for (let i = 0; i < 6; i++) assert.equal((await create(`during${i}@example.com`)).status, 503);
      const down = logLines(node, /^store unreachable/);
      assert.equal(down.length, 1, node.logs.join(""));
      assert.match(
        down[0]!.msg,
        new RegExp(
          `^store unreachable: (ECONNREFUSED|PROTOCOL_CONNECTION_LOST|ECONNRESET) 127\\.0\\.0\\.1:${maria.port}`,
        ),
      );
      assert.equal(down[0]!.variable, "PROVISIOND_STORE_URL");
      const opened = logLines(node, /^store circuit breaker open:/);
      assert.equal(opened.length, 1, node.logs.join(""));
      assert.equal((opened[0] as { level?: number }).level, 40, "the breaker opening is a warning");
      assert.match(opened[0]!.msg, new RegExp(`127\\.0\\.0\\.1:${maria.port}`));

      await maria.restart();
      let r = await create("after@example.com");
      for (let i = 0; r.status === 503 && i < 200; i++) {
        await node.logged(/store circuit breaker half-open/);
        r = await create("after@example.com");
      }
      assert.equal(r.status, 201, r.text);
      assert.equal(logLines(node, /^store unreachable/).length, 1, "still the one line of the outage");
      assert.equal(logLines(node, /^store recovered/).length, 1, node.logs.join(""));
      assert.ok(logLines(node, /^store circuit breaker half-open/).length >= 1);
      assert.equal(logLines(node, /^store circuit breaker closed/).length, 1, node.logs.join(""));
    } finally {
      await node.stop();
    }
  });
});
