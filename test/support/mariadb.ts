/**
 * A throwaway MariaDB server for tests and benchmarks: a fresh datadir, a free port, the real mariadbd binary.
 * It waits for the server's own "ready for connections" line rather than sleeping.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import mysql from "mysql2/promise";
import { stopChild } from "./process.js";

const run = promisify(execFile);

/** Ports handed out in this process: the OS may offer a just-closed port again before anyone binds it. */
const handedOut = new Set<number>();

export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once("error", reject);
      s.listen(0, "127.0.0.1", () => {
        const { port } = s.address() as { port: number };
        s.close(() => resolve(port));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

export interface MariaDbOptions {
  /** Relax durability (flush at commit) to make test suites fast; benchmarks keep the default. */
  fast?: boolean;
}

export class MariaDb {
  private proc: ChildProcess | undefined;
  private log = "";

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly opts: MariaDbOptions,
  ) {}

  static async start(opts: MariaDbOptions = {}): Promise<MariaDb> {
    const dir = mkdtempSync(join(tmpdir(), "provisiond-mariadb-"));
    chmodSync(dir, 0o755); // mariadbd runs as the mysql user and must reach its datadir
    await run("mariadb-install-db", [
      "--no-defaults",
      "--user=mysql",
      `--datadir=${join(dir, "data")}`,
      "--auth-root-authentication-method=normal",
      "--skip-test-db",
    ]);
    const db = new MariaDb(dir, await freePort(), opts);
    await db.launch();
    return db;
  }

  private launch(): Promise<void> {
    const data = join(this.dir, "data");
    const args = [
      "--no-defaults",
      "--user=mysql",
      `--datadir=${data}`,
      `--port=${this.port}`,
      "--bind-address=127.0.0.1",
      `--socket=${join(data, "s.sock")}`,
      `--pid-file=${join(data, "mariadbd.pid")}`,
      "--skip-log-bin",
      "--max-connections=500",
      ...(this.opts.fast
        ? ["--innodb-flush-log-at-trx-commit=0", "--sync-binlog=0", "--innodb-doublewrite=0"]
        : []),
    ];
    const proc = spawn("mariadbd", args, { stdio: ["ignore", "ignore", "pipe"] });
    this.proc = proc;
    return new Promise((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        this.log += chunk.toString();
        if (this.log.includes("ready for connections")) {
          proc.stderr!.off("data", onData);
          proc.stderr!.on("data", (c: Buffer) => {
            this.log += c.toString();
          });
          proc.off("exit", onExit);
          resolve();
        }
      };
      const onExit = (code: number | null) =>
        reject(new Error(`mariadbd exited (${code}) before it was ready:\n${this.log.slice(-2000)}`));
      proc.stderr!.on("data", onData);
      proc.once("exit", onExit);
    });
  }

  url(database: string): string {
    return `mysql://root@127.0.0.1:${this.port}/${database}`;
  }

  async admin(): Promise<mysql.Connection> {
    return mysql.createConnection({
      host: "127.0.0.1",
      port: this.port,
      user: "root",
      multipleStatements: false,
    });
  }

  /** Creates an empty database and returns its URL. */
  async createDatabase(name: string): Promise<string> {
    const c = await this.admin();
    try {
      await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await c.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
    } finally {
      await c.end();
    }
    return this.url(name);
  }

  /** Stops the server and waits for it to exit; SIGKILL if it ignores SIGTERM. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    await stopChild(this.proc, signal, 20_000);
  }

  async restart(): Promise<void> {
    await this.stop();
    this.log = "";
    await this.launch();
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
