/** PROVISIOND_AGENT_*, PROVISIOND_OKTA_*: where the agent reads events and which connector it drives. */
import { ConfigError, type Reader } from "./reader.js";
import type { AgentConfig } from "./types.js";

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])$/;

export function agentConfig(r: Reader): AgentConfig {
  const source = r.oneOf("PROVISIOND_AGENT_SOURCE", "none", ["okta", "okta-sim", "none"] as const);
  const cfg: AgentConfig = {
    source,
    concurrency: r.int("PROVISIOND_AGENT_CONCURRENCY", 8, 1, 256),
    bulkOperations: r.int("PROVISIOND_AGENT_BULK_OPERATIONS", 500, 0, 10_000),
    pollMs: r.int("PROVISIOND_AGENT_POLL_MS", source === "okta" ? 5000 : 1000, 50, 600_000),
    pageSize: r.int("PROVISIOND_AGENT_PAGE_SIZE", 1000, 1, 1000),
    maxBatchEvents: r.int("PROVISIOND_AGENT_MAX_BATCH_EVENTS", 20_000, 1, 1_000_000),
    listThreshold: r.int("PROVISIOND_AGENT_LIST_THRESHOLD", 50, 0, 1_000_000),
    reconcileEveryMs: r.int("PROVISIOND_AGENT_RECONCILE_EVERY_MS", 0, 0, 7 * 86_400_000),
  };
  if (source === "none") {
    for (const v of ["PROVISIOND_AGENT_SCIM_URL", "PROVISIOND_AGENT_SCIM_TOKEN"])
      if (r.raw(v) !== undefined || r.raw(`${v}_FILE`) !== undefined)
        throw new ConfigError(
          v,
          "is set, but no agent runs here: set PROVISIOND_AGENT_SOURCE to okta or okta-sim",
        );
    return cfg;
  }
  const orgUrl = r.raw("PROVISIOND_OKTA_ORG_URL");
  if (!orgUrl)
    throw new ConfigError(
      "PROVISIOND_OKTA_ORG_URL",
      `is required when PROVISIOND_AGENT_SOURCE=${source}, e.g. https://example.okta.com`,
    );
  let u: URL;
  try {
    u = new URL(orgUrl);
  } catch {
    throw new ConfigError("PROVISIOND_OKTA_ORG_URL", "is not a URL; expected https://<org>.okta.com");
  }
  // The simulator holds no one's data and may run in a container beside the nodes; a real org is https only.
  const plainHttpOk = u.protocol === "http:" && (source === "okta-sim" || LOOPBACK.test(u.hostname));
  if (u.protocol !== "https:" && !plainHttpOk) {
    throw new ConfigError(
      "PROVISIOND_OKTA_ORG_URL",
      "must use https (plain http is allowed only for the simulator, PROVISIOND_AGENT_SOURCE=okta-sim, or on a loopback address)",
    );
  }
  const apiToken = r.secret("PROVISIOND_OKTA_API_TOKEN");
  if (!apiToken)
    throw new ConfigError("PROVISIOND_OKTA_API_TOKEN", "is required (an Okta API token, sent as SSWS)");
  const appId = r.raw("PROVISIOND_OKTA_APP_ID");
  if (!appId || !/^[A-Za-z0-9]{1,64}$/.test(appId))
    throw new ConfigError("PROVISIOND_OKTA_APP_ID", "must be the Okta app's id, e.g. 0oa1b2c3d4EXAMPLE");
  cfg.orgUrl = u.origin;
  cfg.apiToken = apiToken;
  cfg.appId = appId;
  const scimUrl = r.raw("PROVISIOND_AGENT_SCIM_URL");
  if (scimUrl !== undefined) {
    if (!/^https?:\/\/[^/]+\/.*scim\/v2\/?$/.test(scimUrl))
      throw new ConfigError("PROVISIOND_AGENT_SCIM_URL", "must be a SCIM base URL ending in /scim/v2");
    cfg.scimUrl = scimUrl;
  }
  const scimToken = r.secret("PROVISIOND_AGENT_SCIM_TOKEN");
  if (scimToken !== undefined && scimUrl === undefined)
    throw new ConfigError(
      "PROVISIOND_AGENT_SCIM_TOKEN",
      "is for a connector elsewhere (with PROVISIOND_AGENT_SCIM_URL); this node's agent already holds its own connector's agent credential (PROVISIOND_SCIM_AGENT_TOKEN)",
    );
  // Without one the agent would send its own connector's credential to another server.
  if (scimUrl !== undefined && !scimToken)
    throw new ConfigError(
      "PROVISIOND_AGENT_SCIM_TOKEN",
      "is required with PROVISIOND_AGENT_SCIM_URL: the agent credential of that connector (its PROVISIOND_SCIM_AGENT_TOKEN)",
    );
  if (scimToken !== undefined && scimToken.length < 16)
    throw new ConfigError(
      "PROVISIOND_AGENT_SCIM_TOKEN",
      "is shorter than 16 characters, so it cannot be a connector's agent credential",
    );
  if (scimToken) cfg.scimToken = scimToken;
  const ca = r.raw("PROVISIOND_AGENT_SCIM_CA_FILE");
  if (ca) cfg.scimCaFile = ca;
  const startAt = r.raw("PROVISIOND_AGENT_START_AT");
  if (startAt !== undefined) {
    if (Number.isNaN(Date.parse(startAt)))
      throw new ConfigError("PROVISIOND_AGENT_START_AT", "must be an ISO 8601 time");
    cfg.startAt = new Date(startAt).toISOString();
  }
  return cfg;
}
