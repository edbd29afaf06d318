/**
 * A fault-injecting HTTP proxy between the agent and a real connector, in the spirit of toxiproxy: it forwards
 * every request unless a rule says to hold it (until the test answers or forwards it) or to answer it itself
 * (a proxy's 502 page, a 503, a body that is not JSON). It records every request in arrival order, so tests
 * can check what an agent sent and when, relative to everything else.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { request } from "undici";

export interface Arrival {
  /** Arrival order, shared with `mark()`. */
  n: number;
  method: string;
  path: string;
  token: string | undefined;
  key: string | undefined;
  // biome-ignore lint/suspicious/noExplicitAny: request bodies read by test predicates
  body: any;
  /** When the connector's (or the rule's) answer came, in the same order as `n`. */
  answeredAt?: number;
  status?: number;
}

export interface Held {
  arrival: Arrival;
  /** Resolves when the client gives up on the request (its connection closed before an answer). */
  clientGone: Promise<void>;
  forward(): Promise<void>;
  respond(status: number, body?: string, headers?: Record<string, string>): void;
}

type Answer = { status: number; body?: string; headers?: Record<string, string> };

interface Rule {
  match: (a: Arrival) => boolean;
  times: number;
  action: "hold" | Answer;
  reached: (h: Held) => void;
}

const HOP = new Set(["connection", "keep-alive", "transfer-encoding", "content-length", "host"]);

export class ScimProxy {
  readonly arrivals: Arrival[] = [];
  private upstream: string | undefined;
  private rules: Rule[] = [];
  private clock = 0;
  private waiters: { match: (a: Arrival) => boolean; resolve: (a: Arrival) => void }[] = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<ScimProxy> {
    let proxy: ScimProxy | undefined;
    const server = createServer((req, res) => void proxy!.handle(req, res));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    proxy = new ScimProxy(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return proxy;
  }

  /** The connector to forward to, e.g. http://127.0.0.1:8080; until set, requests get 503. */
  setUpstream(origin: string): void {
    this.upstream = new URL(origin).origin;
  }

  /** A point in the arrival order, to compare with arrivals' `n` and `answeredAt`. */
  mark(): number {
    return ++this.clock;
  }

  /** The next `times` requests matching `match` are held; resolves with the first. */
  hold(match: (a: Arrival) => boolean, times = 1): Promise<Held> {
    return new Promise((reached) => this.rules.push({ match, times, action: "hold", reached }));
  }

  /** The next `times` requests matching `match` get `answer` from the proxy, never reaching the connector. */
  answer(match: (a: Arrival) => boolean, answer: Answer, times = 1): Promise<Held> {
    return new Promise((reached) => this.rules.push({ match, times, action: answer, reached }));
  }

  /** Resolves with the next request matching `match` that arrives from now on. */
  next(match: (a: Arrival) => boolean): Promise<Arrival> {
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    let body: unknown;
    try {
      body = raw.length ? JSON.parse(raw.toString()) : undefined;
    } catch {
      body = undefined;
    }
    const header = (name: string) => {
      const v = req.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const arrival: Arrival = {
      n: ++this.clock,
      method: req.method ?? "GET",
      path: req.url ?? "/",
      token: header("x-provisiond-fencing-token"),
      key: header("idempotency-key"),
      body,
    };
    this.arrivals.push(arrival);
    this.waiters = this.waiters.filter((w) => {
      if (!w.match(arrival)) return true;
      w.resolve(arrival);
      return false;
    });
    let gone!: () => void;
    const clientGone = new Promise<void>((r) => {
      gone = r;
    });
    res.on("close", () => {
      if (!res.writableFinished) gone();
    });
    const deliver = (a: Answer) => {
      // Recorded even when the client has gone: the answer is what the connector (or the rule) decided.
      arrival.status = a.status;
      arrival.answeredAt = ++this.clock;
      if (res.destroyed) return;
      res.writeHead(a.status, a.headers ?? {});
      res.end(a.body ?? "");
    };
    const forward = async () => {
      if (!this.upstream) return deliver({ status: 503, headers: { "retry-after": "0" } });
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers))
        if (!HOP.has(k) && typeof v === "string") headers[k] = v;
      let up: Awaited<ReturnType<typeof request>>;
      let text: string;
      try {
        up = await request(`${this.upstream}${arrival.path}`, {
          method: arrival.method as "GET",
          headers,
          ...(raw.length ? { body: raw } : {}),
        });
        text = await up.body.text();
      } catch (err) {
        // The connector went away (a node killed by the test): a proxy answers 502, as a real one would.
        return deliver({ status: 502, body: `bad gateway: ${(err as Error).message}` });
      }
      const out: Record<string, string> = {};
      for (const [k, v] of Object.entries(up.headers)) if (!HOP.has(k) && typeof v === "string") out[k] = v;
      deliver({ status: up.statusCode, body: text, headers: out });
    };
    const rule = this.rules.find((r) => r.times > 0 && r.match(arrival));
    if (!rule) return forward();
    rule.times--;
    const held: Held = {
      arrival,
      clientGone,
      forward,
      respond: (status, b, h) => deliver({ status, body: b, headers: h }),
    };
    if (rule.action === "hold") return rule.reached(held);
    deliver(rule.action);
    rule.reached(held);
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => {
      this.server.close(() => r());
      this.server.closeAllConnections();
    });
  }
}

/** A predicate for writes that create the user `userName`. */
export const createsUser = (userName: string) => (a: Arrival) =>
  a.method === "POST" && a.path.endsWith("/Users") && a.body?.userName === userName;
