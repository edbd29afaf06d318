/**
 * One term of this node as primary. The election makes a new one each time it elects this node and ends it
 * the moment the node stops being primary, for whatever reason; a term never comes back. Everything that
 * writes on the primary's behalf holds the Leadership of the term it started in and checks `isCurrent()`, so
 * work begun in one term can never go out under the next one, even on the same node.
 */
export class TermEnded extends Error {
  constructor(
    readonly term: number | undefined,
    reason: string,
  ) {
    super(`term ${term ?? "(standalone)"} ended: ${reason}`);
    this.name = "TermEnded";
  }
}

export class Leadership {
  private readonly ended = new AbortController();

  /**
   * @param term the campaign key's create revision, which is also the fencing token; undefined on a standalone
   *   node, which has no rival to fence out.
   * @param campaignKey the etcd key whose create revision guards the cursor.
   * @param healthy whether the lease is still trusted (src/cluster/lease-health.ts), asked at every check.
   */
  constructor(
    readonly term: number | undefined,
    readonly campaignKey: string | undefined,
    private readonly healthy: () => boolean = () => true,
  ) {}

  /** A standalone node leads for as long as it runs. */
  static standalone(): Leadership {
    return new Leadership(undefined, undefined);
  }

  /** Aborted when the term ends; its reason is a TermEnded. */
  get signal(): AbortSignal {
    return this.ended.signal;
  }

  isCurrent(): boolean {
    return !this.ended.signal.aborted && this.healthy();
  }

  /** Ends the term for good (only the election and node shutdown call this). */
  end(reason: string): void {
    if (!this.ended.signal.aborted) this.ended.abort(new TermEnded(this.term, reason));
  }
}
