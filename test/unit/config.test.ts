import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { ConfigError, loadConfig } from "../../src/config/index.js";
import { KNOWN, SECRETS, TOOLING } from "../../src/config/known.js";
import { ROOT } from "../support/vectors.js";

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "provisiond-config-"));
const base = { PROVISIOND_DATA_DIR: dir };
const CLUSTER = {
  PROVISIOND_ETCD_ENDPOINTS: "127.0.0.1:2379",
  PROVISIOND_STORE_URL: "mysql://app@db:3306/app",
  PROVISIOND_SCIM_TOKEN: "a-cluster-wide-scim-token",
};

function errorFor(env: Record<string, string>): ConfigError {
  try {
    loadConfig({ ...base, ...env });
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  assert.fail("expected a configuration error");
}

describe("configuration", () => {
  it("defaults to a standalone SQLite node with a generated token", () => {
    const cfg = loadConfig(base);
    assert.equal(cfg.scim.port, 8080);
    assert.equal(cfg.admin.port, 9464);
    assert.equal(cfg.admin.host, "127.0.0.1", "the admin port (its /status names users) stays on loopback");
    assert.equal(cfg.store.url, `sqlite:${join(dir, "provisiond.db")}`);
    assert.equal(cfg.auth.generatedTokenFile, join(dir, "scim-token"));
    assert.equal(cfg.auth.agentTokenFile, join(dir, "agent-token"));
    assert.equal(cfg.auth.disabled, false);
  });

  const bad: [Record<string, string>, string, RegExp][] = [
    [{ PROVISIOND_SCIM_PORT: "eighty" }, "PROVISIOND_SCIM_PORT", /integer/],
    [{ PROVISIOND_SCIM_PORT: "70000" }, "PROVISIOND_SCIM_PORT", /between/],
    [{ PROVISIOND_ADMIN_PORT: "8080" }, "PROVISIOND_ADMIN_PORT", /differ/],
    [{ PROVISIOND_STORE_URL: "postgres://x/y" }, "PROVISIOND_STORE_URL", /mysql:\/\/ or sqlite:/],
    [{ PROVISIOND_STORE_URL: "mysql://host-only" }, "PROVISIOND_STORE_URL", /database/],
    [{ PROVISIOND_SCIM_TOKEN: "short" }, "PROVISIOND_SCIM_TOKEN", /16 characters/],
    [
      { PROVISIOND_SCIM_TOKEN: "0123456789abcdefXYZ", PROVISIOND_SCIM_TOKEN_FILE: "/x" },
      "PROVISIOND_SCIM_TOKEN",
      /not both/,
    ],
    [{ PROVISIOND_SCIM_TOKEN_FILE: "/nonexistent/token" }, "PROVISIOND_SCIM_TOKEN_FILE", /cannot read/],
    [{ PROVISIOND_SCIM_BASIC_USER: "okta" }, "PROVISIOND_SCIM_BASIC_PASSWORD", /both/],
    [{ PROVISIOND_SCIM_HEADER_NAME: "X-Secret" }, "PROVISIOND_SCIM_HEADER_VALUE", /both/],
    [
      { PROVISIOND_SCIM_AUTH: "none", PROVISIOND_SCIM_TOKEN: "0123456789abcdefXYZ" },
      "PROVISIOND_SCIM_AUTH",
      /remove one/,
    ],
    [{ PROVISIOND_SCIM_AUTH: "off" }, "PROVISIOND_SCIM_AUTH", /one of on, none/],
    [{ PROVISIOND_SCIM_AGENT_TOKEN: "short" }, "PROVISIOND_SCIM_AGENT_TOKEN", /16 characters/],
    [
      { PROVISIOND_SCIM_TOKEN: "0123456789abcdefXYZ", PROVISIOND_SCIM_AGENT_TOKEN: "0123456789abcdefXYZ" },
      "PROVISIOND_SCIM_AGENT_TOKEN",
      /equals PROVISIOND_SCIM_TOKEN: the agent credential must be its own/,
    ],
    [
      {
        PROVISIOND_SCIM_BASIC_USER: "okta",
        PROVISIOND_SCIM_BASIC_PASSWORD: "0123456789abcdefXYZ",
        PROVISIOND_SCIM_AGENT_TOKEN: "0123456789abcdefXYZ",
      },
      "PROVISIOND_SCIM_AGENT_TOKEN",
      /equals PROVISIOND_SCIM_BASIC_PASSWORD/,
    ],
    [
      {
        PROVISIOND_AGENT_SOURCE: "okta-sim",
        PROVISIOND_OKTA_ORG_URL: "http://127.0.0.1:9",
        PROVISIOND_OKTA_API_TOKEN: "sim-token",
        PROVISIOND_OKTA_APP_ID: "0oa1b2c3d4EXAMPLE",
        PROVISIOND_AGENT_SCIM_TOKEN: "0123456789abcdefXYZ",
      },
      "PROVISIOND_AGENT_SCIM_TOKEN",
      /connector elsewhere \(with PROVISIOND_AGENT_SCIM_URL\)/,
    ],
    [
      {
        PROVISIOND_AGENT_SOURCE: "okta-sim",
        PROVISIOND_OKTA_ORG_URL: "http://127.0.0.1:9",
        PROVISIOND_OKTA_API_TOKEN: "sim-token",
        PROVISIOND_OKTA_APP_ID: "0oa1b2c3d4EXAMPLE",
        PROVISIOND_AGENT_SCIM_URL: "https://connector.example.com/scim/v2",
      },
      "PROVISIOND_AGENT_SCIM_TOKEN",
      /required with PROVISIOND_AGENT_SCIM_URL/,
    ],
    [
      { PROVISIOND_AGENT_SCIM_URL: "https://connector.example.com/scim/v2" },
      "PROVISIOND_AGENT_SCIM_URL",
      /no agent runs here/,
    ],
    [
      {
        PROVISIOND_AGENT_SOURCE: "okta-sim",
        PROVISIOND_OKTA_ORG_URL: "http://127.0.0.1:9",
        PROVISIOND_OKTA_API_TOKEN: "sim-token",
        PROVISIOND_OKTA_APP_ID: "0oa1b2c3d4EXAMPLE",
        PROVISIOND_AGENT_SCIM_URL: "https://connector.example.com/scim/v2",
        PROVISIOND_AGENT_SCIM_TOKEN: "short",
      },
      "PROVISIOND_AGENT_SCIM_TOKEN",
      /shorter than 16/,
    ],
    [
      {
        PROVISIOND_AGENT_SOURCE: "okta",
        PROVISIOND_OKTA_ORG_URL: "http://example.okta.com",
        PROVISIOND_OKTA_API_TOKEN: "t",
        PROVISIOND_OKTA_APP_ID: "0oa1b2c3d4EXAMPLE",
      },
      "PROVISIOND_OKTA_ORG_URL",
      /must use https/,
    ],
    [{ PROVISIOND_TLS_CERT_FILE: "/x.crt" }, "PROVISIOND_TLS_KEY_FILE", /both/],
    [{ PROVISIOND_LOG_LEVEL: "loud" }, "PROVISIOND_LOG_LEVEL", /one of/],
    [{ PROVISIOND_PASSWORD_SYNC: "perhaps" }, "PROVISIOND_PASSWORD_SYNC", /true or false/],
    [
      {
        PROVISIOND_CUSTOM_SCHEMA: JSON.stringify({
          attributes: [{ name: "tags", type: "string", column: "tags", multiValued: true }],
        }),
      },
      "PROVISIOND_CUSTOM_SCHEMA",
      /Okta rejects a custom schema with only array attributes/,
    ],
    [
      {
        PROVISIOND_CUSTOM_SCHEMA: JSON.stringify({
          attributes: [{ name: "x", type: "string", column: "doc" }],
        }),
      },
      "PROVISIOND_CUSTOM_SCHEMA",
      /column/,
    ],
    [{ PROVISIOND_CUSTOM_SCHEMA: "{not json" }, "PROVISIOND_CUSTOM_SCHEMA", /JSON/],
    // A cluster on the embedded store would give every node a database of its own.
    [
      { PROVISIOND_ETCD_ENDPOINTS: "127.0.0.1:2379" },
      "PROVISIOND_STORE_URL",
      /PROVISIOND_ETCD_ENDPOINTS.*mysql:/,
    ],
    [
      { PROVISIOND_ETCD_ENDPOINTS: "127.0.0.1:2379", PROVISIOND_STORE_URL: "sqlite:/tmp/x.db" },
      "PROVISIOND_STORE_URL",
      /every node would write to its own file/,
    ],
    // No store transaction may outlive half a term.
    [
      { ...CLUSTER, PROVISIOND_LEASE_TTL_MS: "5000", PROVISIOND_BREAKER_TIMEOUT_MS: "2500" },
      "PROVISIOND_BREAKER_TIMEOUT_MS",
      /below half of PROVISIOND_LEASE_TTL_MS \(2500 ms\)/,
    ],
    [
      { ...CLUSTER, PROVISIOND_BREAKER_TIMEOUT_MS: "1000", PROVISIOND_STORE_QUERY_TIMEOUT_MS: "1500" },
      "PROVISIOND_STORE_QUERY_TIMEOUT_MS",
      /must not exceed PROVISIOND_BREAKER_TIMEOUT_MS/,
    ],
  ];
  for (const [env, variable, problem] of bad) {
    it(`refuses ${JSON.stringify(env).slice(0, 90)} naming ${variable}`, () => {
      const e = errorFor(env);
      assert.equal(e.variable, variable);
      assert.match(e.message, problem);
    });
  }

  it("refuses a mistyped PROVISIOND_* name, in the environment or the config file, naming the nearest", () => {
    assert.equal(
      errorFor({ ...base, PROVISIOND_SCIM_TOKNE: "a-token-of-sixteen-chars" }).message,
      'PROVISIOND_SCIM_TOKNE: is not a provisiond setting (set in the environment). Did you mean PROVISIOND_SCIM_TOKEN? See README, "Configuration".',
    );
    assert.doesNotMatch(errorFor({ ...base, PROVISIOND_WHATEVER: "1" }).message, /Did you mean/);
    const f = join(dir, "typo.json");
    writeFileSync(f, JSON.stringify({ PROVISIOND_LEASE_TTL: "5000" }));
    assert.match(
      errorFor({ ...base, PROVISIOND_CONFIG_FILE: f }).message,
      /^PROVISIOND_LEASE_TTL: is not a provisiond setting \(a key of .*typo\.json\)\. Did you mean PROVISIOND_LEASE_TTL_MS\?/,
    );
    // Secrets' _FILE variants and the scripts' own names pass.
    assert.ok(loadConfig({ ...base, PROVISIOND_CHAOS_REQUIRED: "1", PROVISIOND_SCIM_TOKEN_FILE: f }));
  });

  it("knows exactly the PROVISIOND_* names that src/ reads", () => {
    const read = new Set<string>();
    const walk = (d: string): string[] =>
      readdirSync(d, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? walk(join(d, e.name)) : e.name.endsWith(".ts") ? [join(d, e.name)] : [],
      );
    for (const file of walk(join(ROOT, "src")))
      for (const [name] of readFileSync(file, "utf8").matchAll(/PROVISIOND_[A-Z0-9_]*[A-Z0-9]\b/g))
        read.add(name);
    for (const name of read)
      assert.ok(KNOWN.has(name), `${name} is read in src/ but not in src/config/known.ts`);
    for (const name of KNOWN)
      if (!name.endsWith("_FILE") || !SECRETS.includes(name.slice(0, -5)))
        assert.ok(read.has(name) || TOOLING.includes(name), `${name} is listed but nothing reads it`);
  });

  it("refuses a cluster whose nodes would each generate their own SCIM token", () => {
    const { PROVISIOND_SCIM_TOKEN: _, ...noToken } = CLUSTER;
    assert.match(
      errorFor({ ...base, ...noToken }).message,
      /^PROVISIOND_SCIM_TOKEN: a cluster's nodes must all accept the same/,
    );
    assert.ok(
      loadConfig({
        ...base,
        ...noToken,
        PROVISIOND_SCIM_BASIC_USER: "okta",
        PROVISIOND_SCIM_BASIC_PASSWORD: "a-long-password-1",
      }),
    );
  });

  it("keeps a cluster's store transactions within half a term by default", () => {
    const five = loadConfig({ ...base, ...CLUSTER });
    assert.equal(five.store.breaker.timeoutMs, 2000);
    assert.equal(five.store.queryTimeoutMs, 2000);
    const two = loadConfig({ ...base, ...CLUSTER, PROVISIOND_LEASE_TTL_MS: "2000" });
    assert.ok(two.store.breaker.timeoutMs < 1000);
    // A standalone node has no term to fit in.
    assert.equal(loadConfig(base).store.breaker.timeoutMs, 10_000);
  });

  it("reads the store URL, which carries the database password, from PROVISIOND_STORE_URL_FILE too", () => {
    const f = join(dir, "store-url");
    writeFileSync(f, "mysql://app:secret@db:3306/app\n");
    assert.equal(
      loadConfig({ ...base, PROVISIOND_STORE_URL_FILE: f }).store.url,
      "mysql://app:secret@db:3306/app",
    );
  });

  it("reads secrets from _FILE variables", () => {
    const f = join(dir, "token");
    writeFileSync(f, "file-token-0123456789\n");
    assert.deepEqual(loadConfig({ ...base, PROVISIOND_SCIM_TOKEN_FILE: f }).auth.bearerTokens, [
      "file-token-0123456789",
    ]);
  });

  it("takes a JSON config file that mirrors the variables, with the environment winning", () => {
    const f = join(dir, "config.json");
    writeFileSync(f, JSON.stringify({ PROVISIOND_SCIM_PORT: 8443, PROVISIOND_NODE_ID: "from-file" }));
    const cfg = loadConfig({ ...base, PROVISIOND_CONFIG_FILE: f, PROVISIOND_NODE_ID: "from-env" });
    assert.equal(cfg.scim.port, 8443);
    assert.equal(cfg.nodeId, "from-env");
  });

  it("stops the CLI with one line that names the variable", async () => {
    const err = await run(process.execPath, ["--import", "tsx", join(ROOT, "src/cli/main.ts"), "node"], {
      cwd: ROOT,
      env: { ...process.env, ...base, PROVISIOND_SCIM_PORT: "eighty" },
    }).then(
      () => assert.fail("the node started"),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(err.code, 2);
    assert.equal(
      err.stderr.trim(),
      'provisiond: configuration error: PROVISIOND_SCIM_PORT: must be an integer, got "eighty"',
    );
  });
});
