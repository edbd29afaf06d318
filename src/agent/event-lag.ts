/**
 * Event lag, defined once for /status and provisiond_event_lag_seconds: how old the oldest event not yet
 * applied may be, and 0 when the agent is caught up.
 *
 * The agent cannot see an event before it reads it, so the lag is measured from the newest instant it knows
 * everything before was applied:
 * - the oldest event of a batch read but not yet applied (exact);
 * - between batches of a backlog, the last applied event (the next one is no older);
 * - once a poll read to the end of the log, the moment that last page was asked for: nothing published
 *   before it is waiting. The lag is 0 from then on while polls keep reaching the end, and starts counting
 *   from that moment when a poll fails or waits (for a rate limit, an unreachable Okta).
 */
export class EventLag {
  /** Epoch ms: every event published before this is applied. */
  private appliedThroughMs: number | undefined;
  /** Epoch ms: the oldest event read and not yet applied. */
  private oldestPending: number | undefined;
  private drained = false;
  /** When the poll whose events are being applied asked for the page that reached the end of the log. */
  private pendingEnd: number | undefined;
  private _lastPollAt: number | undefined;

  /** `applied`: the published time of the last event behind the stored cursor, if any. */
  constructor(
    applied: string | undefined,
    private readonly now: () => number = Date.now,
  ) {
    if (applied) this.appliedThroughMs = Date.parse(applied);
  }

  /** A poll read `events` (oldest first); `endAskedAt` is when it asked for a page that reached the end, if it did. */
  read(events: readonly { published: string }[], endAskedAt: number | undefined): void {
    this._lastPollAt = this.now();
    if (events.length) {
      this.oldestPending = Date.parse(events[0]!.published);
      this.drained = false;
      this.pendingEnd = endAskedAt;
      return;
    }
    if (endAskedAt !== undefined) this.caughtUpAt(endAskedAt);
  }

  /** Everything read by the last poll is applied (its last event published at `lastPublished`). */
  applied(lastPublished: string): void {
    this.oldestPending = undefined;
    this.raise(Date.parse(lastPublished));
    if (this.pendingEnd !== undefined) this.caughtUpAt(this.pendingEnd);
    this.pendingEnd = undefined;
  }

  /** A poll failed or is waiting: the log may have grown since the last one that reached its end. */
  stalled(): void {
    this.drained = false;
  }

  get caughtUp(): boolean {
    return this.drained;
  }

  get lastPollAt(): string | null {
    return this._lastPollAt === undefined ? null : new Date(this._lastPollAt).toISOString();
  }

  /** Every event published before this instant is applied (null before anything is known). */
  get appliedThrough(): string | null {
    if (this.appliedThroughMs === undefined) return null;
    return new Date(this.appliedThroughMs).toISOString();
  }

  /** Seconds; null before anything is known (a new cluster's first poll). */
  seconds(): number | null {
    if (this.drained) return 0;
    const from = this.oldestPending ?? this.appliedThroughMs;
    return from === undefined ? null : Math.max(0, this.now() - from) / 1000;
  }

  private caughtUpAt(t: number): void {
    this.raise(t);
    this.drained = true;
  }

  private raise(t: number): void {
    this.appliedThroughMs = Math.max(this.appliedThroughMs ?? t, t);
  }
}
