/** How an agent's request can end other than with an answer; the agent decides per kind (see agent.ts). */

/** The term is over, or the agent stopped: nothing more goes out. Not a failure. */
export class Stopped extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "Stopped";
  }
}

/** The connector refused this term's fencing token: the store has seen a newer term. */
export class Fenced extends Error {
  constructor(
    readonly term: number | undefined,
    /** The token the store holds, from the X-Provisiond-Fencing header. */
    readonly storedToken: number | undefined,
    detail: string,
  ) {
    super(detail);
    this.name = "Fenced";
  }
}

/** A request the connector refused for good (400, 404 on a write, 409 uniqueness, 422): a dead letter. */
export class Refused extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`${status}: ${detail}`);
    this.name = "Refused";
  }
}

/**
 * The connector refuses the agent itself, whatever the request is about: a wrong or rotated credential (401,
 * 403), a proxy asking for its own (407), or a route that is not there (405, or a 404 that is no SCIM error).
 * The round fails and the node shows it in /status; dead-lettering every event instead would skip them all.
 */
export class Blocked extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`the connector refuses the agent (${status}): ${detail}`);
    this.name = "Blocked";
  }
}

/** A success whose body cannot be read: it may have applied, so the round is retried (replays are harmless). */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}
