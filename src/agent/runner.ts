/**
 * Runs one agent per term: when this node is elected it starts an agent for that term (src/cluster/
 * leadership.ts), and the agent stops the moment the term ends. Terms run one after another, so a new agent
 * starts only when the previous one has nothing in flight. Standalone nodes (no etcd) are always primary.
 *
 * `runTerm` is the one loop to read; each branch says what it decided.
 */

import { setMaxListeners } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { ExponentialBackoff, halfJitterGenerator } from "cockatiel";
import type { Logger } from "pino";
import type { Election } from "../cluster/election.js";
import { Leadership, TermEnded } from "../cluster/leadership.js";
import type { Metrics } from "../observability/metrics.js";
import type { Agent } from "./agent.js";
import { Blocked, Fenced, ProtocolError, Refused, Stopped } from "./errors.js";
import { OktaError } from "./okta-client.js";

/**
 * Between failed rounds: doubling from 200 ms to 10 s, each wait jittered within its upper half (cockatiel's
 * half jitter), so it never drops below the previous step's floor and nodes do not retry in lockstep.
 */
const ROUND_RETRY = new ExponentialBackoff({
  initialDelay: 200,
  maxDelay: 10_000,
  generator: halfJitterGenerator,
});

/** What an agent for one term is made of; `close` releases its clients. */
export type AgentFactory = (
  lead: Leadership,
  signals: { halt: AbortSignal; cancel: AbortSignal },
) => { agent: Agent; close: () => Promise<void> };

export interface AgentRunnerOptions {
  make: AgentFactory;
  election: Election | undefined;
  /** How long a stopping node lets the agent's requests in flight finish before cutting them off. */
  drainMs: number;
  /**
   * How long a primary that cannot use its term (a fence ahead of etcd, an agent that failed) waits before it
   * steps down, so that a lone candidate does not spin through elections.
   */
  stuckRetryMs: number;
  logger: Logger;
  metrics: Metrics;
}

/** Why the agent is not making progress, for /status. */
export interface AgentTrouble {
  since: string;
  at: string;
  reason: string;
  message: string;
  failures: number;
}

/** The store's fence is ahead of anything etcd can issue: no term can write until an operator acts. */
export interface FenceAhead {
  since: string;
  storedToken: number;
  etcdRevision: number;
  fix: string;
}

/** The last time the store refused this node's term: a newer primary exists, or someone moved the fence. */
export interface Deposition {
  at: string;
  term: number | undefined;
  storedToken: number | undefined;
}

const FENCE_AHEAD_FIX =
  "the store's fencing token is above etcd's revision (etcd restored from a snapshot?): see README, 'A fence ahead of etcd'";

function reasonOf(err: unknown): string {
  if (err instanceof OktaError) return `okta-${err.status}`;
  if (err instanceof Refused || err instanceof Blocked) return `scim-${err.status}`;
  if (err instanceof ProtocolError) return "scim-protocol";
  return "other";
}

export class AgentRunner {
  private agent: Agent | undefined;
  /** Terms run in order: each waits for the one before it to have nothing in flight. */
  private loop: Promise<void> = Promise.resolve();
  private readonly halt = new AbortController();
  private readonly cut = new AbortController();
  private _trouble: AgentTrouble | undefined;
  private _fenceAhead: FenceAhead | undefined;
  private _deposed: Deposition | undefined;

  constructor(private readonly opts: AgentRunnerOptions) {
    opts.metrics.eventLagSource = () => this.agent?.lag.seconds() ?? null;
  }

  get current(): Agent | undefined {
    return this.agent;
  }
  get trouble(): AgentTrouble | undefined {
    return this._trouble;
  }
  get fenceAhead(): FenceAhead | undefined {
    return this._fenceAhead;
  }
  get lastDeposed(): Deposition | undefined {
    return this._deposed;
  }

  start(): void {
    const election = this.opts.election;
    if (!election) {
      this.serve(Leadership.standalone());
      return;
    }
    election.on("elected", (lead: Leadership) => this.serve(lead));
    if (election.current) this.serve(election.current);
  }

  private serve(lead: Leadership): void {
    // A term that fails in a way runTerm does not expect must not stop every later term from running.
    this.loop = this.loop
      .then(() => this.runTerm(lead))
      .catch(async (err) => {
        // Never primary doing nothing: give the term to someone who can use it. After a pause, so a failure
        // that repeats on a lone candidate is not a tight loop of elections.
        this.opts.logger.error(
          { err, term: lead.term },
          "the agent of a term ended unexpectedly; stepping down",
        );
        await sleep(this.opts.stuckRetryMs, undefined, { signal: this.halt.signal }).catch(() => undefined);
        this.opts.election?.stepDown(lead, "agent-failed");
      });
  }

  private async runTerm(lead: Leadership): Promise<void> {
    if (this.halt.signal.aborted || !lead.isCurrent()) return; // decided: that term is already over
    const cancel = AbortSignal.any([lead.signal, this.cut.signal]);
    // Every request in flight and every back-off holds one listener on these signals, up to
    // PROVISIOND_AGENT_CONCURRENCY (256) at once: Node's leak warning at 10 would be noise, not a leak.
    setMaxListeners(0, cancel, this.halt.signal);
    const { agent, close } = this.opts.make(lead, { halt: this.halt.signal, cancel });
    this.agent = agent;
    const stop = AbortSignal.any([lead.signal, this.halt.signal]);
    let delay = ROUND_RETRY.next();
    try {
      for (;;) {
        try {
          await agent.run();
          return; // decided: the term ended or the node is stopping, and the agent has let go
        } catch (err) {
          if (err instanceof Stopped || err instanceof TermEnded || stop.aborted) return; // decided: as above
          if (err instanceof Fenced) {
            await this.deposed(lead, err, stop); // decided: a newer term exists; give this one up
            return;
          }
          // Decided: retry from the cursor after a back-off, and say so where an operator looks. The back-off
          // starts over once a round has gone through since the last failure.
          if (this._trouble === undefined) delay = ROUND_RETRY.next();
          this.failed(err);
          await sleep(delay.duration, undefined, { signal: stop }).catch(() => undefined);
          delay = delay.next(undefined);
        }
      }
    } finally {
      this.agent = undefined;
      await close();
    }
  }

  /** The store refused this term's token. Step down and campaign again, unless no term could ever pass. */
  private async deposed(lead: Leadership, err: Fenced, stop: AbortSignal): Promise<void> {
    this._deposed = { at: new Date().toISOString(), term: lead.term, storedToken: err.storedToken };
    const election = this.opts.election;
    const revision = await election?.etcdRevision().catch(() => undefined);
    if (err.storedToken !== undefined && revision !== undefined && err.storedToken > revision) {
      // No campaign key can ever get a create revision this high: re-campaigning at once would spin.
      this._fenceAhead ??= {
        since: new Date().toISOString(),
        storedToken: err.storedToken,
        etcdRevision: revision,
        fix: FENCE_AHEAD_FIX,
      };
      this.opts.metrics.fenceAhead.set(1);
      this.opts.logger.error(
        { term: lead.term, storedToken: err.storedToken, etcdRevision: revision },
        `agent blocked: ${FENCE_AHEAD_FIX}`,
      );
      await sleep(this.opts.stuckRetryMs, undefined, { signal: stop }).catch(() => undefined);
    } else {
      this.opts.logger.warn(
        { term: lead.term, storedToken: err.storedToken },
        "deposed: the store has a newer term",
      );
    }
    election?.stepDown(lead, "fenced");
  }

  private failed(err: unknown): void {
    const now = new Date().toISOString();
    const reason = reasonOf(err);
    this._trouble = {
      since: this._trouble?.since ?? now,
      at: now,
      reason,
      message: (err as Error).message,
      failures: (this._trouble?.failures ?? 0) + 1,
    };
    this.opts.metrics.agentRoundFailures.inc({ reason });
    this.opts.logger.error(
      { err, reason, failures: this._trouble.failures },
      "agent round failed; retrying from the cursor",
    );
  }

  /** A round went through: whatever stood in the way has cleared. */
  roundSucceeded(): void {
    if (this._trouble) this.opts.logger.info({ failures: this._trouble.failures }, "agent recovered");
    this._trouble = undefined;
    if (this._fenceAhead) this.opts.metrics.fenceAhead.set(0);
    this._fenceAhead = undefined;
  }

  /**
   * Graceful stop: take no more work, let the requests in flight finish (for up to drainMs), then cut off
   * what is left. Resolves when the agent has nothing in flight, so the node can resign safely.
   */
  async stop(): Promise<void> {
    this.halt.abort(new Stopped("node stopping"));
    const drained = await Promise.race([
      this.loop.then(() => true),
      sleep(this.opts.drainMs, undefined, { ref: false }).then(() => false),
    ]);
    if (!drained) {
      this.opts.logger.warn(
        { drainMs: this.opts.drainMs },
        "cutting off the agent's requests still in flight",
      );
      this.cut.abort(new Stopped("node stopping"));
      await this.loop;
    }
  }
}
