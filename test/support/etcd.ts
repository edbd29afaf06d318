/**
 * Real etcd members for tests: one or three, on free ports, with throwaway data directories. Readiness is
 * etcd's own "ready to serve client requests" line; teardown falls back to SIGKILL, since a member that has
 * lost quorum may ignore SIGTERM.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./mariadb.js";
import { running, stopChild } from "./process.js";

interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  dir: string;
  proc?: ChildProcess;
}

export class EtcdCluster {
  private constructor(private readonly members: Member[]) {}

  static async start(size = 1): Promise<EtcdCluster> {
    const members: Member[] = [];
    for (let i = 0; i < size; i++) {
      members.push({
        name: `m${i}`,
        clientPort: await freePort(),
        peerPort: await freePort(),
        dir: mkdtempSync(join(tmpdir(), "provisiond-etcd-")),
      });
    }
    const c = new EtcdCluster(members);
    const started = await Promise.allSettled(members.map((m) => c.launch(m, "new")));
    const failed = started.find((r) => r.status === "rejected");
    if (failed) {
      // Members that did start would keep the test process alive.
      await c.destroy();
      throw failed.reason;
    }
    return c;
  }

  get endpoints(): string[] {
    return this.members.map((m) => `127.0.0.1:${m.clientPort}`);
  }

  private launch(m: Member, state: "new" | "existing"): Promise<void> {
    const initialCluster = this.members.map((x) => `${x.name}=http://127.0.0.1:${x.peerPort}`).join(",");
    const proc = spawn(
      "etcd",
      [
        `--name=${m.name}`,
        `--data-dir=${join(m.dir, "data")}`,
        `--listen-client-urls=http://127.0.0.1:${m.clientPort}`,
        `--advertise-client-urls=http://127.0.0.1:${m.clientPort}`,
        `--listen-peer-urls=http://127.0.0.1:${m.peerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${m.peerPort}`,
        `--initial-cluster=${initialCluster}`,
        `--initial-cluster-state=${state}`,
        "--initial-cluster-token=provisiond-test",
        "--heartbeat-interval=50",
        "--election-timeout=500",
        "--log-level=info",
        "--logger=zap",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    m.proc = proc;
    return new Promise((resolve, reject) => {
      let log = "";
      const onData = (c: Buffer) => {
        log += c.toString();
        if (
          log.includes("ready to serve client requests") ||
          log.includes("serving client traffic insecurely")
        ) {
          proc.stderr!.off("data", onData);
          proc.stderr!.resume();
          proc.off("exit", onExit);
          resolve();
        }
      };
      const onExit = (code: number | null) =>
        reject(new Error(`etcd ${m.name} exited (${code}):\n${log.slice(-2000)}`));
      proc.stderr!.on("data", onData);
      proc.once("exit", onExit);
    });
  }

  async stopMember(i: number, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    // A member that has lost quorum may ignore SIGTERM.
    await stopChild(this.members[i]!.proc, signal, 3000);
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.members.map((_, i) => this.stopMember(i)));
  }

  /** Restarts stopped members from their data directories. */
  async restartAll(): Promise<void> {
    await Promise.all(this.members.filter((m) => !running(m.proc)).map((m) => this.launch(m, "existing")));
  }

  async destroy(): Promise<void> {
    await this.stopAll();
    for (const m of this.members) rmSync(m.dir, { recursive: true, force: true });
  }
}
