/**
 * bench/scim: the connector over HTTP against MariaDB, side by side with plain mysql2 single-row INSERTs on the
 * same server, in one run. Prints figures and ratios; asserts nothing.
 *
 *   BENCH_USERS (default 100000)  users loaded for the lookup and membership figures
 *   BENCH_WRITES (default 4000)   POST /Users requests and raw INSERTs measured
 *   BENCH_CONCURRENCY (default 16)
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mysql from "mysql2/promise";
import { Pool } from "undici";
import { Metrics } from "../../src/observability/metrics.js";
import { enterpriseUserSchema, ResourceSchema, userSchema } from "../../src/scim/model/schema.js";
import { hashPassword } from "../../src/scim/password.js";
import { normalizeBody } from "../../src/scim/resource.js";
import { AppStore } from "../../src/store/index.js";
import { freePort, MariaDb } from "../../test/support/mariadb.js";
import { ROOT } from "../../test/support/vectors.js";
import { fmt, percentile, type RunResult, runConcurrent } from "../lib.js";

const USERS = Number(process.env.BENCH_USERS ?? 100_000);
const WRITES = Number(process.env.BENCH_WRITES ?? 4000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const TOKEN = `bench-${randomUUID()}`;
const PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

const userRs = new ResourceSchema("User", "/Users", userSchema, [enterpriseUserSchema]);

function oktaUser(login: string) {
  return {
    schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"],
    userName: login,
    name: { givenName: "Bench", familyName: "User" },
    emails: [{ primary: true, value: login, type: "work" }],
    displayName: "Bench User",
    locale: "en-US",
    externalId: login,
    groups: [],
    active: true,
  };
}

async function startNode(
  storeUrl: string,
  port: number,
  adminPort: number,
  dataDir: string,
  env: Record<string, string> = {},
): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "src/cli/main.ts"), "node"], {
    cwd: ROOT,
    env: {
      ...process.env,
      PROVISIOND_STORE_URL: storeUrl,
      PROVISIOND_SCIM_TOKEN: TOKEN,
      PROVISIOND_SCIM_PORT: String(port),
      PROVISIOND_ADMIN_PORT: String(adminPort),
      PROVISIOND_SCIM_HOST: "127.0.0.1",
      PROVISIOND_DATA_DIR: dataDir,
      PROVISIOND_LOG_LEVEL: "warn",
      PROVISIOND_STORE_POOL_SIZE: String(CONCURRENCY),
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  await new Promise<void>((resolve, reject) => {
    let err = "";
    child.stderr!.on("data", (c: Buffer) => {
      err += c.toString();
      if (err.includes("SCIM base URL")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`node exited ${code}: ${err}`)));
  });
  return child;
}

type Call = (
  method: "GET" | "POST" | "PATCH",
  path: string,
  body?: unknown,
  expect?: number,
) => Promise<string>;

function client(port: number): { call: Call; close: () => Promise<void> } {
  const http = new Pool(`http://127.0.0.1:${port}`, { connections: CONCURRENCY, pipelining: 1 });
  const call: Call = async (method, path, body, expect = 200) => {
    const res = await http.request({
      method,
      path,
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/scim+json" },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.body.text();
    if (res.statusCode !== expect)
      throw new Error(`${method} ${path} → ${res.statusCode}: ${text.slice(0, 200)}`);
    return text;
  };
  return { call, close: () => http.close() };
}

/** Inserts `count` users through the store's own code path, 1,000 to a transaction; returns their ids. */
async function loadUsers(store: AppStore, from: number, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let start = from; start < from + count; start += 1000) {
    await store.run("load", async (tx) => {
      for (let i = start; i < Math.min(start + 1000, from + count); i++) {
        const id = randomUUID();
        ids.push(id);
        await tx.users.insert({
          id,
          doc: normalizeBody(userRs, oktaUser(`user${i}@example.com`), { create: false }).resource,
          now: new Date().toISOString(),
        });
      }
    });
  }
  return ids;
}

function openStore(url: string): Promise<AppStore> {
  return AppStore.open(
    {
      url,
      mysqlPoolSize: 2,
      queryTimeoutMs: 600_000,
      breaker: {
        timeoutMs: 600_000,
        errorThresholdPercentage: 50,
        volumeThreshold: 1000,
        resetTimeoutMs: 1000,
        rollingWindowMs: 10_000,
      },
      customColumns: [],
    },
    userRs,
    new Metrics("bench-loader"),
  );
}

interface Hostile {
  run: RunResult;
  atRest: number[];
  under: number[];
}

/**
 * The worst filter the cost cap lets through (PROVISIOND_SCIM_MAX_FILTER_TERMS, 8: seven substring searches in
 * emails and a sort by them), four times in a row, against /healthz polled meanwhile and at rest.
 */
async function hostileCase(call: Call, adminPort: number): Promise<Hostile> {
  const hostile = `/scim/v2/Users?filter=${encodeURIComponent(
    Array.from({ length: 7 }, (_, i) => `emails.value co "zz${i}"`).join(" or "),
  )}&sortBy=emails.value&count=100`;
  const admin = new Pool(`http://127.0.0.1:${adminPort}`, { connections: 1 });
  const healthz = async () => {
    const t = performance.now();
    const res = await admin.request({ method: "GET", path: "/healthz" });
    await res.body.text();
    return performance.now() - t;
  };
  const atRest: number[] = [];
  for (let i = 0; i < 50; i++) atRest.push(await healthz());
  const under: number[] = [];
  let done = false;
  const poll = (async () => {
    while (!done) under.push(await healthz());
  })();
  const run = await runConcurrent(4, 1, async () => {
    await call("GET", hostile);
  });
  done = true;
  await poll;
  await admin.close();
  atRest.sort((a, b) => a - b);
  under.sort((a, b) => a - b);
  return { run, atRest, under };
}

const ms = (l: number[]) => `p50 ${fmt(percentile(l, 50), 2)} ms, p99 ${fmt(percentile(l, 99), 2)} ms`;

function printHostile(store: string, h: Hostile): void {
  console.log(
    `hostile filter on ${store} (7 × emails.value co, sortBy emails.value; ${USERS} users) ${ms(h.run.latenciesMs)}; statement deadline 10000 ms`,
  );
  console.log(`/healthz at rest                           ${ms(h.atRest)} (${h.atRest.length} calls)`);
  console.log(`/healthz while the hostile filter runs     ${ms(h.under)} (${h.under.length} calls)`);
}

/** The hostile-filter case on the embedded store: reads in worker threads, so /healthz must not wait on them. */
async function sqliteHostile(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "provisiond-bench-sqlite-"));
  const url = `sqlite:${join(dir, "provisiond.db")}`;
  try {
    const store = await openStore(url);
    const loadStart = Date.now();
    await loadUsers(store, 0, USERS);
    await store.close();
    const loadSeconds = (Date.now() - loadStart) / 1000;
    const port = await freePort();
    const adminPort = await freePort();
    const node = await startNode(url, port, adminPort, dir);
    const { call, close } = client(port);
    try {
      const h = await hostileCase(call, adminPort);
      console.log("");
      console.log(`SQLite: loaded ${USERS} users in ${fmt(loadSeconds)} s`);
      printHostile("SQLite", h);
    } finally {
      await close();
      node.kill("SIGTERM");
      await new Promise((r) => node.once("exit", r));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const dataDir = mkdtempSync(join(tmpdir(), "provisiond-bench-"));
  console.log(
    `bench/scim: MariaDB (durable defaults), concurrency ${CONCURRENCY}, ${WRITES} writes, ${USERS} users loaded`,
  );
  const maria = await MariaDb.start();
  const url = await maria.createDatabase("bench");
  const port = await freePort();
  const adminPort = await freePort();
  const node = await startNode(url, port, adminPort, dataDir, { PROVISIOND_PASSWORD_SYNC: "true" });
  const { call, close } = client(port);

  try {
    // 1. POST /Users vs raw INSERT, same server, same concurrency.
    const raw = await mysql.createPool({
      uri: url,
      connectionLimit: CONCURRENCY,
    });
    await raw.query(
      "CREATE TABLE raw_users (seq BIGINT AUTO_INCREMENT PRIMARY KEY, id CHAR(36) NOT NULL UNIQUE, user_name VARCHAR(255) NOT NULL UNIQUE, doc LONGTEXT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    );
    await call("POST", "/scim/v2/Users", oktaUser("warmup@example.com"), 201);
    const rawRun = await runConcurrent(WRITES, CONCURRENCY, async (i) => {
      const login = `raw${i}@example.com`;
      await raw.execute("INSERT INTO raw_users (id, user_name, doc) VALUES (?, ?, ?)", [
        randomUUID(),
        login,
        JSON.stringify(oktaUser(login)),
      ]);
    });
    const postRun = await runConcurrent(WRITES, CONCURRENCY, async (i) => {
      await call("POST", "/scim/v2/Users", oktaUser(`post${i}@example.com`), 201);
    });
    await raw.end();

    // 2. Load users (through the store's own code path, in big transactions) and a 100,000-member group.
    const store = await openStore(url);
    const loadStart = Date.now();
    const extra = 1000;
    const ids = await loadUsers(store, 0, USERS + extra);
    const groupId = randomUUID();
    await store.run("load-group", async (tx) => {
      const g = await tx.groups.insert(groupId, { displayName: "Everyone" }, new Date().toISOString());
      await tx.groups.addMembers(
        g.seq,
        ids.slice(0, USERS).map((value) => ({ value, type: "User" as const })),
      );
    });
    await store.close();
    const loadSeconds = (Date.now() - loadStart) / 1000;

    // 3. Lookup by userName with USERS loaded.
    const lookups = Math.max(2000, WRITES);
    const getRun = await runConcurrent(lookups, CONCURRENCY, async (i) => {
      const n = (i * 7919) % USERS;
      const text = await call(
        "GET",
        `/scim/v2/Users?filter=${encodeURIComponent(`userName eq "USER${n}@example.com"`)}&startIndex=1&count=100`,
      );
      if (!text.includes('"totalResults":1')) throw new Error(`lookup ${n} missed`);
    });

    // 4. PATCH add-one-member on the big group: sequential (they serialize on the group row anyway) and at
    //    full concurrency, where the figure includes waiting for that row lock.
    const patchAdd = (i: number) =>
      call(
        "PATCH",
        `/scim/v2/Groups/${groupId}`,
        {
          schemas: [PATCH],
          Operations: [{ op: "add", path: "members", value: [{ value: ids[USERS + i]! }] }],
        },
        204,
      );
    const patchSeq = await runConcurrent(extra / 2, 1, (i) => patchAdd(i).then(() => undefined));
    const patchConc = await runConcurrent(extra / 2, CONCURRENCY, (i) =>
      patchAdd(extra / 2 + i).then(() => undefined),
    );
    const members = JSON.parse(await call("GET", `/scim/v2/Groups/${groupId}?attributes=members`)).members
      .length;

    // 5. The worst filter the cost cap lets through, beside /healthz (see hostileCase).
    const hostileMaria = await hostileCase(call, adminPort);

    // 6. Password sync: a /Bulk of 200 creates with passwords (scrypt, 4 at a time), beside the same 200
    //    hashes one after another in this process, as the connector did before.
    const PASSWORDS = 200;
    const bulkBody = {
      schemas: ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
      Operations: Array.from({ length: PASSWORDS }, (_, i) => ({
        method: "POST",
        path: "/Users",
        bulkId: `pw${i}`,
        data: { ...oktaUser(`pw${i}@example.com`), password: `Correct-Horse-${i}-Battery` },
      })),
    };
    const seqStart = performance.now();
    for (let i = 0; i < PASSWORDS; i++) await hashPassword(`Correct-Horse-${i}-Battery`);
    const seqHashMs = performance.now() - seqStart;
    const bulkStart = performance.now();
    const bulkText = await call("POST", "/scim/v2/Bulk", bulkBody);
    const bulkMs = performance.now() - bulkStart;
    if ((bulkText.match(/"status":"201"/g) ?? []).length !== PASSWORDS)
      throw new Error("a password create failed");

    const lat = (r: RunResult) => ms(r.latenciesMs);
    console.log("");
    console.log(`raw mysql2 INSERT (1 row, autocommit)      ${fmt(rawRun.perSecond, 0)} /s   ${lat(rawRun)}`);
    console.log(
      `POST /Users over HTTP (Okta's body)        ${fmt(postRun.perSecond, 0)} /s   ${lat(postRun)}`,
    );
    console.log(`  ratio POST /Users : raw INSERT           ${fmt(postRun.perSecond / rawRun.perSecond, 2)}`);
    console.log(`loaded ${USERS + extra} users + a ${USERS}-member group in ${fmt(loadSeconds)} s`);
    console.log(
      `GET /Users?filter=userName eq (${USERS} users) ${fmt(getRun.perSecond, 0)} /s   ${lat(getRun)}`,
    );
    console.log(`PATCH add one member, ${USERS}-member group, sequential      ${lat(patchSeq)}`);
    console.log(
      `PATCH add one member, ${USERS}-member group, concurrency ${CONCURRENCY}  ${lat(patchConc)} (includes row-lock waits)`,
    );
    console.log(`group now has ${members} members`);
    printHostile("MariaDB", hostileMaria);
    console.log(`${PASSWORDS} hashes one after another (before)      ${fmt(seqHashMs, 0)} ms`);
    console.log(`/Bulk of ${PASSWORDS} creates with passwords (4 at a time) ${fmt(bulkMs, 0)} ms`);
    console.log(`  ratio /Bulk : hashes alone one by one      ${fmt(bulkMs / seqHashMs, 2)}`);
  } finally {
    await close();
    node.kill("SIGTERM");
    await new Promise((r) => node.once("exit", r));
    await maria.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  }
  await sqliteHostile();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
