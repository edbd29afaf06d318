/**
 * Starts the agent when this node becomes primary and stops it the moment it is not, so only the primary
 * processes events. Standalone nodes (no etcd) are always primary.
 */
import type { Logger } from "pino";
import type { Election } from "../cluster/election.js";
import type { Metrics } from "../observability/metrics.js";
import type { Agent } from "./agent.js";
import { Deposed } from "./scim-client.js";

export class AgentRunner {
  private agent: Agent | undefined;
  private loop: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly make: (hooks: { onFirstApplied: () => void }) => Agent,
    private readonly election: Election | undefined,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {}

  isPrimary(): boolean {
    return !this.stopped && (this.election ? this.election.isPrimary() : true);
  }

  get current(): Agent | undefined {
    return this.agent;
  }

  start(): void {
    if (!this.election) {
      this.begin(undefined);
      return;
    }
    this.election.on("elected", ({ previousGoneAt }: { previousGoneAt?: number }) =>
      this.begin(previousGoneAt),
    );
    this.election.on("demoted", () => this.halt());
    if (this.election.isPrimary()) this.begin(undefined);
  }

  private begin(previousGoneAt: number | undefined): void {
    if (this.stopped || this.agent) return;
    const agent = this.make({
      onFirstApplied: () => {
        if (previousGoneAt === undefined) return;
        const seconds = (Date.now() - previousGoneAt) / 1000;
        this.metrics.failoverDuration.observe(seconds);
        const f = this.election?.failovers[0];
        if (f) Object.assign(f, { firstEventAfterMs: Math.round(seconds * 1000) });
        this.logger.info({ failoverSeconds: seconds }, "first event processed after failover");
      },
    });
    this.agent = agent;
    this.loop = (async () => {
      let backoff = 200;
      while (this.agent === agent && this.isPrimary()) {
        try {
          await agent.run();
        } catch (err) {
          if (err instanceof Deposed) {
            this.logger.warn({ reason: err.message }, "agent stopped: deposed");
            break;
          }
          this.logger.error({ err }, "agent round failed; retrying from the cursor");
          await new Promise((r) => setTimeout(r, backoff));
          backoff = Math.min(backoff * 2, 10_000);
          continue;
        }
        if (!this.isPrimary()) break;
      }
    })();
  }

  /** Stops processing now; in-flight requests finish or are abandoned (they are idempotent). */
  halt(): void {
    this.agent?.stop();
    this.agent = undefined;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.halt();
    await Promise.race([this.loop, new Promise((r) => setTimeout(r, 2000))]);
  }
}
