/** PROVISIOND_SCIM_AUTH, _TOKEN, _BASIC_*, _HEADER_*, _AGENT_TOKEN: who may call the connector. */
import { resolve } from "node:path";
import { ConfigError, type Reader } from "./reader.js";
import type { AuthConfig } from "./types.js";

export function auth(r: Reader, dataDir: string): AuthConfig {
  const mode = r.oneOf("PROVISIOND_SCIM_AUTH", "on", ["on", "none"] as const);
  const token = r.secret("PROVISIOND_SCIM_TOKEN");
  const basicUser = r.raw("PROVISIOND_SCIM_BASIC_USER");
  const basicPassword = r.secret("PROVISIOND_SCIM_BASIC_PASSWORD");
  const headerName = r.raw("PROVISIOND_SCIM_HEADER_NAME");
  const headerValue = r.secret("PROVISIOND_SCIM_HEADER_VALUE");
  if (mode === "none") {
    if (token || basicUser || headerName) {
      throw new ConfigError(
        "PROVISIOND_SCIM_AUTH",
        "is none, yet credentials are configured; remove one or the other",
      );
    }
    return { disabled: true, bearerTokens: [], ...agentCredential(r, dataDir, []) };
  }
  if ((basicUser === undefined) !== (basicPassword === undefined)) {
    throw new ConfigError(
      basicUser === undefined ? "PROVISIOND_SCIM_BASIC_USER" : "PROVISIOND_SCIM_BASIC_PASSWORD",
      "Basic authentication needs both PROVISIOND_SCIM_BASIC_USER and PROVISIOND_SCIM_BASIC_PASSWORD",
    );
  }
  if (basicUser?.includes(":")) throw new ConfigError("PROVISIOND_SCIM_BASIC_USER", "must not contain ':'");
  if ((headerName === undefined) !== (headerValue === undefined)) {
    throw new ConfigError(
      headerName === undefined ? "PROVISIOND_SCIM_HEADER_NAME" : "PROVISIOND_SCIM_HEADER_VALUE",
      "the custom header mode needs both PROVISIOND_SCIM_HEADER_NAME and PROVISIOND_SCIM_HEADER_VALUE",
    );
  }
  if (headerName !== undefined && !/^[A-Za-z0-9-]+$/.test(headerName)) {
    throw new ConfigError(
      "PROVISIOND_SCIM_HEADER_NAME",
      "must be an HTTP header name (letters, digits, '-')",
    );
  }
  if (headerName?.toLowerCase() === "authorization") {
    throw new ConfigError(
      "PROVISIOND_SCIM_HEADER_NAME",
      "use PROVISIOND_SCIM_TOKEN or the Basic variables for Authorization",
    );
  }
  const secrets = [
    ["PROVISIOND_SCIM_TOKEN", token],
    ["PROVISIOND_SCIM_BASIC_PASSWORD", basicPassword],
    ["PROVISIOND_SCIM_HEADER_VALUE", headerValue],
  ] as const;
  for (const [n, v] of secrets) {
    if (v !== undefined && v.length < 16)
      throw new ConfigError(n, "is shorter than 16 characters; use a long random secret");
  }
  const cfg: AuthConfig = {
    disabled: false,
    bearerTokens: token ? [token] : [],
    ...agentCredential(r, dataDir, secrets),
  };
  if (basicUser && basicPassword) cfg.basic = { user: basicUser, password: basicPassword };
  if (headerName && headerValue) cfg.header = { name: headerName.toLowerCase(), value: headerValue };
  if (!token && !cfg.basic && !cfg.header) cfg.generatedTokenFile = resolve(dataDir, "scim-token");
  return cfg;
}

/** The agent credential, configured or else generated in the data dir; never one an identity provider holds. */
function agentCredential(
  r: Reader,
  dataDir: string,
  idpSecrets: readonly (readonly [string, string | undefined])[],
): Pick<AuthConfig, "agentToken" | "agentTokenFile"> {
  const agentToken = r.secret("PROVISIOND_SCIM_AGENT_TOKEN");
  if (agentToken === undefined) return { agentTokenFile: resolve(dataDir, "agent-token") };
  if (agentToken.length < 16)
    throw new ConfigError(
      "PROVISIOND_SCIM_AGENT_TOKEN",
      "is shorter than 16 characters; use a long random secret",
    );
  for (const [n, v] of idpSecrets) {
    if (v === agentToken)
      throw new ConfigError(
        "PROVISIOND_SCIM_AGENT_TOKEN",
        `equals ${n}: the agent credential must be its own, or an identity provider could move the fence`,
      );
  }
  return { agentToken };
}
