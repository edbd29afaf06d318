/**
 * The label `provisiond.io/role=primary` on the primary's pod, which the chart's -primary Service selects (as
 * Vault's vault-active, Patroni's role and CloudNativePG's cnpg.io/instanceRole). etcd decides who is primary;
 * the label is a copy, and a copy can go stale: a pod that died or froze as primary keeps it, and a patch sent
 * just before a pause can land after the next primary's. So:
 *
 * - the label carries its term (annotation `provisiond.io/term`, the etcd revision that is also the fencing
 *   token), and a primary clears the label from every peer whose term is older than its own;
 * - each clear is a JSON patch whose first op tests the resourceVersion it read, the API server's compare-and-
 *   swap, so a peer that changed meanwhile (a newer term labelling itself) is read again, never overwritten;
 * - every change is retried until it holds, and the primary reads its peers again every `resyncMs`, which is
 *   how a late patch from an old term is undone;
 * - a node that is not primary removes the label from its own pod, and nothing else.
 *
 * One loop applies the newest wish; a wish that changes mid-way restarts it. Off unless configured.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { ExponentialBackoff, halfJitterGenerator } from "cockatiel";
import type { Logger } from "pino";
import type { Pods } from "./pods.js";

export const ROLE_LABEL = "provisiond.io/role";
export const TERM_ANNOTATION = "provisiond.io/term";
/** RFC 6901: the "/" inside the key is escaped as "~1". */
const LABEL_PATH = `/metadata/labels/${ROLE_LABEL.replace("/", "~1")}`;

export interface RoleLabelOptions {
  pods: Pods;
  /** This node's pod. */
  pod: string;
  peers: readonly string[];
  logger: Logger;
  /** How often a primary reads its peers again (default 15 s). */
  resyncMs?: number;
  /** Counted once per failed attempt. */
  onFailure?: () => void;
  /** Each API call's deadline (default 5 s): client-node sets none, and a call that never ends would stop the loop. */
  callTimeoutMs?: number;
}

/** Conflicts on one peer in a row before the attempt fails into the back-off: a proxy or webhook that always
 *  answers 409 must not make this a busy loop. */
const MAX_CONFLICTS = 5;

/** What this node wants its pod to say: primary with a term, or nothing. */
type Wish = { term: number } | undefined;

class Superseded extends Error {}

export class RoleLabel {
  private wish: Wish;
  private generation = 0;
  private appliedGeneration = -1;
  private wake: AbortController = new AbortController();
  private running = true;
  private readonly stopping = new AbortController();
  private readonly done: Promise<void>;
  private readonly waiters: { generation: number; resolve: () => void }[] = [];

  constructor(private readonly opts: RoleLabelOptions) {
    this.done = this.loop();
  }

  /** The election calls this on every change: elected with `term`, or not primary (undefined). */
  want(wish: Wish): void {
    if (wish?.term === this.wish?.term) return;
    this.wish = wish;
    this.generation++;
    this.wake.abort();
  }

  /** Resolves once everything wished so far has been applied. */
  settled(): Promise<void> {
    const generation = this.generation;
    if (this.appliedGeneration >= generation) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ generation, resolve }));
  }

  async stop(): Promise<void> {
    this.running = false;
    // Ends a call in flight too: a Kubernetes API that does not answer must not hold up the node's shutdown.
    this.stopping.abort();
    this.wake.abort();
    await this.done;
  }

  private async loop(): Promise<void> {
    let backoff = this.newBackoff();
    while (this.running) {
      const generation = this.generation;
      const wish = this.wish;
      let waitMs: number | undefined = this.opts.resyncMs ?? 15_000;
      try {
        await this.apply(wish, generation);
        this.appliedGeneration = generation;
        this.release();
        backoff = this.newBackoff();
        // A standby's own label is all it owns: nothing to read again until its wish changes.
        if (!wish) waitMs = undefined;
      } catch (err) {
        if (!(err instanceof Superseded) && this.running) {
          this.opts.onFailure?.();
          waitMs = backoff.duration;
          backoff = backoff.next(undefined);
          this.opts.logger.warn(
            { err, wish: wish ?? "not primary", retryInMs: waitMs },
            "pod role label not applied; retrying",
          );
        }
      }
      if (generation !== this.generation || !this.running) continue;
      this.wake = new AbortController();
      await sleep(waitMs ?? 2 ** 31 - 1, undefined, { signal: this.wake.signal }).then(
        () => this.generation++, // the resync timer: read the peers again
        () => undefined,
      );
    }
  }

  private newBackoff() {
    return new ExponentialBackoff({
      initialDelay: 200,
      maxDelay: 10_000,
      generator: halfJitterGenerator,
    }).next();
  }

  private release(): void {
    for (const w of this.waiters.splice(0)) {
      if (w.generation <= this.appliedGeneration) w.resolve();
      else this.waiters.push(w);
    }
  }

  private signal(): AbortSignal {
    return AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.opts.callTimeoutMs ?? 5000)]);
  }

  /** Throws Superseded when the wish changed under it, so the loop starts over with the newer one. */
  private async apply(wish: Wish, generation: number): Promise<void> {
    const { pods, pod } = this.opts;
    const current = () => {
      if (!this.running || (generation !== this.generation && this.wish?.term !== wish?.term))
        throw new Superseded();
    };
    if (!wish) {
      const me = await pods.read(pod, this.signal());
      current();
      if (me && ROLE_LABEL in me.labels) {
        await pods.merge(
          pod,
          { metadata: { labels: { [ROLE_LABEL]: null }, annotations: { [TERM_ANNOTATION]: null } } },
          this.signal(),
        );
        this.opts.logger.info({ pod }, "pod role label removed");
      }
      return;
    }
    // Peers first: while a stale label stands, the -primary Service would send to two pods.
    for (const peer of this.opts.peers) {
      if ((await this.clearIfOlder(peer, wish.term, current)) === "newer") {
        // A newer term exists, so this node's election is about to learn that it is not primary: do not add a
        // second label meanwhile.
        return;
      }
    }
    const me = await pods.read(pod, this.signal());
    current();
    if (me?.labels[ROLE_LABEL] === "primary" && me.annotations[TERM_ANNOTATION] === String(wish.term)) return;
    await pods.merge(
      pod,
      {
        metadata: {
          labels: { [ROLE_LABEL]: "primary" },
          annotations: { [TERM_ANNOTATION]: String(wish.term) },
        },
      },
      this.signal(),
    );
    this.opts.logger.info({ pod, term: wish.term }, "pod labelled primary");
  }

  /** Removes a peer's label if an older term set it; a newer term's label is left for its owner. */
  private async clearIfOlder(peer: string, term: number, current: () => void): Promise<"clear" | "newer"> {
    for (let conflicts = 0; ; conflicts++) {
      if (conflicts === MAX_CONFLICTS)
        throw new Error(`${peer} changed under each of ${MAX_CONFLICTS} patches`);
      const p = await this.opts.pods.read(peer, this.signal());
      current();
      if (!p || !(ROLE_LABEL in p.labels)) return "clear";
      const theirs = Number(p.annotations[TERM_ANNOTATION] ?? 0);
      if (theirs >= term) {
        this.opts.logger.warn(
          { peer, theirs, ours: term },
          "a peer is labelled with a newer term; leaving it",
        );
        return "newer";
      }
      const r = await this.opts.pods.jsonPatch(
        peer,
        [
          { op: "test", path: "/metadata/resourceVersion", value: p.resourceVersion },
          { op: "remove", path: LABEL_PATH },
        ],
        this.signal(),
      );
      if (r !== "conflict") {
        if (r === "ok")
          this.opts.logger.warn({ peer, theirs, ours: term }, "stale primary label removed from a peer");
        return "clear";
      }
    }
  }
}
