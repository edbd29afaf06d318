/**
 * Applies Okta's current state to the connector with the same request shapes Okta itself sends (see the
 * connector issue): look up, POST to create, PUT the full user to update, PATCH `active` to deactivate, and
 * group push with one PATCH per change. It reads state rather than replaying events, so a replayed or
 * reordered event converges to the same result, and it writes nothing when the connector already agrees.
 */
import { Refused } from "./errors.js";
import { forEachLimit } from "./for-each-limit.js";
import type { ScimClient } from "./scim-client.js";

export interface OktaAppUser {
  id: string;
  credentials?: { userName?: string };
  profile: { email?: string; givenName?: string; familyName?: string };
  _embedded?: { user?: { status?: string } };
}

export interface ScimUser {
  id: string;
  userName: string;
  active?: boolean;
  displayName?: string;
  name?: { givenName?: string; familyName?: string };
  emails?: { value: string }[];
}

const CORE = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const uri = (s: string) => encodeURIComponent(s);

export type UserOutcome = "created" | "updated" | "deactivated" | "unchanged";

export function desiredUser(oktaId: string, au: OktaAppUser, active: boolean) {
  const given = au.profile.givenName ?? "";
  const family = au.profile.familyName ?? "";
  const email = au.profile.email ?? au.credentials?.userName ?? "";
  return {
    schemas: [CORE],
    userName: au.credentials?.userName ?? email,
    name: { givenName: given, familyName: family },
    emails: email ? [{ primary: true, value: email, type: "work" }] : [],
    displayName: `${given} ${family}`.trim(),
    externalId: oktaId,
    active,
  };
}

function same(found: ScimUser, want: ReturnType<typeof desiredUser>): boolean {
  return (
    found.userName === want.userName &&
    (found.active ?? true) === want.active &&
    (found.displayName ?? "") === want.displayName &&
    (found.name?.givenName ?? "") === want.name.givenName &&
    (found.name?.familyName ?? "") === want.name.familyName &&
    (found.emails?.[0]?.value ?? "") === (want.emails[0]?.value ?? "")
  );
}

/** Okta users in these states keep their app account active. */
const ACTIVE_STATES = new Set([
  "ACTIVE",
  "PROVISIONED",
  "RECOVERY",
  "PASSWORD_EXPIRED",
  "LOCKED_OUT",
  undefined,
]);

export async function findUser(scim: ScimClient, oktaId: string): Promise<ScimUser | undefined> {
  const { found, refused } = await findUsers(scim, [oktaId]);
  const why = refused.get(oktaId);
  if (why) throw why;
  return found.get(oktaId);
}

export interface Lookup {
  found: Map<string, ScimUser>;
  /** Users the connector will not look up even alone (their filter is refused): dead letters. */
  refused: Map<string, Refused>;
}

/**
 * Looks many users up (`externalId eq "a" or externalId eq "b" …`), 80 to a request, `parallel` at once. A
 * connector that refuses a long filter (a smaller maxFilterLength, a third-party server's limit) gets halves
 * of it, down to one user a request; a user refused even alone is reported, never retried forever.
 */
export async function findUsers(scim: ScimClient, oktaIds: string[], parallel = 1): Promise<Lookup> {
  const out: Lookup = { found: new Map(), refused: new Map() };
  const chunks: string[][] = [];
  for (let i = 0; i < oktaIds.length; i += 80) chunks.push(oktaIds.slice(i, i + 80));
  const lookUp = async (chunk: string[]): Promise<void> => {
    const filter = chunk.map((id) => `externalId eq ${JSON.stringify(id)}`).join(" or ");
    let r: Awaited<ReturnType<ScimClient["request"]>>;
    try {
      r = await scim.request("GET", `/Users?filter=${uri(filter)}&startIndex=1&count=${chunk.length * 2}`);
    } catch (err) {
      if (!(err instanceof Refused)) throw err;
      if (chunk.length === 1) {
        out.refused.set(chunk[0]!, err);
        return;
      }
      const half = Math.ceil(chunk.length / 2);
      await lookUp(chunk.slice(0, half));
      await lookUp(chunk.slice(half));
      return;
    }
    for (const u of (r.body as { Resources?: (ScimUser & { externalId?: string })[] }).Resources ?? []) {
      if (u.externalId) out.found.set(u.externalId, u);
    }
  };
  await forEachLimit(chunks, parallel, lookUp);
  return out;
}

/** The one request that converges a user, if any: what applyUser sends, and what a bulk carries. */
export interface UserPlan {
  outcome: UserOutcome;
  scimId?: string;
  request?: { method: "POST" | "PUT" | "PATCH"; path: string; body: unknown; key: string };
  /**
   * The user enters or leaves the app (created, or its account turns active or inactive): the pushed groups
   * that contain it must be converged too, since only assigned users are pushed as members.
   */
  membershipMayChange?: boolean;
}

/** Decides how to converge one user; `key` is the Idempotency-Key stem (the newest event about the user). */
export function planUser(
  oktaId: string,
  appUser: OktaAppUser | undefined,
  found: ScimUser | undefined,
  key: string,
): UserPlan {
  const active = appUser !== undefined && ACTIVE_STATES.has(appUser._embedded?.user?.status);
  if (!found) {
    // Every assigned user has an app account; a suspended or deactivated one is created inactive.
    if (!appUser) return { outcome: "unchanged" };
    return {
      outcome: "created",
      membershipMayChange: true,
      request: {
        method: "POST",
        path: "/Users",
        body: desiredUser(oktaId, appUser, active),
        key: `${key}:create`,
      },
    };
  }
  if (!appUser) {
    if (found.active === false) return { outcome: "unchanged", scimId: found.id };
    return {
      outcome: "deactivated",
      scimId: found.id,
      membershipMayChange: true,
      request: {
        method: "PATCH",
        path: `/Users/${found.id}`,
        body: { schemas: [PATCH], Operations: [{ op: "replace", value: { active: false } }] },
        key: `${key}:deactivate`,
      },
    };
  }
  const want = desiredUser(oktaId, appUser, active);
  if (same(found, want)) return { outcome: "unchanged", scimId: found.id };
  return {
    outcome: active ? "updated" : "deactivated",
    scimId: found.id,
    membershipMayChange: (found.active ?? true) !== active,
    request: {
      method: "PUT",
      path: `/Users/${found.id}`,
      body: { ...want, id: found.id, groups: [], meta: { resourceType: "User" } },
      key: `${key}:update`,
    },
  };
}

/** Converges one user with its own request. */
export async function applyUser(
  scim: ScimClient,
  oktaId: string,
  appUser: OktaAppUser | undefined,
  found: ScimUser | undefined,
  key: string,
): Promise<UserPlan> {
  const plan = planUser(oktaId, appUser, found, key);
  const rq = plan.request;
  if (!rq) return plan;
  try {
    const reply = await scim.request(rq.method, rq.path, rq.body, rq.key);
    return { ...plan, scimId: plan.scimId ?? (reply.body as ScimUser | undefined)?.id };
  } catch (err) {
    // Created since the round's lookup (by another client): converge by updating it instead.
    if (!(rq.method === "POST" && err instanceof Refused && err.status === 409)) throw err;
    const now = await findUser(scim, oktaId);
    if (!now) throw err;
    return applyUser(scim, oktaId, appUser, now, key);
  }
}

interface ScimGroup {
  id: string;
  displayName: string;
  members?: { value: string }[];
}

/**
 * Converges one pushed group with one write: create it with its members if missing, or rename it and fix its
 * membership in one PATCH. `key` is the Idempotency-Key stem.
 */
export async function applyGroup(
  scim: ScimClient,
  oktaGroupId: string,
  name: string,
  memberScimIds: string[],
  key: string,
): Promise<"created" | "updated" | "unchanged"> {
  const r = await scim.request(
    "GET",
    `/Groups?filter=${uri(`externalId eq ${JSON.stringify(oktaGroupId)}`)}&startIndex=1&count=2`,
  );
  const group = ((r.body as { Resources?: ScimGroup[] }).Resources ?? [])[0];
  const want = new Set(memberScimIds);
  if (!group) {
    await scim.request(
      "POST",
      "/Groups",
      {
        schemas: ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        displayName: name,
        externalId: oktaGroupId,
        members: [...want].map((value) => ({ value })),
      },
      `${key}:create`,
    );
    return "created";
  }
  const have = new Set((group.members ?? []).map((m) => m.value));
  const ops: unknown[] = [];
  if (group.displayName !== name) ops.push({ op: "replace", value: { id: group.id, displayName: name } });
  for (const id of have) if (!want.has(id)) ops.push({ op: "remove", path: `members[value eq "${id}"]` });
  const add = [...want].filter((id) => !have.has(id)).map((value) => ({ value }));
  if (add.length) ops.push({ op: "add", path: "members", value: add });
  if (ops.length === 0) return "unchanged";
  await scim.request("PATCH", `/Groups/${group.id}`, { schemas: [PATCH], Operations: ops }, `${key}:members`);
  return "updated";
}
