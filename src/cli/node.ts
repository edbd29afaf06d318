/** Wires one node: config → store → SCIM server and admin server. Returns a handle that stops it cleanly. */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { dirname } from "node:path";
import type { Logger } from "pino";
import type { Config } from "../config/index.js";
import { createAdminServer } from "../observability/admin-server.js";
import { createLogger } from "../observability/logger.js";
import { Metrics } from "../observability/metrics.js";
import { GroupService } from "../scim/groups.js";
import { createScimApp } from "../scim/http/app.js";
import {
  customSchemaDef,
  enterpriseUserSchema,
  groupSchema,
  ResourceSchema,
  userSchema,
} from "../scim/schema.js";
import { UserService } from "../scim/users.js";
import { AppStore } from "../store/index.js";

export interface RunningNode {
  scimUrl: string;
  adminUrl: string;
  store: AppStore;
  logger: Logger;
  stop(): Promise<void>;
}

/** Reads the generated bearer token, creating it (mode 0600) on first start. */
function generatedToken(file: string, logger: Logger): string {
  if (existsSync(file)) {
    const mode = statSync(file).mode & 0o077;
    if (mode !== 0) logger.warn({ file }, "the SCIM token file is readable by group or others; chmod 600 it");
    const t = readFileSync(file, "utf8").trim();
    if (t.length < 16)
      throw new Error(`the token in ${file} is shorter than 16 characters; delete the file to get a new one`);
    return t;
  }
  mkdirSync(dirname(file), { recursive: true });
  const token = randomBytes(32).toString("base64url");
  writeFileSync(file, `${token}\n`, { mode: 0o600, flag: "wx" });
  chmodSync(file, 0o600);
  return token;
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server.address() as AddressInfo));
  });
}

export async function startNode(
  cfg: Config,
  opts: { logDestination?: import("pino").DestinationStream } = {},
): Promise<RunningNode> {
  const logger = createLogger({
    nodeId: cfg.nodeId,
    level: cfg.logLevel,
    ...(cfg.auth.header ? { secretHeaders: [cfg.auth.header.name] } : {}),
    ...(opts.logDestination ? { destination: opts.logDestination } : {}),
  });
  const metrics = new Metrics(cfg.nodeId);
  const extensions = [enterpriseUserSchema, ...(cfg.customSchema ? [customSchemaDef(cfg.customSchema)] : [])];
  const users = new ResourceSchema("User", "/Users", userSchema, extensions);
  const groupsRs = new ResourceSchema("Group", "/Groups", groupSchema);

  const store = await AppStore.open(
    {
      ...cfg.store,
      customColumns: (cfg.customSchema?.attributes ?? []).map((a) => ({
        urn: cfg.customSchema!.urn,
        attr: a.name,
        column: a.column,
        multiValued: a.multiValued ?? false,
        type: a.type,
      })),
    },
    users,
    metrics,
  );

  const bearerTokens = [...cfg.auth.bearerTokens];
  if (cfg.auth.generatedTokenFile) {
    bearerTokens.push(generatedToken(cfg.auth.generatedTokenFile, logger));
    logger.info(
      { tokenFile: cfg.auth.generatedTokenFile },
      "no SCIM credential configured: a bearer token was generated; read it from the token file",
    );
  }
  if (cfg.auth.disabled) {
    logger.warn(
      "SCIM AUTHENTICATION IS OFF (PROVISIOND_SCIM_AUTH=none): anyone who reaches this port can create, change and delete users",
    );
  }

  const app = createScimApp(
    {
      auth: cfg.auth,
      bearerTokens,
      maxBodyBytes: cfg.scim.maxBodyBytes,
      limits: { maxResults: cfg.scim.maxResults, maxFilterLength: cfg.scim.maxFilterLength },
      passwordSync: cfg.scim.passwordSync,
      ...(cfg.scim.publicBaseUrl ? { publicBaseUrl: cfg.scim.publicBaseUrl } : {}),
    },
    {
      store,
      users: new UserService(store, users, cfg.scim.passwordSync),
      groups: new GroupService(store, groupsRs),
      metrics,
      logger,
    },
  );
  const scimServer = cfg.tls
    ? createHttpsServer(
        { cert: readFileSync(cfg.tls.certFile), key: readFileSync(cfg.tls.keyFile), minVersion: "TLSv1.2" },
        app,
      )
    : createHttpServer(app);
  // Okta and Entra keep connections open between requests; outlive their idle timeouts.
  scimServer.keepAliveTimeout = 65_000;
  scimServer.headersTimeout = 66_000;

  const startedAt = new Date().toISOString();
  const admin = createAdminServer({
    metrics,
    ready: () => store.ping(),
    status: () => ({
      nodeId: cfg.nodeId,
      role: "standalone",
      leaderId: cfg.nodeId,
      term: null,
      lease: null,
      cursor: null,
      eventLagSeconds: null,
      breaker: store.breaker.status(),
      failovers: [],
      store: { kind: store.kind },
      startedAt,
    }),
  });

  // Idempotency keys only need to outlive any replay: a failover, an agent retry. Forget old ones hourly.
  const purge = async () => {
    const before = new Date(Date.now() - cfg.scim.idempotencyRetentionHours * 3_600_000);
    try {
      const n = await store.purgeIdempotency(before);
      if (n > 0) logger.info({ purged: n, before: before.toISOString() }, "forgot old idempotency keys");
    } catch (err) {
      logger.warn({ err }, "could not purge old idempotency keys; will retry");
    }
  };
  const purgeTimer = setInterval(() => void purge(), 3_600_000);
  purgeTimer.unref();

  const scimAddr = await listen(scimServer, cfg.scim.port, cfg.scim.host);
  const adminAddr = await listen(admin, cfg.admin.port, cfg.admin.host);
  const host = (a: AddressInfo) => (a.address === "0.0.0.0" || a.address === "::" ? "localhost" : a.address);
  const scimUrl = `${cfg.tls ? "https" : "http"}://${host(scimAddr)}:${scimAddr.port}/scim/v2/`;
  const adminUrl = `http://${host(adminAddr)}:${adminAddr.port}`;
  logger.info({ scimUrl, adminUrl, store: store.kind, tls: Boolean(cfg.tls) }, "provisiond node started");

  return {
    scimUrl,
    adminUrl,
    store,
    logger,
    async stop() {
      clearInterval(purgeTimer);
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
