/** Authentication for every SCIM route: bearer token, HTTP Basic and Okta's custom-header mode, any of them. */
import { createHash, timingSafeEqual } from "node:crypto";
import type { NextFunction, Request, Response } from "express";
import type { AuthConfig } from "../../config/index.js";
import { ScimError } from "../errors.js";

/** Hashing first makes the comparison take the same time whatever the lengths. */
export function safeEqual(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

export interface Principal {
  actor: string;
}

export function authenticate(cfg: AuthConfig, bearerTokens: string[], req: Request): Principal | undefined {
  const authz = req.get("authorization") ?? "";
  const space = authz.indexOf(" ");
  const scheme = space > 0 ? authz.slice(0, space).toLowerCase() : "";
  const cred = space > 0 ? authz.slice(space + 1).trim() : "";
  let ok: Principal | undefined;
  if (scheme === "bearer" && cred) {
    // Every configured token is compared, so timing does not reveal which one matched.
    for (const t of bearerTokens) if (safeEqual(cred, t) && !ok) ok = { actor: "bearer" };
  }
  if (scheme === "basic" && cfg.basic && cred) {
    const decoded = Buffer.from(cred, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    const user = colon >= 0 ? decoded.slice(0, colon) : decoded;
    const pass = colon >= 0 ? decoded.slice(colon + 1) : "";
    const userOk = safeEqual(user, cfg.basic.user);
    const passOk = safeEqual(pass, cfg.basic.password);
    if (userOk && passOk && !ok) ok = { actor: `basic:${cfg.basic.user}` };
  }
  if (cfg.header) {
    const v = req.get(cfg.header.name);
    if (v !== undefined && safeEqual(v, cfg.header.value) && !ok) ok = { actor: `header:${cfg.header.name}` };
  }
  return ok;
}

export function authMiddleware(cfg: AuthConfig, bearerTokens: string[], onFailure: () => void) {
  const challenges = [
    ...(bearerTokens.length ? ['Bearer realm="provisiond"'] : []),
    ...(cfg.basic ? ['Basic realm="provisiond", charset="UTF-8"'] : []),
  ];
  return (req: Request, res: Response, next: NextFunction): void => {
    if (cfg.disabled) {
      res.locals.actor = "anonymous";
      next();
      return;
    }
    const p = authenticate(cfg, bearerTokens, req);
    if (!p) {
      onFailure();
      const headers: Record<string, string> = challenges.length
        ? { "WWW-Authenticate": challenges.join(", ") }
        : {};
      next(new ScimError(401, undefined, "missing or invalid credentials", headers));
      return;
    }
    res.locals.actor = p.actor;
    next();
  };
}
