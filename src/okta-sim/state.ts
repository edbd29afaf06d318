/**
 * The simulated Okta org: users, one app's assignments, groups, group push mappings, and the System Log events
 * every change records (event types from Okta's catalog, ../shared/okta). It can also say what the app's
 * users and groups should now be: the ground truth tests compare the app store with.
 */
import { randomBytes, randomUUID } from "node:crypto";

export type UserStatus = "ACTIVE" | "SUSPENDED" | "DEPROVISIONED";

/** The lifecycle operations the simulator runs, and the status each leaves the user in. */
const LIFECYCLE_STATUS = {
  deactivate: "DEPROVISIONED",
  reactivate: "ACTIVE",
  suspend: "SUSPENDED",
  unsuspend: "ACTIVE",
} as const satisfies Record<string, UserStatus>;
export type LifecycleAction = keyof typeof LIFECYCLE_STATUS;
export const LIFECYCLE_ACTIONS = Object.keys(LIFECYCLE_STATUS) as LifecycleAction[];

export interface OktaUser {
  id: string;
  status: UserStatus;
  created: string;
  lastUpdated: string;
  profile: { login: string; email: string; firstName: string; lastName: string };
}

export interface AppUser {
  id: string;
  status: "PROVISIONED";
  scope: "USER";
  created: string;
  lastUpdated: string;
  credentials: { userName: string };
  profile: { email: string; givenName: string; familyName: string };
}

export interface OktaGroup {
  id: string;
  profile: { name: string; description: string };
  members: Set<string>;
}

export interface LogEvent {
  uuid: string;
  published: string;
  eventType: string;
  version: "0";
  severity: "INFO";
  displayMessage: string;
  legacyEventType?: string;
  actor: { id: string; type: "User"; alternateId: string; displayName: string };
  outcome: { result: "SUCCESS" };
  target: { id: string; type: string; alternateId: string; displayName: string }[];
  /** Position in the log; the `after` cursor encodes it. */
  seq: number;
}

/** Okta ids: a three-character type prefix and 17 random characters. */
function oktaId(prefix: string): string {
  return prefix + randomBytes(16).toString("base64url").replace(/[-_]/g, "x").slice(0, 17);
}

const ADMIN = {
  id: "00uadmin0000000000",
  type: "User" as const,
  alternateId: "admin@example.com",
  displayName: "Sim Admin",
};

export class OktaOrg {
  readonly users = new Map<string, OktaUser>();
  readonly appUsers = new Map<string, AppUser>();
  /** Users that were ever assigned: the app keeps them (deactivated) after unassignment. */
  readonly everAssigned = new Set<string>();
  /**
   * What an unassigned user's app account last received: Okta pushes nothing to an app a user is no longer
   * assigned to, so later profile changes never reach it.
   */
  private readonly lastPushed = new Map<
    string,
    { login: string; firstName: string; lastName: string; email: string }
  >();
  readonly groups = new Map<string, OktaGroup>();
  readonly pushed = new Map<string, { id: string; sourceGroupId: string; status: "ACTIVE" | "INACTIVE" }>();
  readonly events: LogEvent[] = [];
  private lastPublished = 0;
  /** App-user ids in code-unit order, kept until the next assignment change: paging reads it per page. */
  private appUserOrder: string[] | undefined;

  sortedAppUserIds(): string[] {
    this.appUserOrder ??= [...this.appUsers.keys()].sort();
    return this.appUserOrder;
  }

  constructor(
    readonly appId: string,
    readonly appLabel = "On-prem app",
  ) {}

  private now(): string {
    return new Date().toISOString();
  }

  private record(eventType: string, displayMessage: string, targets: LogEvent["target"]): LogEvent {
    // Published times are strictly increasing so ASCENDING order and the `since` bound are well defined.
    const t = Math.max(Date.now(), this.lastPublished + 1);
    this.lastPublished = t;
    const e: LogEvent = {
      uuid: randomUUID(),
      published: new Date(t).toISOString(),
      eventType,
      version: "0",
      severity: "INFO",
      displayMessage,
      actor: ADMIN,
      outcome: { result: "SUCCESS" },
      target: targets,
      seq: this.events.length,
    };
    this.events.push(e);
    return e;
  }

  private userTarget(u: OktaUser) {
    return {
      id: u.id,
      type: "User",
      alternateId: u.profile.login,
      displayName: `${u.profile.firstName} ${u.profile.lastName}`,
    };
  }

  private appTarget() {
    return { id: this.appId, type: "AppInstance", alternateId: this.appLabel, displayName: this.appLabel };
  }

  private user(id: string): OktaUser {
    const u = this.users.get(id);
    if (!u) throw new SimError(404, `no user ${id}`);
    return u;
  }

  createUser(p: { login: string; firstName?: string; lastName?: string; email?: string }): OktaUser {
    const now = this.now();
    const u: OktaUser = {
      id: oktaId("00u"),
      status: "ACTIVE",
      created: now,
      lastUpdated: now,
      profile: {
        login: p.login,
        email: p.email ?? p.login,
        firstName: p.firstName ?? "First",
        lastName: p.lastName ?? "Last",
      },
    };
    this.users.set(u.id, u);
    this.record("user.lifecycle.create", "Create okta user", [this.userTarget(u)]);
    return u;
  }

  private appProfile(u: OktaUser): AppUser["profile"] {
    return { email: u.profile.email, givenName: u.profile.firstName, familyName: u.profile.lastName };
  }

  assign(userId: string): AppUser {
    const u = this.user(userId);
    const now = this.now();
    const au: AppUser = {
      id: u.id,
      status: "PROVISIONED",
      scope: "USER",
      created: now,
      lastUpdated: now,
      credentials: { userName: u.profile.login },
      profile: this.appProfile(u),
    };
    if (!this.appUsers.has(u.id)) this.appUserOrder = undefined;
    this.appUsers.set(u.id, au);
    this.everAssigned.add(u.id);
    this.record("application.user_membership.add", "Add user to application membership", [
      this.userTarget(u),
      this.appTarget(),
    ]);
    return au;
  }

  unassign(userId: string): void {
    const u = this.user(userId);
    if (!this.appUsers.delete(userId)) throw new SimError(404, `user ${userId} is not assigned`);
    this.lastPushed.set(userId, { ...u.profile });
    this.appUserOrder = undefined;
    this.record("application.user_membership.remove", "Remove user from application membership", [
      this.userTarget(u),
      this.appTarget(),
    ]);
  }

  updateProfile(userId: string, p: Partial<OktaUser["profile"]>): void {
    const u = this.user(userId);
    const loginChanged = p.login !== undefined && p.login !== u.profile.login;
    u.profile = { ...u.profile, ...p };
    u.lastUpdated = this.now();
    this.record("user.account.update_profile", "Update user profile for Okta", [this.userTarget(u)]);
    const au = this.appUsers.get(userId);
    if (au) {
      au.profile = this.appProfile(u);
      au.lastUpdated = u.lastUpdated;
      if (loginChanged) {
        au.credentials.userName = u.profile.login;
        this.record("application.user_membership.change_username", "Change users application username", [
          this.userTarget(u),
          this.appTarget(),
        ]);
      } else {
        this.record("application.user_membership.update", "Update user's application membership", [
          this.userTarget(u),
          this.appTarget(),
        ]);
      }
    }
  }

  lifecycle(userId: string, action: LifecycleAction): void {
    // An action it does not know changes nothing (it once reactivated the user).
    const status: UserStatus | undefined = Object.hasOwn(LIFECYCLE_STATUS, action)
      ? LIFECYCLE_STATUS[action]
      : undefined;
    if (!status) throw new SimError(400, `unknown lifecycle action ${JSON.stringify(action)}`);
    const u = this.user(userId);
    u.status = status;
    u.lastUpdated = this.now();
    this.record(`user.lifecycle.${action}`, `${action} Okta user`, [this.userTarget(u)]);
  }

  createGroup(name: string): OktaGroup {
    const g: OktaGroup = { id: oktaId("00g"), profile: { name, description: "" }, members: new Set() };
    this.groups.set(g.id, g);
    this.record("group.lifecycle.create", "Create okta group", [
      { id: g.id, type: "UserGroup", alternateId: name, displayName: name },
    ]);
    return g;
  }

  private group(id: string): OktaGroup {
    const g = this.groups.get(id);
    if (!g) throw new SimError(404, `no group ${id}`);
    return g;
  }

  private groupTarget(g: OktaGroup) {
    return { id: g.id, type: "UserGroup", alternateId: g.profile.name, displayName: g.profile.name };
  }

  renameGroup(id: string, name: string): void {
    const g = this.group(id);
    g.profile.name = name;
    this.record("group.profile.update", "Update group profile", [this.groupTarget(g)]);
  }

  membership(groupId: string, userId: string, add: boolean): void {
    const g = this.group(groupId);
    const u = this.user(userId);
    if (add) g.members.add(userId);
    else g.members.delete(userId);
    this.record(
      add ? "group.user_membership.add" : "group.user_membership.remove",
      add ? "Add user to group membership" : "Remove user from group membership",
      [this.userTarget(u), this.groupTarget(g)],
    );
  }

  push(groupId: string): void {
    const g = this.group(groupId);
    const m = { id: oktaId("gPm"), sourceGroupId: g.id, status: "ACTIVE" as const };
    this.pushed.set(g.id, m);
    this.record("application.provision.group_push.mapping.created", "A new mapping has been created.", [
      this.groupTarget(g),
      this.appTarget(),
    ]);
  }

  unpush(groupId: string): void {
    const g = this.group(groupId);
    this.pushed.delete(groupId);
    this.record("application.provision.group_push.removed", "A group was removed from an app.", [
      this.groupTarget(g),
      this.appTarget(),
    ]);
  }

  /**
   * What the app should hold now: every user ever assigned, inactive once unassigned or not active in Okta,
   * with the profile it had when it was last assigned.
   */
  truth() {
    const users = [...this.everAssigned].map((id) => {
      const u = this.users.get(id)!;
      const au = this.appUsers.get(id);
      const p = au ? u.profile : (this.lastPushed.get(id) ?? u.profile);
      return {
        externalId: id,
        assigned: au !== undefined,
        userName: p.login,
        active: au !== undefined && u.status === "ACTIVE",
        givenName: p.firstName,
        familyName: p.lastName,
        email: p.email,
      };
    });
    const groups = [...this.pushed.keys()].map((gid) => {
      const g = this.groups.get(gid)!;
      return {
        externalId: gid,
        displayName: g.profile.name,
        members: [...g.members].filter((m) => this.appUsers.has(m)).sort(),
      };
    });
    return { users: users.sort((a, b) => a.externalId.localeCompare(b.externalId)), groups };
  }
}

export class SimError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
