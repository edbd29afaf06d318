/**
 * deploy/local/cluster.sh as a new user runs it: `demo` from start to finish (timeline, verdict, the killed node
 * back as standby), a second start beside a running cluster refused before it touches anything, and a folder
 * it did not make never wiped.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";

const SCRIPT = new URL("../../deploy/local/cluster.sh", import.meta.url).pathname;
const run = promisify(execFile);
const base = mkdtempSync(join(tmpdir(), "pd-local-"));
// mariadbd runs as the mysql user, which must reach its data folder below this one.
chmodSync(base, 0o755);
// Away from the default ports, which a developer's own local cluster may hold.
const OFFSET = "1700";
const env = (dir: string, offset = OFFSET) => ({
  ...process.env,
  PROVISIOND_LOCAL_DIR: join(base, dir),
  PROVISIOND_LOCAL_PORT_OFFSET: offset,
});

/** Runs cluster.sh to its end; resolves with its exit code and everything it printed. */
function finish(args: string[], e: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn("bash", [SCRIPT, ...args], { env: e });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (out += d));
    p.on("exit", (code) => resolve({ code, out }));
  });
}

describe("deploy/local/cluster.sh", { timeout: 300_000 }, () => {
  let up: ChildProcess | undefined;
  after(async () => {
    if (up && up.exitCode === null) {
      up.kill("SIGINT");
      await new Promise((r) => up!.once("exit", r));
    }
    rmSync(base, { recursive: true, force: true });
  });

  it("demo: kills the primary, prints the timeline and an OK verdict, and the node rejoins as standby", async () => {
    const { code, out } = await finish(["demo"], env("demo"));
    assert.equal(code, 0, out);
    for (const step of [
      "kill -9 sent",
      "last keepalive",
      "key gone",
      "elected",
      "first event",
      "backlog drained",
    ])
      assert.match(out, new RegExp(`\\d+ ms +\\S+ +${step}`), `timeline row "${step}" in:\n${out}`);
    assert.match(out, /Verdict: OK/);
    assert.match(out, /app store vs simulator: 0 differences over 400 users/);
    assert.match(out, /0 applied twice, 0 stale/);
    assert.match(out, /node-\d is in line as standby behind node-\d/);
    assert.match(out, /logs kept in /);
  });

  it("a second start beside a running cluster is refused with a line that says why, and wipes nothing", async () => {
    const e = env("up", "1800");
    up = spawn("bash", [SCRIPT], { env: e });
    let out = "";
    up.stderr!.on("data", (d) => (out += d));
    await new Promise<void>((resolve, reject) => {
      up!.stdout!.on("data", (d) => {
        out += d;
        if (/primary: +node-\d/.test(out)) resolve();
      });
      up!.once("exit", (code) => reject(new Error(`cluster.sh exited ${code} before it was up:\n${out}`)));
    });
    const primary = await run("bash", [SCRIPT, "primary"], { env: e });
    assert.match(primary.stdout, /^node-[12] +admin http:\/\/127\.0\.0\.1:\d+\/ +SCIM .* pid \d+/);

    // Same folder: the lock.
    const again = await finish([], e);
    assert.equal(again.code, 1);
    assert.match(again.out, /a cluster from this checkout is already running \(lock .* held by pid \d+\)/);
    assert.ok(
      existsSync(join(e.PROVISIOND_LOCAL_DIR!, "logs", "node1.err")),
      "the running cluster's logs are still there",
    );
    // Another folder, the same ports: named before anything starts.
    const ports = await finish([], { ...e, PROVISIOND_LOCAL_DIR: join(base, "other") });
    assert.equal(ports.code, 1);
    assert.match(ports.out, /ports in use: \d+/);
    assert.ok(!existsSync(join(base, "other", "logs")));

    up.kill("SIGINT");
    const code = await new Promise((r) => up!.once("exit", r));
    assert.notEqual(code, null);
    assert.match(out, /logs kept in /);

    // Stopped: restart-node refuses rather than signal whatever now has the old pid, or start a lone node.
    const restart = await finish(["restart-node", "1"], e);
    assert.equal(restart.code, 1);
    assert.match(restart.out, /no cluster is running from /);
  });

  it("never wipes a folder it did not make", async () => {
    const dir = join(base, "precious");
    mkdirSync(dir);
    writeFileSync(join(dir, "keep.txt"), "mine");
    const r = await finish([], { ...env("precious"), PROVISIOND_LOCAL_PORT_OFFSET: "1900" });
    assert.equal(r.code, 1);
    assert.match(r.out, /exists and was not made by cluster\.sh .*not wiping it/);
    assert.equal(readFileSync(join(dir, "keep.txt"), "utf8"), "mine");
  });
});
