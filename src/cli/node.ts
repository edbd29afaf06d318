/**
 * Wires one node: config → credentials → store and SCIM server (the connector) → admin server → election and
 * agent (the primary side). Returns a handle that stops it cleanly, in the reverse order.
 */
import { mkdirSync, statSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { DestinationStream, Logger } from "pino";
import type { AgentRunner } from "../agent/runner.js";
import { type Config, ConfigError } from "../config/index.js";
import { createLogger } from "../observability/logger.js";
import { Metrics } from "../observability/metrics.js";
import type { AppStore } from "../store/index.js";
import { createScimServer, openStore, purgeIdempotencyHourly } from "./connector.js";
import { credentials } from "./credentials.js";
import { agentScimTarget, startAgent, startCluster } from "./primary.js";
import { createNodeAdmin } from "./status.js";

export { agentScimTarget } from "./primary.js";

export interface RunningNode {
  scimUrl: string;
  adminUrl: string;
  store: AppStore;
  logger: Logger;
  stop(): Promise<void>;
}

/** Listens; a port that cannot be had is an error that names its variable. */
function listen(server: Server, port: number, host: string, variable: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      const why =
        err.code === "EADDRINUSE"
          ? "is in use by another process"
          : err.code === "EACCES"
            ? "needs privileges this user lacks (use a port above 1023)"
            : `cannot be listened on (${err.code ?? err.message})`;
      reject(new ConfigError(variable, `${host}:${port} ${why}`));
    });
    server.listen(port, host, () => resolve(server.address() as AddressInfo));
  });
}

export async function startNode(
  cfg: Config,
  opts: { logDestination?: DestinationStream } = {},
): Promise<RunningNode> {
  const logger = createLogger({
    nodeId: cfg.nodeId,
    level: cfg.logLevel,
    ...(cfg.auth.header ? { secretHeaders: [cfg.auth.header.name] } : {}),
    ...(opts.logDestination ? { destination: opts.logDestination } : {}),
  });
  const metrics = new Metrics(cfg.nodeId);
  // Tokens, the cursor, dead letters and (by default) the database live here: private to the node's user.
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  // One made beforehand keeps its mode; it is the operator's (a volume's owner may not be this user), so warn.
  if ((statSync(cfg.dataDir).mode & 0o077) !== 0)
    logger.warn(
      { dataDir: cfg.dataDir },
      "the data directory (tokens, cursor, and by default the database) is open to group or others; chmod 700 it",
    );

  const { store, users } = await openStore(cfg, metrics, logger);
  // What started before a later step failed (a port in use, a bad certificate) is stopped again, so the
  // failure is the only outcome: no pool, etcd client or listener left behind.
  const undo: (() => Promise<void>)[] = [() => store.close()];
  const step = async <T>(p: () => T | Promise<T>): Promise<T> => {
    try {
      return await p();
    } catch (err) {
      for (const u of undo.reverse()) await u().catch(() => undefined);
      throw err;
    }
  };
  const creds = await step(() => credentials(cfg.auth, logger));
  const scimServer = await step(() => createScimServer(cfg, store, users, creds, metrics, logger));
  const stopPurge = purgeIdempotencyHourly(store, cfg.scim.idempotencyRetentionHours, logger);
  undo.push(async () => stopPurge());

  const cluster = await step(() => startCluster(cfg, logger, metrics));
  undo.push(() => cluster.stop());
  let runner: AgentRunner | undefined;
  const admin = createNodeAdmin(
    { cfg, store, cluster, runner: () => runner, startedAt: new Date().toISOString() },
    metrics,
  );

  const close = (s: Server) => async () => {
    if (s.listening) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  undo.push(close(scimServer), close(admin));
  const scimAddr = await step(() => listen(scimServer, cfg.scim.port, cfg.scim.host, "PROVISIOND_SCIM_PORT"));
  const adminAddr = await step(() => listen(admin, cfg.admin.port, cfg.admin.host, "PROVISIOND_ADMIN_PORT"));
  const host = (a: AddressInfo) => (a.address === "0.0.0.0" || a.address === "::" ? "localhost" : a.address);
  const scimUrl = `${cfg.tls ? "https" : "http"}://${host(scimAddr)}:${scimAddr.port}/scim/v2/`;
  const adminUrl = `http://${host(adminAddr)}:${adminAddr.port}`;
  logger.info({ scimUrl, adminUrl, store: store.kind, tls: Boolean(cfg.tls) }, "provisiond node started");

  if (cluster.election) await cluster.election.start();
  if (cfg.agent.source !== "none")
    runner = startAgent(cfg, cluster, agentScimTarget(cfg, scimAddr.port, creds.agentToken), logger, metrics);

  return {
    scimUrl,
    adminUrl,
    store,
    logger,
    async stop() {
      stopPurge();
      // Graceful handover: stop taking events and let (or make) the agent's requests end, then resign, so a
      // standby wins at once and nothing of this term is still on its way to the store.
      await runner?.stop();
      await cluster.stop();
      await Promise.all(
        [scimServer, admin].map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeIdleConnections();
            }),
        ),
      );
      await store.close();
    },
  };
}
