/** The connector side of a node: the app store, the SCIM server over it, and the store's upkeep. */
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { setTimeout as sleep } from "node:timers/promises";
import { ExponentialBackoff, type IBackoff, noJitterGenerator } from "cockatiel";
import type { Logger } from "pino";
import { type Config, ConfigError } from "../config/index.js";
import type { Metrics } from "../observability/metrics.js";
import { GroupService } from "../scim/groups.js";
import { createScimApp } from "../scim/http/app.js";
import {
  customSchemaDef,
  enterpriseUserSchema,
  groupSchema,
  ResourceSchema,
  userSchema,
} from "../scim/model/schema.js";
import { UserService } from "../scim/users.js";
import { isUnreachable, storeEndpoint } from "../store/errors.js";
import { AppStore } from "../store/index.js";
import type { Credentials } from "./credentials.js";

/**
 * Mozilla's "intermediate" configuration (ssl-config.mozilla.org, v5.7): forward-secret AEAD suites only for
 * TLS 1.2 (no static RSA key exchange, no CBC, no SHA-1), and TLS 1.3's three. Node's default list keeps the
 * older suites for compatibility with clients that SCIM callers are not.
 */
const INTERMEDIATE_CIPHERS = [
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
  "DHE-RSA-AES128-GCM-SHA256",
  "DHE-RSA-AES256-GCM-SHA384",
  "DHE-RSA-CHACHA20-POLY1305",
].join(":");

/** A store that could not be opened at startup, with what to fix; its message names the variable. */
export class StoreStartupError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
    override readonly cause?: unknown,
  ) {
    super(`${variable}: ${problem}`);
    this.name = "StoreStartupError";
  }
}

/**
 * Between attempts to reach the store at startup: 1 s, doubling to 10 s. No jitter: the log can then say how
 * many attempts are left, and a few nodes knocking once a second or less never troubled a database.
 */
const STORE_RETRY = new ExponentialBackoff({
  initialDelay: 1000,
  maxDelay: 10_000,
  generator: noJitterGenerator,
});

/** How many attempts the schedule still has room for, `leftMs` before the deadline, counting none in flight. */
function attemptsLeft(backoff: IBackoff<unknown>, leftMs: number): number {
  let n = 0;
  for (let b = backoff, left = leftMs; left > 0; b = b.next(undefined)) {
    left -= Math.min(b.duration, left);
    n++;
  }
  return n;
}

/**
 * What a failed first opening of the store means: `retry` when the store may yet come up (down, refusing,
 * a name not yet resolvable); otherwise the line that says what to fix. Never the URL: it holds the password.
 */
function storeStartFailure(err: unknown, url: string, endpoint: string): { retry: boolean; problem: string } {
  const e = err as { code?: string; message?: string };
  const code = typeof e?.code === "string" ? e.code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  if (isUnreachable(err)) return { retry: true, problem: `cannot reach the store at ${endpoint} (${code})` };
  if (url.startsWith("sqlite:"))
    return {
      retry: false,
      problem: `cannot open the SQLite store ${url.slice("sqlite:".length)} (${code ?? message}): check that its directory exists and this user may write there`,
    };
  let user = "";
  let database = "";
  try {
    const u = new URL(url);
    user = decodeURIComponent(u.username);
    database = decodeURIComponent(u.pathname.slice(1));
  } catch {
    // the driver's own error says more
  }
  switch (code) {
    case "ER_ACCESS_DENIED_ERROR":
    case "ER_ACCESS_DENIED_NO_PASSWORD_ERROR":
    case "ER_DBACCESS_DENIED_ERROR":
    case "ER_HOST_NOT_PRIVILEGED":
    case "ER_NOT_SUPPORTED_AUTH_MODE":
      return {
        retry: false,
        problem: `the MySQL server at ${endpoint} refused user "${user}" (${message}): check the user and password in PROVISIOND_STORE_URL and that user's grants on "${database}"`,
      };
    case "ER_BAD_DB_ERROR":
      return {
        retry: false,
        problem: `the database "${database}" does not exist on ${endpoint}: create it (CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin) or correct the name in PROVISIOND_STORE_URL`,
      };
  }
  if (err instanceof URIError)
    return {
      retry: false,
      problem: `the MySQL driver cannot read the URL (${message}): percent-encode any special characters of the user and password`,
    };
  return { retry: false, problem: `the store at ${endpoint} failed at startup: ${message}` };
}

/**
 * The store, migrated, with the configured custom attribute columns. A store that cannot be reached yet is
 * tried again with back-off for PROVISIOND_STORE_CONNECT_TIMEOUT_MS, each attempt logged; what retrying cannot
 * fix (a refused login, a missing database, a URL the driver cannot read) fails at once.
 */
export async function openStore(
  cfg: Config,
  metrics: Metrics,
  logger: Logger,
): Promise<{ store: AppStore; users: ResourceSchema }> {
  const extensions = [enterpriseUserSchema, ...(cfg.customSchema ? [customSchemaDef(cfg.customSchema)] : [])];
  const users = new ResourceSchema("User", "/Users", userSchema, extensions);
  const options = {
    ...cfg.store,
    customColumns: (cfg.customSchema?.attributes ?? []).map((a) => ({
      urn: cfg.customSchema!.urn,
      attr: a.name,
      column: a.column,
      multiValued: a.multiValued ?? false,
      type: a.type,
    })),
  };
  const endpoint = storeEndpoint(cfg.store.url);
  const waitMs = cfg.store.connectTimeoutMs;
  const started = Date.now();
  let backoff = STORE_RETRY.next();
  for (let attempt = 1; ; attempt++) {
    try {
      const store = await AppStore.open(options, users, metrics, logger);
      if (attempt > 1) logger.info({ store: endpoint, attempt }, `store reached at ${endpoint}`);
      return { store, users };
    } catch (err) {
      const { retry, problem } = storeStartFailure(err, cfg.store.url, endpoint);
      if (!retry) throw new StoreStartupError("PROVISIOND_STORE_URL", problem, err);
      const leftMs = started + waitMs - Date.now();
      const code = (err as { code?: string }).code;
      if (leftMs <= 0)
        throw new StoreStartupError(
          "PROVISIOND_STORE_URL",
          `${problem}, ${attempt} attempt${attempt === 1 ? "" : "s"} in ${((Date.now() - started) / 1000).toFixed(1)} s: start the database there, or point PROVISIOND_STORE_URL at the right host and port (PROVISIOND_STORE_CONNECT_TIMEOUT_MS=${waitMs} is how long a starting node waits for it)`,
          err,
        );
      const delay = Math.min(backoff.duration, leftMs);
      const of = attempt + attemptsLeft(backoff, leftMs);
      logger.warn(
        {
          variable: "PROVISIOND_STORE_URL",
          store: endpoint,
          cause: code,
          attempt,
          of,
          nextInSeconds: delay / 1000,
        },
        `cannot reach the store at ${endpoint} (PROVISIOND_STORE_URL): ${code}; attempt ${attempt} of at most ${of}, next in ${(delay / 1000).toFixed(1)} s`,
      );
      await sleep(delay);
      backoff = backoff.next(undefined);
    }
  }
}

/** The SCIM server (not yet listening): HTTPS when a certificate is configured, with its timeouts and limits. */
export function createScimServer(
  cfg: Config,
  store: AppStore,
  users: ResourceSchema,
  creds: Credentials,
  metrics: Metrics,
  logger: Logger,
): Server {
  const app = createScimApp(
    {
      auth: cfg.auth,
      bearerTokens: creds.bearerTokens,
      agentToken: creds.agentToken,
      maxBodyBytes: cfg.scim.maxBodyBytes,
      bulkMaxOperations: cfg.scim.bulkMaxOperations,
      limits: {
        maxResults: cfg.scim.maxResults,
        maxFilterLength: cfg.scim.maxFilterLength,
        maxPageBytes: cfg.scim.maxPageBytes,
        maxFilterTerms: cfg.scim.maxFilterTerms,
      },
      passwordSync: cfg.scim.passwordSync,
      ...(cfg.scim.publicBaseUrl ? { publicBaseUrl: cfg.scim.publicBaseUrl } : {}),
    },
    {
      store,
      users: new UserService(store, users, cfg.scim.passwordSync),
      groups: new GroupService(store, new ResourceSchema("Group", "/Groups", groupSchema)),
      metrics,
      logger,
    },
  );
  // Node enforces the request timeouts below only when it checks its connections: check often enough.
  const checking = { connectionsCheckingInterval: Math.min(1000, cfg.scim.headersTimeoutMs) };
  const server = cfg.tls ? createTlsServer(cfg.tls, checking, app) : createHttpServer(checking, app);
  // Okta and Entra keep connections open between requests; outlive their idle timeouts. A request itself must
  // arrive promptly, so clients trickling headers or a body cannot hold sockets for minutes.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = cfg.scim.headersTimeoutMs;
  server.requestTimeout = Math.max(cfg.scim.requestTimeoutMs, cfg.scim.headersTimeoutMs);
  server.maxConnections = cfg.scim.maxConnections;
  return server;
}

function createTlsServer(
  tls: NonNullable<Config["tls"]>,
  checking: { connectionsCheckingInterval: number },
  app: ReturnType<typeof createScimApp>,
): Server {
  const { cert, key } = tlsPair(
    { variable: "PROVISIOND_TLS_CERT_FILE", file: tls.certFile },
    { variable: "PROVISIOND_TLS_KEY_FILE", file: tls.keyFile },
  );
  try {
    return createHttpsServer(
      {
        ...checking,
        cert,
        key,
        minVersion: "TLSv1.2",
        ciphers: INTERMEDIATE_CIPHERS,
        honorCipherOrder: false,
      },
      app,
    );
  } catch (err) {
    throw new ConfigError(
      "PROVISIOND_TLS_CERT_FILE",
      `${tls.certFile} with PROVISIOND_TLS_KEY_FILE=${tls.keyFile} cannot serve TLS (${(err as Error).message})`,
    );
  }
}

/** A file a variable names: `PROVISIOND_TLS_KEY_FILE=/etc/tls/key.pem`. */
export interface NamedFile {
  variable: string;
  file: string;
}

interface Pem extends NamedFile {
  pem: Buffer;
  /** The labels of its PEM blocks, in order: CERTIFICATE, PRIVATE KEY, RSA PRIVATE KEY… */
  labels: string[];
}

type PemKind = "CERTIFICATE" | "PRIVATE KEY";

function readPem({ variable, file }: NamedFile): Pem {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    throw new ConfigError(
      variable,
      `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
  const labels = [...pem.toString("latin1").matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1]!);
  return { variable, file, pem, labels };
}

function holds(p: Pem, kind: PemKind): boolean {
  return p.labels.some((l) => (kind === "CERTIFICATE" ? l === "CERTIFICATE" : l.endsWith("PRIVATE KEY")));
}

function article(label: string): string {
  return /^([AEIOU]|RSA|X509|SSH)/.test(label) ? `an ${label}` : `a ${label}`;
}

function wrongPem(p: Pem, want: PemKind): ConfigError {
  if (p.labels.length === 0)
    return new ConfigError(
      p.variable,
      `${p.file} holds no PEM block, expected ${article(want)} (a "-----BEGIN ${want}-----" block; a DER file converts with openssl ${want === "CERTIFICATE" ? "x509" : "pkey"} -inform der)`,
    );
  return new ConfigError(p.variable, `${p.file} holds ${article(p.labels[0]!)}, expected ${article(want)}`);
}

/** A PEM file of CA certificates (etcd's CA, a connector's). */
export function readCaFile(f: NamedFile): Buffer {
  const p = readPem(f);
  if (!holds(p, "CERTIFICATE")) throw wrongPem(p, "CERTIFICATE");
  try {
    new X509Certificate(p.pem);
  } catch (err) {
    throw new ConfigError(
      p.variable,
      `${p.file} holds a certificate that cannot be read (${(err as Error).message})`,
    );
  }
  return p.pem;
}

/**
 * A certificate and its private key, each from the file its variable names, checked for what OpenSSL would
 * only call "PEM routines::no start line": files swapped, the wrong kind of PEM, an encrypted key, a key that
 * is not the certificate's.
 */
export function tlsPair(certFile: NamedFile, keyFile: NamedFile): { cert: Buffer; key: Buffer } {
  const c = readPem(certFile);
  const k = readPem(keyFile);
  if (
    !holds(c, "CERTIFICATE") &&
    !holds(k, "PRIVATE KEY") &&
    holds(c, "PRIVATE KEY") &&
    holds(k, "CERTIFICATE")
  )
    throw new ConfigError(
      k.variable,
      `${k.file} holds a CERTIFICATE, expected a PRIVATE KEY, and ${c.variable}=${c.file} holds the PRIVATE KEY: the two files are swapped`,
    );
  if (!holds(c, "CERTIFICATE")) throw wrongPem(c, "CERTIFICATE");
  if (!holds(k, "PRIVATE KEY")) throw wrongPem(k, "PRIVATE KEY");
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(c.pem);
  } catch (err) {
    throw new ConfigError(
      c.variable,
      `${c.file} holds a certificate that cannot be read (${(err as Error).message})`,
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(k.pem);
  } catch (err) {
    const encrypted =
      k.labels.includes("ENCRYPTED PRIVATE KEY") || /Proc-Type: 4,ENCRYPTED/.test(k.pem.toString("latin1"));
    throw new ConfigError(
      k.variable,
      encrypted
        ? `${k.file} holds an encrypted private key; provisiond needs it unencrypted (openssl pkey -in ${k.file} -out key.pem)`
        : `${k.file} holds a private key that cannot be read (${(err as Error).message})`,
    );
  }
  if (!cert.checkPrivateKey(key))
    throw new ConfigError(
      k.variable,
      `${k.file} is not the key of the certificate in ${c.variable}=${c.file}: give the key that certificate was made for`,
    );
  return { cert: c.pem, key: k.pem };
}

/**
 * Idempotency keys only need to outlive any replay (a failover, an agent retry): old ones are forgotten hourly.
 * Returns the timer's stop.
 */
export function purgeIdempotencyHourly(store: AppStore, retentionHours: number, logger: Logger): () => void {
  const purge = async () => {
    const before = new Date(Date.now() - retentionHours * 3_600_000);
    try {
      const n = await store.purgeIdempotency(before);
      if (n > 0) logger.info({ purged: n, before: before.toISOString() }, "forgot old idempotency keys");
    } catch (err) {
      logger.warn({ err }, "could not purge old idempotency keys; will retry");
    }
  };
  const timer = setInterval(() => void purge(), 3_600_000);
  timer.unref();
  return () => clearInterval(timer);
}
