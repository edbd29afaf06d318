/**
 * The System Log event types the agent follows, from Okta's Event Types catalog (../shared/okta). Each names a
 * change whose current state the agent reads and applies; it never replays an event's own payload.
 */
export const USER_EVENTS = [
  // Assignment to the app, unassignment, and the app username changing.
  "application.user_membership.add",
  "application.user_membership.remove",
  "application.user_membership.change_username",
  // The app user's profile changed (directly or through profile mappings).
  "application.user_membership.update",
  "application.user_membership.provision",
  "application.user_membership.deprovision",
  "application.user_membership.restore",
  "user.account.update_profile",
  // Lifecycle: deactivated and suspended users are deactivated in the app.
  "user.lifecycle.deactivate",
  "user.lifecycle.reactivate",
  "user.lifecycle.suspend",
  "user.lifecycle.unsuspend",
] as const;

export const GROUP_EVENTS = [
  // Membership of pushed groups, their names, and the push mappings themselves.
  "group.user_membership.add",
  "group.user_membership.remove",
  "group.profile.update",
  "application.provision.group_push.mapping.created",
  "application.provision.group_push.activate_mapping",
  "application.provision.group_push.deactivate_mapping",
  "application.provision.group_push.removed",
] as const;

export const FOLLOWED_EVENTS: readonly string[] = [...USER_EVENTS, ...GROUP_EVENTS];

/** The System Log filter for the followed types: `eventType eq "a" or eventType eq "b" …`. */
export function logFilter(): string {
  return FOLLOWED_EVENTS.map((t) => `eventType eq "${t}"`).join(" or ");
}

/** Events after which the user may have entered or left the app, and so the pushed groups that contain it. */
export const MEMBERSHIP_EVENTS = new Set<string>([
  "application.user_membership.add",
  "application.user_membership.remove",
  "application.user_membership.provision",
  "application.user_membership.deprovision",
  "application.user_membership.restore",
  "user.lifecycle.deactivate",
  "user.lifecycle.reactivate",
  "user.lifecycle.suspend",
  "user.lifecycle.unsuspend",
]);
