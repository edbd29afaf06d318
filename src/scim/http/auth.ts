/** Authentication for every SCIM route: bearer token, HTTP Basic and Okta's custom-header mode, any of them. */
import { createHash, timingSafeEqual } from "node:crypto";
import type { NextFunction, Request, Response } from "express";
import type { AuthConfig } from "../../config/index.js";
import { ScimError } from "../model/errors.js";

/** Hashing first makes the comparison take the same time whatever the lengths. */
export function safeEqual(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

/** A body an unauthenticated request may have read and dropped, rather than its connection cut. */
const SMALL_BODY = 64 * 1024;

export interface Principal {
  actor: string;
  /** Holds the agent credential: the only caller whose fencing and idempotency headers count. */
  agent: boolean;
}

export function authenticate(
  cfg: AuthConfig,
  bearerTokens: string[],
  agentToken: string,
  req: Request,
): Principal | undefined {
  const authz = req.get("authorization") ?? "";
  const space = authz.indexOf(" ");
  const scheme = space > 0 ? authz.slice(0, space).toLowerCase() : "";
  const cred = space > 0 ? authz.slice(space + 1).trim() : "";
  let ok: Principal | undefined;
  if (scheme === "bearer" && cred) {
    // Every token is compared, so timing does not reveal which one matched.
    const isAgent = safeEqual(cred, agentToken);
    for (const t of bearerTokens) if (safeEqual(cred, t) && !ok) ok = { actor: "bearer", agent: false };
    if (isAgent) ok = { actor: "agent", agent: true };
  }
  if (scheme === "basic" && cfg.basic && cred) {
    const decoded = Buffer.from(cred, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    const user = colon >= 0 ? decoded.slice(0, colon) : decoded;
    const pass = colon >= 0 ? decoded.slice(colon + 1) : "";
    const userOk = safeEqual(user, cfg.basic.user);
    const passOk = safeEqual(pass, cfg.basic.password);
    if (userOk && passOk && !ok) ok = { actor: `basic:${cfg.basic.user}`, agent: false };
  }
  if (cfg.header) {
    const v = req.get(cfg.header.name);
    if (v !== undefined && safeEqual(v, cfg.header.value) && !ok)
      ok = { actor: `header:${cfg.header.name}`, agent: false };
  }
  return ok;
}

export function authMiddleware(
  cfg: AuthConfig,
  bearerTokens: string[],
  agentToken: string,
  onFailure: () => void,
) {
  const challenges = [
    ...(bearerTokens.length ? ['Bearer realm="provisiond"'] : []),
    ...(cfg.basic ? ['Basic realm="provisiond", charset="UTF-8"'] : []),
  ];
  return (req: Request, res: Response, next: NextFunction): void => {
    const p = authenticate(cfg, bearerTokens, agentToken, req);
    if (cfg.disabled && !p) {
      // Even with authentication off, only the agent credential may move the fence.
      res.locals.actor = "anonymous";
      res.locals.agent = false;
      next();
      return;
    }
    if (!p) {
      onFailure();
      // Answer, then hang up: a client without credentials gets no socket to trickle a huge body into. A small
      // body is read and dropped first, so an honest client with a wrong token sees its 401 rather than a reset.
      res.set("Connection", "close");
      const declared = Number(req.get("content-length") ?? Number.NaN);
      if (declared <= SMALL_BODY) req.resume();
      else
        res.on("finish", () => {
          if (!req.complete) req.socket.destroy();
        });
      const headers: Record<string, string> = challenges.length
        ? { "WWW-Authenticate": challenges.join(", ") }
        : {};
      next(new ScimError(401, undefined, "missing or invalid credentials", headers));
      return;
    }
    res.locals.actor = p.actor;
    res.locals.agent = p.agent;
    next();
  };
}
