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

/** A success whose body cannot be read: it may have applied, so the round is retried (replays are harmless). */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}
