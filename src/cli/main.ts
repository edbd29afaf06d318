#!/usr/bin/env node
/** provisiond's command line: `node` (the default) runs a node; `gen-cert` makes a TLS certificate. */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { Stopped } from "../agent/errors.js";
import {
  Patience,
  PatientOktaClient,
  PatientScimClient,
  RECONCILE_TIMEOUT_MS,
  reconcile,
} from "../agent/reconcile.js";
import { type Config, ConfigError, loadConfig } from "../config/index.js";
import { Reader, withConfigFile } from "../config/reader.js";
import { createLogger } from "../observability/logger.js";
import { Metrics } from "../observability/metrics.js";
import { createOktaSim, simUsage } from "../okta-sim/server.js";
import { adminUrls, checkCluster, UsageError } from "./check-cluster.js";
import { readToken, tokenFileNote } from "./credentials.js";
import { CertExists, certificateHost, genCertCommand } from "./gen-cert.js";
import { agentScimTarget, startNode } from "./node.js";

const USAGE = `usage: provisiond [command] [options]

commands:
  node        run a node (default); configured by PROVISIOND_* environment variables (see README)
  okta-sim    run the Okta API simulator: PROVISIOND_OKTA_SIM_PORT (8090), PROVISIOND_OKTA_SIM_TOKEN,
              PROVISIOND_OKTA_SIM_APP_ID; control API under /sim (provisiond okta-sim --help lists it)
  reconcile [--timeout SECONDS]
              list the Okta app's users and pushed groups, compare them with the connector, apply the
              difference once, print what changed (same configuration as a node with an agent source).
              Gives up when a request to Okta or the connector has no answer for --timeout seconds
              (default PROVISIOND_RECONCILE_TIMEOUT_MS, 60000 ms). Exit 0: converged; 1: something was
              refused, or it gave up or failed; 2: usage or configuration error
  gen-cert [--out DIR] [--host NAME]... [--days N] [--force]
              write a self-signed TLS certificate into DIR (default $PROVISIOND_DATA_DIR/tls, ./data/tls) for
              each NAME (default localhost, 127.0.0.1), valid N days (825); refuses to replace a certificate
              or key already there (exit 1) unless --force
  check-cluster URL...
              each admin URL (e.g. http://node-0:9464) answers /readyz, and exactly one node is primary
  help        show this text

A bad option or argument prints this text and exits 2; a configuration error names its variable and exits 2.`;

/** A command's options, parsed strictly: an unknown option, a missing value or a stray argument is a UsageError. */
function options<O extends NonNullable<ParseArgsConfig["options"]>>(
  command: string,
  args: string[],
  opts: O,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args, options: opts, strict: true, allowPositionals });
  } catch (err) {
    if (!String((err as { code?: unknown }).code).startsWith("ERR_PARSE_ARGS")) throw err;
    throw new UsageError(`${command}: ${(err as Error).message}`);
  }
}

const OKTA_SIM_USAGE = `usage: provisiond okta-sim

Serves the part of Okta's API the agent uses (System Log, app users, users, groups, group push, rate limits)
and a control API under /sim to drive the simulated org. Environment:
  PROVISIOND_OKTA_SIM_PORT    port (8090; 0 picks a free one)
  PROVISIOND_OKTA_SIM_HOST    address to listen on (127.0.0.1)
  PROVISIOND_OKTA_SIM_TOKEN   the SSWS API token it accepts (generated and printed if unset)
  PROVISIOND_OKTA_SIM_APP_ID  the app's id (0oasimapp000000000)

${simUsage()}`;

async function main(argv: string[]): Promise<number> {
  const [command = "node", ...rest] = argv;
  if (command === "okta-sim" && (rest.includes("--help") || rest.includes("-h"))) {
    process.stdout.write(`${OKTA_SIM_USAGE}\n`);
    return 0;
  }
  if (command !== "help" && (rest.includes("--help") || rest.includes("-h"))) return main(["help"]);
  switch (command) {
    case "node":
      options(command, rest, {});
      return runNode();
    case "gen-cert": {
      const { values } = options(command, rest, {
        out: { type: "string", default: join(process.env.PROVISIOND_DATA_DIR || "./data", "tls") },
        host: { type: "string", multiple: true },
        days: { type: "string", default: "825" },
        force: { type: "boolean", default: false },
      });
      const hosts = values.host?.length ? values.host : ["localhost", "127.0.0.1"];
      const days = Number(values.days);
      if (!/^\d+$/.test(values.days) || days < 1)
        throw new UsageError(
          `gen-cert: --days must be a positive whole number of days, got "${values.days}"`,
        );
      await genCertCommand({ outDir: values.out, hosts, days, force: values.force }, (t) =>
        process.stdout.write(t),
      );
      return 0;
    }
    case "okta-sim":
      options(command, rest, {});
      return runOktaSim();
    case "reconcile": {
      const { values } = options(command, rest, { timeout: { type: "string" } });
      let timeoutMs: number | undefined;
      if (values.timeout !== undefined) {
        const seconds = Number(values.timeout);
        if (!/^\d+(\.\d+)?$/.test(values.timeout) || !(seconds > 0))
          throw new UsageError(
            `reconcile: --timeout must be a number of seconds above 0, got "${values.timeout}"`,
          );
        timeoutMs = Math.ceil(seconds * 1000);
      }
      return runReconcile(timeoutMs);
    }
    case "check-cluster":
      return (await checkCluster(adminUrls(rest), (l) => process.stdout.write(`${l}\n`))) ? 0 : 1;
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(`${USAGE}\n`);
      return 0;
    default:
      throw new UsageError(`unknown command "${command}"`);
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

async function runReconcile(flagTimeoutMs: number | undefined): Promise<number> {
  const cfg = loadConfig();
  const timeoutMs =
    flagTimeoutMs ??
    new Reader(withConfigFile(process.env)).int(
      "PROVISIOND_RECONCILE_TIMEOUT_MS",
      RECONCILE_TIMEOUT_MS,
      100,
      86_400_000,
    );
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
  const patience = new Patience(timeoutMs);
  const okta = new PatientOktaClient({ orgUrl: a.orgUrl!, token: a.apiToken!, metrics, logger }, patience);
  // Run by hand it is a plain SCIM client: no fencing token, so a running primary is never shut out by it.
  const target = agentScimTarget(cfg, cfg.scim.port, token ?? "");
  const scim = new PatientScimClient({ ...target, logger, metrics }, patience);
  try {
    const r = await reconcile({ okta, scim, appId: a.appId!, concurrency: a.concurrency, logger });
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    if (r.refused.length)
      process.stderr.write(
        `provisiond: reconcile: the connector refused ${r.refused.length} (listed above)\n`,
      );
    return r.refused.length ? 1 : 0;
  } catch (err) {
    if (!(err instanceof Stopped) || !patience.expired) throw err;
    const retries = (await metrics.agentRetries.get()).values.filter(
      (v) => v.labels.target === patience.expired,
    );
    const why = retries.length
      ? ` (${retries.map((v) => `${v.labels.reason === "network" ? "connection failed" : `answered ${v.labels.reason}`} ×${v.value}`).join(", ")})`
      : "";
    const what =
      patience.expired === "okta"
        ? `Okta at ${a.orgUrl} (PROVISIOND_OKTA_ORG_URL)`
        : a.scimUrl
          ? `the connector at ${target.baseUrl} (PROVISIOND_AGENT_SCIM_URL)`
          : `this node's connector at ${target.baseUrl} (PROVISIOND_SCIM_PORT; set PROVISIOND_AGENT_SCIM_URL and PROVISIOND_AGENT_SCIM_TOKEN for one elsewhere)`;
    process.stderr.write(
      `provisiond: reconcile gave up: ${what} did not answer within ${timeoutMs / 1000} s${why}; stopped there (what it applied stays; run it again), see --timeout and PROVISIOND_RECONCILE_TIMEOUT_MS\n`,
    );
    return 1;
  } finally {
    await okta.close();
    await scim.close();
  }
}

/** The SCIM base URL to give the identity provider: the public one, the certificate's name, or the bound address. */
function advertisedScimUrl(cfg: Config, bound: string): string {
  if (cfg.scim.publicBaseUrl) return `${cfg.scim.publicBaseUrl}${cfg.scim.basePath}/`;
  const url = new URL(bound);
  const wildcard = cfg.scim.host === "0.0.0.0" || cfg.scim.host === "::";
  const host = cfg.tls ? certificateHost(cfg.tls.certFile) : wildcard ? undefined : cfg.scim.host;
  if (host) url.hostname = host;
  return url.toString();
}

async function runNode(): Promise<number> {
  const cfg = loadConfig();
  // Whether this start generates the token files, or uses the ones an earlier start left.
  const scimTokenExisted = cfg.auth.generatedTokenFile ? existsSync(cfg.auth.generatedTokenFile) : true;
  const agentTokenExisted = cfg.auth.agentTokenFile ? existsSync(cfg.auth.agentTokenFile) : true;
  const node = await startNode(cfg);
  const lines = [
    `provisiond node ${cfg.nodeId} is up`,
    `  SCIM base URL: ${advertisedScimUrl(cfg, node.scimUrl)}`,
    `  admin:         ${node.adminUrl}/status  /metrics  /healthz  /readyz`,
    `  store:         ${cfg.store.url.startsWith("sqlite:") ? cfg.store.url : "mysql (PROVISIOND_STORE_URL)"}`,
    cfg.auth.disabled
      ? "  auth:          OFF (PROVISIOND_SCIM_AUTH=none)"
      : cfg.auth.generatedTokenFile
        ? `  auth:          bearer token: ${tokenFileNote(cfg.auth.generatedTokenFile, !scimTokenExisted)} (set PROVISIOND_SCIM_TOKEN to choose your own)`
        : `  auth:          ${[cfg.auth.bearerTokens.length ? "bearer token" : "", cfg.auth.basic ? "HTTP Basic" : "", cfg.auth.header ? `header ${cfg.auth.header.name}` : ""].filter(Boolean).join(", ")} from the environment`,
    cfg.auth.agentTokenFile
      ? `  agent credential: ${tokenFileNote(cfg.auth.agentTokenFile, !agentTokenExisted)} (PROVISIOND_SCIM_AGENT_TOKEN sets one)`
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
      process.stderr.write(`provisiond: ${err.message}\n\n${USAGE}\n`);
      process.exit(2);
    }
    if (err instanceof CertExists) {
      process.stderr.write(`provisiond: ${err.message}\n`);
      process.exit(1);
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`provisiond: configuration error: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`provisiond: failed to start: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
