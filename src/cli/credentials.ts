/** The connector's credentials: configured ones, and the bearer token and agent credential generated on first start. */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Logger } from "pino";
import type { AuthConfig } from "../config/index.js";

/** Reads a generated token; with `create`, makes it (mode 0600) when the file does not exist yet. */
export function readToken(file: string, logger: Logger, create: boolean): string | undefined {
  if (existsSync(file)) {
    const mode = statSync(file).mode & 0o077;
    if (mode !== 0) logger.warn({ file }, "a token file is readable by group or others; chmod 600 it");
    const t = readFileSync(file, "utf8").trim();
    if (t.length < 16)
      throw new Error(`the token in ${file} is shorter than 16 characters; delete the file to get a new one`);
    return t;
  }
  if (!create) return undefined;
  mkdirSync(dirname(file), { recursive: true });
  const token = randomBytes(32).toString("base64url");
  writeFileSync(file, `${token}\n`, { mode: 0o600, flag: "wx" });
  chmodSync(file, 0o600);
  return token;
}

export interface Credentials {
  /** The identity providers' bearer tokens, a generated one included. */
  bearerTokens: string[];
  /** The only credential whose fencing and idempotency headers the connector honours. */
  agentToken: string;
}

/** What a start says of a token file: that it generated the token, or that it uses the one there; never the token. */
export function tokenFileNote(file: string, generated: boolean): string {
  return generated ? `generated a token into ${file}` : `using the token in ${file}`;
}

/** A token file's token, made now if there is none yet; `generated` says which. */
function tokenFromFile(file: string, logger: Logger): { token: string; generated: boolean } {
  const generated = !existsSync(file);
  return { token: readToken(file, logger, true)!, generated };
}

export function credentials(auth: AuthConfig, logger: Logger): Credentials {
  let agentToken = auth.agentToken;
  if (agentToken === undefined) {
    const t = tokenFromFile(auth.agentTokenFile!, logger);
    agentToken = t.token;
    logger.info(
      { tokenFile: auth.agentTokenFile },
      `no agent credential configured (PROVISIOND_SCIM_AGENT_TOKEN): ${tokenFileNote(auth.agentTokenFile!, t.generated)}`,
    );
  }
  const bearerTokens = [...auth.bearerTokens];
  if (auth.generatedTokenFile) {
    const t = tokenFromFile(auth.generatedTokenFile, logger);
    bearerTokens.push(t.token);
    logger.info(
      { tokenFile: auth.generatedTokenFile },
      `no SCIM credential configured (PROVISIOND_SCIM_TOKEN): ${tokenFileNote(auth.generatedTokenFile, t.generated)}; give it to the identity provider`,
    );
  }
  if (bearerTokens.includes(agentToken))
    throw new Error(
      "the agent credential equals a SCIM bearer token (a generated one?): delete the data dir's agent-token, or set PROVISIOND_SCIM_AGENT_TOKEN to a secret of its own",
    );
  if (auth.disabled) {
    logger.warn(
      "SCIM AUTHENTICATION IS OFF (PROVISIOND_SCIM_AUTH=none): anyone who reaches this port can create, change and delete users",
    );
  }
  return { bearerTokens, agentToken };
}
