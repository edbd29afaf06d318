#!/usr/bin/env node
/** provisiond's command line: `node` (the default) runs a node; `gen-cert` makes a TLS certificate. */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { OktaClient } from "../agent/okta-client.js";
import { reconcile } from "../agent/reconcile.js";
import { ScimClient } from "../agent/scim-client.js";
import { ConfigError, loadConfig } from "../config/index.js";
import { createLogger } from "../observability/logger.js";
import { Metrics } from "../observability/metrics.js";
import { createOktaSim } from "../okta-sim/server.js";
import { adminUrls, checkCluster, UsageError } from "./check-cluster.js";
import { readToken } from "./credentials.js";
import { genCert } from "./gen-cert.js";
import { agentScimTarget, startNode } from "./node.js";

const USAGE = `usage: provisiond [command]

commands:
  node        run a node (default); configured by PROVISIOND_* environment variables (see README)
  okta-sim    run the Okta API simulator: PROVISIOND_OKTA_SIM_PORT (8090), PROVISIOND_OKTA_SIM_TOKEN,
              PROVISIOND_OKTA_SIM_APP_ID; control API under /sim (see README)
  reconcile   list the Okta app's users and pushed groups, compare them with the connector, apply the
              difference once, print what changed (same configuration as a node with an agent source)
  gen-cert    write a self-signed TLS certificate: --out DIR (default $PROVISIOND_DATA_DIR/tls, ./data/tls),
              --host NAME (repeatable), --days N; replaces a certificate already there
  check-cluster URL...
              each admin URL (e.g. http://node-0:9464) answers /readyz, and exactly one node is primary
  help        show this text`;

async function main(argv: string[]): Promise<number> {
  const [command = "node", ...rest] = argv;
  switch (command) {
    case "node":
      return runNode();
    case "gen-cert": {
      const { values } = parseArgs({
        args: rest,
        options: {
          out: { type: "string", default: join(process.env.PROVISIOND_DATA_DIR || "./data", "tls") },
          host: { type: "string", multiple: true },
          days: { type: "string", default: "825" },
        },
      });
      const hosts = values.host?.length ? values.host : ["localhost", "127.0.0.1"];
      const days = Number(values.days);
      if (!Number.isInteger(days) || days < 1) throw new ConfigError("--days", "must be a positive integer");
      const replaced = existsSync(join(values.out, "provisiond.crt"));
      const r = await genCert({ outDir: values.out, hosts, days });
      process.stdout.write(
        [
          ...(replaced ? [`replaced the certificate and key that were in ${values.out}`] : []),
          `certificate: ${r.certFile}`,
          `private key: ${r.keyFile} (mode 0600)`,
          `SHA-256 fingerprint: ${r.fingerprint}`,
          "",
          "Serve SCIM over TLS 1.2+ with:",
          `  PROVISIOND_TLS_CERT_FILE=${r.certFile} PROVISIOND_TLS_KEY_FILE=${r.keyFile} npm start`,
          "",
          "Make Okta's Provisioning Agent trust it (on the agent's host, with the agent's JRE):",
          `  keytool -importcert -noprompt -alias provisiond -file ${r.certFile} -keystore "$OKTA_AGENT_JRE/lib/security/cacerts" -storepass changeit`,
          "Then check the fingerprint the agent sees against the one above.",
          "",
        ].join("\n"),
      );
      return 0;
    }
    case "okta-sim":
      return runOktaSim();
    case "reconcile":
      return runReconcile();
    case "check-cluster":
      return (await checkCluster(adminUrls(rest), (l) => process.stdout.write(`${l}\n`))) ? 0 : 1;
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(`${USAGE}\n`);
      return 0;
    default:
      process.stderr.write(`provisiond: unknown command "${command}"\n${USAGE}\n`);
      return 2;
  }
}

async function runOktaSim(): Promise<number> {
  const port = Number(process.env.PROVISIOND_OKTA_SIM_PORT ?? 8090);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new ConfigError("PROVISIOND_OKTA_SIM_PORT", "must be a port number");
  const token = process.env.PROVISIOND_OKTA_SIM_TOKEN ?? randomBytes(24).toString("base64url");
  const appId = process.env.PROVISIOND_OKTA_SIM_APP_ID ?? "0oasimapp000000000";
  const host = process.env.PROVISIOND_OKTA_SIM_HOST ?? "127.0.0.1";
  const sim = createOktaSim({ token, appId });
  const app = sim.app;
  const server = app.listen(port, host, () => {
    const a = server.address() as { port: number };
    process.stderr.write(
      `okta-sim listening on http://${host}:${a.port}\n  app id: ${appId}\n` +
        (process.env.PROVISIOND_OKTA_SIM_TOKEN
          ? "  token: from PROVISIOND_OKTA_SIM_TOKEN\n"
          : `  token: ${token} (generated; a simulator's token is no secret)\n`),
    );
  });
  const stop = () => {
    sim.stop();
    server.close(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  return -1;
}

async function runReconcile(): Promise<number> {
  const cfg = loadConfig();
  const a = cfg.agent;
  if (a.source === "none")
    throw new ConfigError(
      "PROVISIOND_AGENT_SOURCE",
      "reconcile needs okta or okta-sim, and the Okta settings",
    );
  const logger = createLogger({ nodeId: cfg.nodeId, level: cfg.logLevel });
  const metrics = new Metrics(cfg.nodeId);
  // This node's agent credential (configured, or the one its first start generated): its writes carry
  // Idempotency-Keys, which the connector takes from no one else.
  const token = cfg.auth.agentToken ?? readToken(cfg.auth.agentTokenFile!, logger, false);
  if (token === undefined && a.scimToken === undefined)
    throw new ConfigError(
      "PROVISIOND_SCIM_AGENT_TOKEN",
      `reconcile needs the agent credential: set it, or start the node once so that it generates ${cfg.auth.agentTokenFile}`,
    );
  const okta = new OktaClient({ orgUrl: a.orgUrl!, token: a.apiToken!, metrics, logger });
  // Run by hand it is a plain SCIM client: no fencing token, so a running primary is never shut out by it.
  const scim = new ScimClient({
    ...agentScimTarget(cfg, cfg.scim.port, token ?? ""),
    logger,
    metrics,
  });
  try {
    const r = await reconcile({ okta, scim, appId: a.appId!, concurrency: a.concurrency, logger });
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    return r.refused.length ? 1 : 0;
  } finally {
    await okta.close();
    await scim.close();
  }
}

async function runNode(): Promise<number> {
  const cfg = loadConfig();
  const node = await startNode(cfg);
  const lines = [
    `provisiond node ${cfg.nodeId} is up`,
    `  SCIM base URL: ${node.scimUrl}`,
    `  admin:         ${node.adminUrl}/status  /metrics  /healthz  /readyz`,
    `  store:         ${cfg.store.url.startsWith("sqlite:") ? cfg.store.url : "mysql (PROVISIOND_STORE_URL)"}`,
    cfg.auth.disabled
      ? "  auth:          OFF (PROVISIOND_SCIM_AUTH=none)"
      : cfg.auth.generatedTokenFile
        ? `  auth:          bearer token generated into ${cfg.auth.generatedTokenFile} (set PROVISIOND_SCIM_TOKEN to choose your own)`
        : `  auth:          ${[cfg.auth.bearerTokens.length ? "bearer token" : "", cfg.auth.basic ? "HTTP Basic" : "", cfg.auth.header ? `header ${cfg.auth.header.name}` : ""].filter(Boolean).join(", ")} from the environment`,
    cfg.auth.agentTokenFile
      ? `  agent credential: ${cfg.auth.agentTokenFile} (generated; PROVISIOND_SCIM_AGENT_TOKEN sets one)`
      : "  agent credential: PROVISIOND_SCIM_AGENT_TOKEN",
  ];
  process.stderr.write(`${lines.join("\n")}\n`);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    node.logger.info({ signal }, "stopping");
    await node.stop();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
  return -1;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`provisiond: ${err.message}\n`);
      process.exit(2);
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`provisiond: configuration error: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`provisiond: failed to start: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
