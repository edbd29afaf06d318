/**
 * A connector's contents compared with the simulator's ground truth (GET /sim/truth): the check behind the
 * tests' and the local demo's verdicts.
 */

export interface Truth {
  users: {
    externalId: string;
    assigned: boolean;
    userName: string;
    active: boolean;
    givenName: string;
    familyName: string;
    email: string;
  }[];
  groups: { externalId: string; displayName: string; members: string[] }[];
}

// biome-ignore lint/suspicious/noExplicitAny: SCIM JSON read by the comparison
export type Get = (path: string) => Promise<{ status: number; body: any }>;

interface ScimUserJson {
  id: string;
  externalId?: string;
  userName: string;
  active?: boolean;
  name?: { givenName?: string; familyName?: string };
  emails?: { value: string }[];
}

/** Differences between the connector (read through `get`) and the simulator's ground truth; empty when equal. */
export async function diffWithTruth(get: Get, truth: Truth): Promise<string[]> {
  const diffs: string[] = [];
  const all = await listAll<ScimUserJson>(get, "/Users");
  const byExt = new Map(all.map((u) => [u.externalId, u]));
  for (const t of truth.users) {
    const u = byExt.get(t.externalId);
    if (!u) {
      if (t.active) diffs.push(`missing user ${t.userName}`);
      continue;
    }
    // An unassigned user's account is deactivated; the profile it keeps is what it had when the agent last
    // saw it assigned, and a change Okta logged in the same round as the unassignment may not reach it
    // (README, "Guarantees and their limits"). Only the deactivation is compared.
    if (!t.assigned) {
      if (u.active !== false) diffs.push(`user ${t.externalId}: unassigned but still active`);
      continue;
    }
    const got = {
      userName: u.userName,
      active: u.active ?? true,
      givenName: u.name?.givenName,
      familyName: u.name?.familyName,
      email: u.emails?.[0]?.value,
    };
    const want = {
      userName: t.userName,
      active: t.active,
      givenName: t.givenName,
      familyName: t.familyName,
      email: t.email,
    };
    if (JSON.stringify(got) !== JSON.stringify(want))
      diffs.push(`user ${t.externalId}: have ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
  const known = new Set(truth.users.map((u) => u.externalId));
  for (const u of all) if (!known.has(u.externalId ?? "")) diffs.push(`unexpected user ${u.userName}`);
  const idToExt = new Map(all.map((u) => [u.id, u.externalId]));
  const groups = await listAll<{ externalId?: string; displayName: string; members?: { value: string }[] }>(
    get,
    "/Groups",
  );
  for (const t of truth.groups) {
    const g = groups.find((x) => x.externalId === t.externalId);
    if (!g) {
      diffs.push(`missing group ${t.displayName}`);
      continue;
    }
    const members = (g.members ?? []).map((m) => idToExt.get(m.value)).sort();
    if (g.displayName !== t.displayName || JSON.stringify(members) !== JSON.stringify(t.members)) {
      diffs.push(
        `group ${t.displayName}: have ${g.displayName} ${JSON.stringify(members)}, want ${JSON.stringify(t.members)}`,
      );
    }
  }
  return diffs;
}

/**
 * Every resource of a SCIM list, page by page until totalResults: a server may answer fewer than `count` per
 * page (RFC 7644 §3.4.2.4), so a short page is no sign of the end.
 */
async function listAll<T>(get: Get, path: string): Promise<T[]> {
  const out: T[] = [];
  for (;;) {
    const page = await get(`${path}?startIndex=${out.length + 1}&count=1000`);
    if (page.status !== 200)
      throw new Error(`GET ${path} answered ${page.status}: ${JSON.stringify(page.body)}`);
    const items = (page.body.Resources ?? []) as T[];
    out.push(...items);
    // No totalResults (not SCIM): one page is all that can be trusted.
    if (items.length === 0 || !(out.length < Number(page.body.totalResults))) return out;
  }
}
