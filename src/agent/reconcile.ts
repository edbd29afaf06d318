/**
 * Initial and repair sync: list the Okta app's users and pushed groups, compare them with the connector through
 * SCIM GETs, and apply the difference with the same requests the agent sends. A fresh or repaired app store
 * converges without replaying history. Runs once (`provisiond reconcile`) or periodically on the primary.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { applyGroup, applyUser, type OktaAppUser, type ScimUser } from "./apply.js";
import { Refused, Stopped } from "./errors.js";
import { forEachLimit } from "./for-each-limit.js";
import { OktaClient, type OktaClientOptions, type OktaPage } from "./okta-client.js";
import { ScimClient, type ScimClientOptions, type ScimReply } from "./scim-client.js";

export interface ReconcileResult {
  users: Record<string, number>;
  groups: Record<string, number>;
  refused: { subject: string; reason: string }[];
}

/**
 * Every user of the connector, page by page until totalResults: a page may hold fewer than asked for (the
 * connector's PROVISIOND_SCIM_MAX_RESULTS, or its pages trimmed by size; RFC 7644 §3.4.2.4), so a short page is
 * no sign of the end. (src/okta-sim/truth-diff.ts pages the same way; the layers keep them apart.)
 */
async function scimUsers(scim: ScimClient): Promise<(ScimUser & { externalId?: string })[]> {
  const out: (ScimUser & { externalId?: string })[] = [];
  for (;;) {
    const r = await scim.request("GET", `/Users?startIndex=${out.length + 1}&count=1000`);
    const body = r.body as { Resources?: (ScimUser & { externalId?: string })[]; totalResults?: number };
    const page = body.Resources ?? [];
    out.push(...page);
    // No totalResults (not SCIM): one page is all that can be trusted.
    if (page.length === 0 || !(out.length < Number(body.totalResults))) return out;
  }
}

export async function reconcile(opts: {
  okta: OktaClient;
  scim: ScimClient;
  appId: string;
  concurrency: number;
  logger: Logger;
}): Promise<ReconcileResult> {
  const run = `reconcile-${randomUUID()}`;
  const result: ReconcileResult = { users: {}, groups: {}, refused: [] };
  const count = (bag: Record<string, number>, k: string) => {
    bag[k] = (bag[k] ?? 0) + 1;
  };
  const appUsers = new Map(
    (await opts.okta.getAll<OktaAppUser>(`/api/v1/apps/${opts.appId}/users?limit=500&expand=user`)).map(
      (u) => [u.id, u],
    ),
  );
  const existing = new Map<string, ScimUser>();
  for (const u of await scimUsers(opts.scim)) if (u.externalId) existing.set(u.externalId, u);
  // Every assigned user, and every user the app has that Okta no longer assigns (to deactivate).
  const subjects = [...new Set([...appUsers.keys(), ...existing.keys()])];
  const scimIds = new Map<string, string>();
  await forEachLimit(subjects, opts.concurrency, async (id) => {
    try {
      const r = await applyUser(opts.scim, id, appUsers.get(id), existing.get(id), `${run}:${id}`);
      if (r.scimId) scimIds.set(id, r.scimId);
      count(result.users, r.outcome);
    } catch (err) {
      if (!(err instanceof Refused)) throw err;
      result.refused.push({ subject: id, reason: err.message });
    }
  });
  for (const groupId of await opts.okta.pushedGroups(opts.appId)) {
    const { name, memberIds } = await opts.okta.groupWithMembers(groupId);
    const ids = memberIds
      .filter((id) => appUsers.has(id))
      .map((id) => scimIds.get(id))
      .filter((x): x is string => x !== undefined);
    try {
      count(result.groups, await applyGroup(opts.scim, groupId, name, ids, `${run}:${groupId}`));
    } catch (err) {
      if (!(err instanceof Refused)) throw err;
      result.refused.push({ subject: groupId, reason: err.message });
    }
  }
  opts.logger.info({ ...result, refused: result.refused.length }, "reconciled the app with Okta");
  return result;
}

/** How long a run by hand waits for one answer (PROVISIOND_RECONCILE_TIMEOUT_MS, `--timeout`). */
export const RECONCILE_TIMEOUT_MS = 60_000;

export type Target = "okta" | "scim";

/**
 * A run by hand gives up once one request, with its retries, has gone unanswered for `ms`: Okta or the
 * connector unreachable, or answering only "later" (5xx, 429), which the clients would retry forever. Its
 * signal, the clients' `cancel`, ends their attempts and waits. A long reconcile whose requests are answered
 * is never cut off.
 */
export class Patience {
  private readonly controller = new AbortController();
  readonly signal = this.controller.signal;
  /** The target that went unanswered, once the run has given up. */
  expired: Target | undefined;

  constructor(readonly ms: number) {}

  async track<T>(target: Target, request: () => Promise<T>): Promise<T> {
    const timer = setTimeout(() => {
      if (this.expired) return;
      this.expired = target;
      this.controller.abort(new Stopped(`no answer from ${target} within ${this.ms} ms`));
    }, this.ms);
    try {
      return await request();
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A SCIM client whose every request (bulk and fence included) `patience` times. */
export class PatientScimClient extends ScimClient {
  constructor(
    opts: ScimClientOptions,
    private readonly patience: Patience,
  ) {
    super({ ...opts, cancel: patience.signal });
  }

  override request(...args: Parameters<ScimClient["request"]>): Promise<ScimReply> {
    return this.patience.track("scim", () => super.request(...args));
  }
}

/** An Okta client whose every call (each page of a list) `patience` times. */
export class PatientOktaClient extends OktaClient {
  constructor(
    opts: OktaClientOptions,
    private readonly patience: Patience,
  ) {
    super({ ...opts, cancel: patience.signal });
  }

  override get<T>(pathOrUrl: string): Promise<OktaPage<T>> {
    return this.patience.track("okta", () => super.get<T>(pathOrUrl));
  }
}
