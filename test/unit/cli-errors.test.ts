/**
 * Errors that name what to fix (issue 12): the real CLI, run as a child process, says which file, flag or
 * variable is wrong, and exits with the documented code.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ROOT } from "../support/vectors.js";

const MAIN = join(ROOT, "src/cli/main.ts");
const dir = mkdtempSync(join(tmpdir(), "provisiond-cli-errors-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The environment without any PROVISIOND_* of the one running the tests. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PROVISIOND_")));
  return { ...env, ...extra };
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs the CLI to its end (killed after `killMs`: a hang is a failure, not a stuck suite). */
function cli(args: string[], env: Record<string, string> = {}, killMs = 30_000): Promise<Ran> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", MAIN, ...args],
      { cwd: ROOT, env: cleanEnv(env), timeout: killMs },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : null) : 0;
        resolve({ code, stdout, stderr, ms: Date.now() - started });
      },
    );
  });
}

/** Starts `provisiond node`, waits for its banner, stops it with SIGTERM; returns everything it printed. */
function nodeStart(env: Record<string, string>): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ["--import", "tsx", MAIN, "node"], {
      cwd: ROOT,
      env: cleanEnv(env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    const guard = setTimeout(() => p.kill("SIGKILL"), 30_000);
    // Up: the banner's last line is out, and so is the log's start line (the log is asynchronous, and what it
    // has not written when the node stops may be lost).
    const stopWhenUp = () => {
      if (/agent credential: .*\n/.test(stderr) && stdout.includes("provisiond node started"))
        p.kill("SIGTERM");
    };
    p.stdout.on("data", (d) => {
      stdout += d;
      stopWhenUp();
    });
    p.stderr.on("data", (d) => {
      stderr += d;
      stopWhenUp();
    });
    // "close", not "exit": the pipes may still hold output when the process has exited.
    p.on("close", (code, signal) => {
      clearTimeout(guard);
      if (!/is up/.test(stderr)) reject(new Error(`the node did not start (${code ?? signal}): ${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe("gen-cert", () => {
  const out = join(dir, "tls");

  it("refuses to replace a certificate, naming the files and --force; replaces it with --force", async () => {
    const first = await cli(["gen-cert", "--out", out, "--host", "scim.example.test"]);
    assert.equal(first.code, 0, first.stderr);
    const cert = readFileSync(join(out, "provisiond.crt"), "utf8");

    const again = await cli(["gen-cert", "--out", out]);
    assert.equal(again.code, 1, again.stderr);
    assert.match(
      again.stderr,
      /provisiond\.crt and .*provisiond\.key already exist; use --force to replace them/,
    );
    assert.ok(again.stderr.includes(join(out, "provisiond.crt")), again.stderr);
    assert.equal(readFileSync(join(out, "provisiond.crt"), "utf8"), cert, "the certificate was overwritten");

    const forced = await cli(["gen-cert", "--out", out, "--force", "--host", "scim.example.test"]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /replaced \(--force\): .*provisiond\.crt/);
    assert.notEqual(readFileSync(join(out, "provisiond.crt"), "utf8"), cert);
  });
});

describe("a bad flag", () => {
  const cases: [string[], string][] = [
    [["gen-cert", "--bogus"], "--bogus"],
    [["gen-cert", "--out"], "--out"],
    [["gen-cert", "--days", "soon"], "--days"],
    [["reconcile", "--timeout"], "--timeout"],
    [["reconcile", "--timeout", "forever"], "--timeout"],
    [["reconcile", "--bogus"], "--bogus"],
    [["node", "--bogus"], "--bogus"],
    [["okta-sim", "--port=1"], "--port"],
    [["check-cluster", "--bogus"], "check-cluster"],
  ];
  for (const [args, named] of cases)
    it(`${args.join(" ")}: prints the usage, names ${named}, exits 2`, async () => {
      // Were the flag ignored, the command would run: on free ports, in a data dir of its own, killed soon.
      const r = await cli(
        args,
        {
          PROVISIOND_DATA_DIR: join(dir, "bad-flag"),
          PROVISIOND_SCIM_PORT: "0",
          PROVISIOND_ADMIN_PORT: "0",
          PROVISIOND_OKTA_SIM_PORT: "0",
        },
        15_000,
      );
      assert.equal(r.code, 2, r.stderr);
      assert.ok(r.stderr.includes(named), r.stderr);
      assert.match(r.stderr, /usage: provisiond/);
      assert.doesNotMatch(r.stderr, /failed to start|at .*\.ts:\d+/);
    });
});

describe("the start banner and the token files", () => {
  const data = join(dir, "node-data");
  const base = {
    PROVISIOND_DATA_DIR: data,
    PROVISIOND_SCIM_PORT: "0",
    PROVISIOND_ADMIN_PORT: "0",
    PROVISIOND_SCIM_HOST: "127.0.0.1",
    PROVISIOND_LOG_LEVEL: "info",
  };

  it("says it generated the tokens on the first start, and only then; it never prints a token", async () => {
    const first = await nodeStart(base);
    // Both the banner (stderr) and the log (stdout) say so.
    for (const out of [first.stderr, first.stdout])
      for (const f of ["scim-token", "agent-token"])
        assert.ok(out.includes(`generated a token into ${join(data, f)}`), `${f}: ${out}`);
    // No TLS: the configured host.
    assert.match(first.stderr, /SCIM base URL: http:\/\/127\.0\.0\.1:\d+\/scim\/v2\//);

    const second = await nodeStart(base);
    assert.doesNotMatch(second.stderr, /generated/);
    assert.doesNotMatch(second.stdout, /generated a token/);
    for (const f of ["scim-token", "agent-token"]) {
      for (const out of [second.stderr, second.stdout])
        assert.ok(out.includes(`using the token in ${join(data, f)}`), `${f}: ${out}`);
      const token = readFileSync(join(data, f), "utf8").trim();
      for (const out of [first.stdout, first.stderr, second.stdout, second.stderr])
        assert.ok(!out.includes(token), `the ${f} was printed`);
    }
  });

  it("names the certificate's host, not localhost or the bound address", async () => {
    const tls = join(dir, "banner-tls");
    const gen = await cli(["gen-cert", "--out", tls, "--host", "scim.example.test", "--host", "127.0.0.1"]);
    assert.equal(gen.code, 0, gen.stderr);
    const r = await nodeStart({
      ...base,
      PROVISIOND_SCIM_TOKEN: "banner-token-0123456789",
      PROVISIOND_TLS_CERT_FILE: join(tls, "provisiond.crt"),
      PROVISIOND_TLS_KEY_FILE: join(tls, "provisiond.key"),
    });
    assert.match(r.stderr, /SCIM base URL: https:\/\/scim\.example\.test:\d+\/scim\/v2\//);
  });
});

describe("reconcile", () => {
  /** An Okta that answers every list with nothing: the run goes on to the connector. */
  let okta: Server;
  const oktaUrl = async () => {
    okta = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end("[]");
    });
    await new Promise<void>((r) => okta.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(okta.address() as AddressInfo).port}`;
  };
  after(() => okta?.close());
  const agentEnv = (orgUrl: string, scimUrl: string) => ({
    PROVISIOND_DATA_DIR: join(dir, "reconcile-data"),
    PROVISIOND_LOG_LEVEL: "silent",
    PROVISIOND_AGENT_SOURCE: "okta-sim",
    PROVISIOND_OKTA_ORG_URL: orgUrl,
    PROVISIOND_OKTA_API_TOKEN: "okta-token-0123456789",
    PROVISIOND_OKTA_APP_ID: "0oatestapp00000000",
    PROVISIOND_AGENT_SCIM_URL: scimUrl,
    PROVISIOND_AGENT_SCIM_TOKEN: "agent-token-0123456789abcdef",
  });

  it("gives up on an unreachable connector after --timeout, naming its URL and variable, exit 1", async () => {
    const scimUrl = `http://127.0.0.1:${await closedPort()}/scim/v2`;
    const r = await cli(["reconcile", "--timeout", "1.5"], agentEnv(await oktaUrl(), scimUrl), 20_000);
    assert.equal(r.code, 1, `${r.code} after ${r.ms} ms: ${r.stderr}`);
    assert.ok(r.stderr.includes(`the connector at ${scimUrl} (PROVISIOND_AGENT_SCIM_URL)`), r.stderr);
    assert.match(r.stderr, /did not answer within 1\.5 s \(connection failed/);
    assert.ok(r.ms >= 1500, `gave up after ${r.ms} ms, before its timeout`);
  });

  it("gives up on an unreachable Okta after PROVISIOND_RECONCILE_TIMEOUT_MS, naming PROVISIOND_OKTA_ORG_URL", async () => {
    const port = await closedPort();
    const r = await cli(
      ["reconcile"],
      {
        ...agentEnv(`http://127.0.0.1:${port}`, `http://127.0.0.1:${port}/scim/v2`),
        PROVISIOND_RECONCILE_TIMEOUT_MS: "1000",
      },
      20_000,
    );
    assert.equal(r.code, 1, `${r.code} after ${r.ms} ms: ${r.stderr}`);
    assert.ok(r.stderr.includes(`Okta at http://127.0.0.1:${port} (PROVISIOND_OKTA_ORG_URL)`), r.stderr);
    assert.match(r.stderr, /within 1 s/);
  });

  it("names a bad PROVISIOND_RECONCILE_TIMEOUT_MS, exit 2", async () => {
    const r = await cli(["reconcile"], {
      ...agentEnv("http://127.0.0.1:1", "http://127.0.0.1:1/scim/v2"),
      PROVISIOND_RECONCILE_TIMEOUT_MS: "soon",
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /PROVISIOND_RECONCILE_TIMEOUT_MS: must be an integer/);
  });
});
