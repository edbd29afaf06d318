/** Authentication on every SCIM route, each credential mode, the generated token, log redaction, and TLS. */
import assert from "node:assert/strict";
import { once } from "node:events";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { TLSSocket } from "node:tls";
import { genCert } from "../../src/cli/gen-cert.js";
import { TestNode, TOKEN } from "../support/node.js";
import { waitFor } from "../support/okta-sim.js";
import { USER_SCHEMA } from "../support/schemas.js";

const ROUTES: [string, string][] = [
  ["GET", "/Users"],
  ["POST", "/Users"],
  ["GET", "/Users/some-id"],
  ["PUT", "/Users/some-id"],
  ["PATCH", "/Users/some-id"],
  ["DELETE", "/Users/some-id"],
  ["POST", "/Users/.search"],
  ["GET", "/Groups"],
  ["POST", "/Groups"],
  ["GET", "/Groups/some-id"],
  ["PUT", "/Groups/some-id"],
  ["PATCH", "/Groups/some-id"],
  ["DELETE", "/Groups/some-id"],
  ["POST", "/Groups/.search"],
  ["POST", "/.search"],
  ["GET", "/ServiceProviderConfig"],
  ["GET", "/ResourceTypes"],
  ["GET", "/ResourceTypes/User"],
  ["GET", "/Schemas"],
  ["GET", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"],
  ["GET", "/NoSuchThing"],
];

const BASIC_PASSWORD = "basic-secret-password-42";
const HEADER_VALUE = "header-secret-value-4242";
const USER_PASSWORD = "Pl@ceholder-Pa55word!";

describe("authentication", () => {
  let node: TestNode;
  before(async () => {
    node = await TestNode.start(undefined, {
      PROVISIOND_SCIM_TOKEN: TOKEN,
      PROVISIOND_SCIM_BASIC_USER: "okta",
      PROVISIOND_SCIM_BASIC_PASSWORD: BASIC_PASSWORD,
      PROVISIOND_SCIM_HEADER_NAME: "X-Okta-Secret",
      PROVISIOND_SCIM_HEADER_VALUE: HEADER_VALUE,
    });
  });
  after(async () => node.stop());

  const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}`;

  for (const [method, path] of ROUTES) {
    it(`${method} ${path} refuses a missing or wrong credential with 401`, async () => {
      const body = method === "GET" || method === "DELETE" ? undefined : {};
      for (const headers of <Record<string, string>[]>[
        { authorization: "" },
        { authorization: "Bearer wrong" },
        { authorization: `Bearer ${TOKEN}x` },
        { authorization: basic("okta", "wrong") },
        { authorization: basic("other", BASIC_PASSWORD) },
        { authorization: "", "x-okta-secret": "wrong" },
        { authorization: TOKEN },
      ]) {
        const r = await node.request(method, path, body, headers);
        assert.equal(r.status, 401, `${JSON.stringify(headers)} → ${r.status}`);
        assert.equal(r.body.status, "401");
        assert.deepEqual(r.body.schemas, ["urn:ietf:params:scim:api:messages:2.0:Error"]);
        assert.match(r.headers.get("www-authenticate") ?? "", /Bearer/);
      }
    });
  }

  it("accepts each configured mode", async () => {
    for (const headers of <Record<string, string>[]>[
      { authorization: `Bearer ${TOKEN}` },
      { authorization: `bearer ${TOKEN}` },
      { authorization: basic("okta", BASIC_PASSWORD) },
      { authorization: "", "x-okta-secret": HEADER_VALUE },
    ]) {
      assert.equal(
        (await node.request("GET", "/ServiceProviderConfig", undefined, headers)).status,
        200,
        JSON.stringify(Object.keys(headers)),
      );
    }
  });

  it("keeps credentials and passwords out of the logs", async () => {
    await node.request(
      "POST",
      "/Users",
      { schemas: [USER_SCHEMA], userName: "logged@example.com", password: USER_PASSWORD },
      { authorization: `Bearer ${TOKEN}` },
    );
    await node.request("GET", "/Users", undefined, { authorization: basic("okta", BASIC_PASSWORD) });
    await node.request("GET", "/Users", undefined, { authorization: "", "x-okta-secret": HEADER_VALUE });
    await node.request("GET", "/Users", undefined, { authorization: "Bearer wrong-token-in-logs" });
    const logs = node.logs.join("");
    assert.ok(logs.includes("logged@example.com") || logs.includes("/Users"), "requests were logged");
    for (const secret of [
      TOKEN,
      BASIC_PASSWORD,
      HEADER_VALUE,
      USER_PASSWORD,
      Buffer.from(`okta:${BASIC_PASSWORD}`).toString("base64"),
      "wrong-token-in-logs",
    ]) {
      assert.ok(!logs.includes(secret), `a secret reached the logs: ${secret.slice(0, 4)}…`);
    }
  });

  it("honours the fencing and idempotency headers only from the agent credential", async () => {
    const fence = async () =>
      Number(
        (
          await node.node.store.db.transaction((q) =>
            q.all<{ token: number }>("SELECT token FROM provisiond_fencing"),
          )
        )[0]!.token,
      );
    const user = (n: string) => ({ schemas: [USER_SCHEMA], userName: `${n}@example.com` });
    for (const [i, authorization] of [`Bearer ${TOKEN}`, basic("okta", BASIC_PASSWORD), ""].entries()) {
      const who = { authorization, "x-okta-secret": i === 2 ? HEADER_VALUE : "" };
      for (const guard of <Record<string, string>[]>[
        { "x-provisiond-fencing-token": "9007199254740991" },
        { "idempotency-key": "evt-x" },
      ]) {
        const r = await node.request("POST", "/Users", user(`forged${i}`), { ...who, ...guard });
        assert.equal(r.status, 403, r.text);
        // Reads too: the headers mean nothing there, and a client that sends them is refused all the same.
        for (const path of ["/Users?count=0", "/Users/some-id", "/ServiceProviderConfig"])
          assert.equal((await node.request("GET", path, undefined, { ...who, ...guard })).status, 403, path);
      }
      const raise = await node.request("POST", "/provisiond/fence", undefined, {
        ...who,
        "x-provisiond-fencing-token": "9007199254740991",
      });
      assert.equal(raise.status, 403);
    }
    assert.equal(await fence(), 0);
    assert.equal((await node.request("GET", '/Users?filter=userName sw "forged"')).body.totalResults, 0);
    // The agent credential: a write that succeeds moves the fence; one that fails moves nothing.
    assert.equal(
      (await node.request("POST", "/Users", user("agent"), { "x-provisiond-fencing-token": "7" })).status,
      201,
    );
    assert.equal(await fence(), 7);
    const failed = await node.request("DELETE", "/Users/does-not-exist", undefined, {
      "x-provisiond-fencing-token": "99",
    });
    assert.equal(failed.status, 404);
    assert.equal(await fence(), 7);
  });
});

describe("the embedded default's generated token", () => {
  let node: TestNode;
  before(async () => {
    node = await TestNode.start(undefined, { PROVISIOND_SCIM_TOKEN: "", PROVISIOND_SCIM_AGENT_TOKEN: "" });
  });
  after(async () => node.stop());

  it("is written 0600 into the data directory, works, and only its path is logged", async () => {
    const file = JSON.parse(node.logs.find((l) => l.includes("tokenFile"))!).tokenFile as string;
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const token = readFileSync(file, "utf8").trim();
    assert.ok(token.length >= 32);
    assert.equal(
      (await node.request("GET", "/Users", undefined, { authorization: `Bearer ${token}` })).status,
      200,
    );
    assert.equal(
      (await node.request("GET", "/Users", undefined, { authorization: `Bearer ${TOKEN}` })).status,
      401,
    );
    assert.ok(!node.logs.join("").includes(token));
  });

  it("has an agent credential of its own beside it, also 0600, which alone may send the agent's headers", async () => {
    const dir = JSON.parse(node.logs.find((l) => l.includes("tokenFile"))!).tokenFile.replace(/[^/]+$/, "");
    const scimToken = readFileSync(join(dir, "scim-token"), "utf8").trim();
    const agentFile = join(dir, "agent-token");
    assert.equal(statSync(agentFile).mode & 0o777, 0o600);
    const agentToken = readFileSync(agentFile, "utf8").trim();
    assert.ok(agentToken.length >= 32 && agentToken !== scimToken);
    const body = { schemas: [USER_SCHEMA], userName: "generated-agent@example.com" };
    const as = (t: string) => ({ authorization: `Bearer ${t}`, "x-provisiond-fencing-token": "3" });
    assert.equal((await node.request("POST", "/Users", body, as(scimToken))).status, 403);
    assert.equal((await node.request("POST", "/Users", body, as(agentToken))).status, 201);
    assert.ok(!node.logs.join("").includes(agentToken));
  });
});

describe("PROVISIOND_SCIM_AUTH=none", () => {
  let node: TestNode;
  before(async () => {
    node = await TestNode.start(undefined, { PROVISIOND_SCIM_AUTH: "none" });
  });
  after(async () => node.stop());

  it("serves without credentials and says so loudly", async () => {
    assert.equal((await node.request("GET", "/Users", undefined, { authorization: "" })).status, 200);
    assert.ok(node.logs.some((l) => l.includes('"level":40') && l.includes("AUTHENTICATION IS OFF")));
  });

  it("still honours the agent's headers only from the agent credential", async () => {
    const body = { schemas: [USER_SCHEMA], userName: "anon@example.com" };
    const guard = { "x-provisiond-fencing-token": "5" };
    assert.equal((await node.request("POST", "/Users", body, { authorization: "", ...guard })).status, 403);
    assert.equal((await node.request("POST", "/Users", body, guard)).status, 201);
  });
});

describe("TLS", () => {
  let node: TestNode;
  let dir: string;
  let ca: Buffer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "provisiond-tls-"));
    const cert = await genCert({ outDir: dir, hosts: ["localhost", "127.0.0.1"], days: 1 });
    ca = readFileSync(cert.certFile);
    assert.match(cert.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    node = await TestNode.start(undefined, {
      PROVISIOND_TLS_CERT_FILE: cert.certFile,
      PROVISIOND_TLS_KEY_FILE: cert.keyFile,
    });
  });
  after(async () => {
    await node.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const handshake = (maxVersion: "TLSv1.1" | "TLSv1.2" | "TLSv1.3", ciphers?: string) =>
    new Promise<string>((resolve, reject) => {
      const url = new URL(`${node.base}/ServiceProviderConfig`);
      const req = httpsRequest(
        {
          host: "127.0.0.1",
          port: url.port,
          path: url.pathname,
          ca,
          servername: "localhost",
          maxVersion,
          minVersion: "TLSv1",
          ...(ciphers ? { ciphers } : {}),
          headers: { authorization: `Bearer ${TOKEN}` },
        },
        (res) => {
          const proto = (res.socket as TLSSocket).getProtocol() ?? "";
          res.resume();
          res.on("end", () => resolve(`${res.statusCode} ${proto}`));
        },
      );
      req.on("error", reject);
      req.end();
    });

  it("serves HTTPS with TLS 1.2 and 1.3 and refuses TLS 1.1", async () => {
    assert.equal(await handshake("TLSv1.2"), "200 TLSv1.2");
    assert.equal(await handshake("TLSv1.3"), "200 TLSv1.3");
    await assert.rejects(handshake("TLSv1.1"));
  });

  it("offers TLS 1.2 only Mozilla's intermediate suites: no static RSA, no CBC with SHA-1", async () => {
    for (const weak of ["AES128-SHA", "AES256-SHA256", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384"])
      await assert.rejects(handshake("TLSv1.2", weak), Error, `${weak} was accepted`);
    assert.equal(await handshake("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"), "200 TLSv1.2");
    assert.equal(await handshake("TLSv1.2", "ECDHE-RSA-CHACHA20-POLY1305"), "200 TLSv1.2");
  });

  it("gen-cert writes the key 0600, also over an old key that was readable by others", async () => {
    const again = mkdtempSync(join(tmpdir(), "provisiond-tls-"));
    try {
      const first = await genCert({ outDir: again, hosts: ["localhost"], days: 1 });
      chmodSync(first.keyFile, 0o644);
      const second = await genCert({ outDir: again, hosts: ["localhost"], days: 1 });
      assert.equal(statSync(second.keyFile).mode & 0o777, 0o600);
      assert.notEqual(readFileSync(second.keyFile, "utf8"), "");
    } finally {
      rmSync(again, { recursive: true, force: true });
    }
  });
});

describe("the embedded store's files", () => {
  let node: TestNode;
  let dataDir: string;
  before(async () => {
    // A data dir that does not exist yet, under a world-readable parent, as with the defaults.
    dataDir = join(mkdtempSync(join(tmpdir(), "provisiond-modes-")), "data");
    node = await TestNode.start(`sqlite:${join(dataDir, "provisiond.db")}`, { PROVISIOND_DATA_DIR: dataDir });
  });
  after(async () => {
    await node.stop();
    rmSync(dirname(dataDir), { recursive: true, force: true });
  });

  it("are private: the data dir 0700, the database and its -wal and -shm files 0600", async () => {
    assert.equal(
      (await node.request("POST", "/Users", { schemas: [USER_SCHEMA], userName: "m@example.com" })).status,
      201,
    );
    assert.equal(statSync(dataDir).mode & 0o777, 0o700);
    for (const f of ["provisiond.db", "provisiond.db-wal", "provisiond.db-shm"])
      assert.equal(statSync(join(dataDir, f)).mode & 0o777, 0o600, f);
  });
});

describe("slow and unauthenticated clients", () => {
  let node: TestNode;
  before(async () => {
    // Timeouts far apart, so each test sees the one mechanism it is about.
    node = await TestNode.start(undefined, {
      PROVISIOND_SCIM_HEADERS_TIMEOUT_MS: "500",
      PROVISIOND_SCIM_REQUEST_TIMEOUT_MS: "600000",
    });
  });
  after(async () => node.stop());

  /** Writes `text` on a raw connection and resolves with everything the server sent once it hangs up. */
  const exchange = (text: string) =>
    new Promise<string>((resolve, reject) => {
      const url = new URL(node.base);
      const socket = connect(Number(url.port), "127.0.0.1", () => socket.write(text));
      let got = "";
      socket.on("data", (c) => {
        got += c.toString();
      });
      socket.on("error", reject);
      socket.on("close", () => resolve(got));
    });

  it("hangs up on a client without credentials that declared a huge body", { timeout: 30_000 }, async () => {
    const got = await exchange(
      "POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-token-0123456789\r\n" +
        "Content-Type: application/scim+json\r\nContent-Length: 1000000000\r\n\r\n{",
    );
    assert.match(got, /^HTTP\/1\.1 401 /);
  });

  it("reads and drops a small body of a client without credentials, so it sees its 401", async () => {
    const res = await fetch(`${node.base}/Users`, {
      method: "POST",
      headers: { authorization: "Bearer wrong-token-0123456789", "content-type": "application/scim+json" },
      body: JSON.stringify({ schemas: [USER_SCHEMA], userName: "x".repeat(10_000) }),
    });
    assert.equal(res.status, 401);
  });

  it("cuts off a client that trickles its headers", { timeout: 30_000 }, async () => {
    const got = await exchange("GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\n");
    assert.match(got, /^HTTP\/1\.1 408 /);
  });
});

describe("the connection cap", () => {
  let node: TestNode;
  before(async () => {
    node = await TestNode.start(undefined, { PROVISIOND_SCIM_MAX_CONNECTIONS: "2" });
  });
  after(async () => node.stop());

  it("refuses sockets beyond PROVISIOND_SCIM_MAX_CONNECTIONS, and serves again once they are gone", {
    timeout: 30_000,
  }, async () => {
    const port = Number(new URL(node.base).port);
    const open = () =>
      new Promise<Socket>((resolve, reject) => {
        const s = connect(port, "127.0.0.1", () => resolve(s));
        s.on("error", reject);
      });
    const held = [await open(), await open()];
    const extra = await open();
    await once(extra, "close"); // the server hung up on the third at once
    for (const s of held) s.destroy();
    await Promise.all(held.map((s) => once(s, "close")));
    // The server counts a socket gone when it has seen the close, which may come after ours.
    await waitFor("the node to serve again", async () => {
      const res = await fetch(`${node.base}/ServiceProviderConfig`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      }).catch(() => undefined);
      return res?.status === 200;
    });
  });
});
