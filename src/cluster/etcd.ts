/** The etcd client as the cluster code wants it: no hidden retries, so every timing decision is ours. */
import { readFileSync } from "node:fs";
import { noop } from "cockatiel";
import {
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  EtcdUserNotFoundError,
  type IOptions,
} from "etcd3";

import type { Config } from "../config/index.js";

export type EtcdConfig = NonNullable<Config["cluster"]["etcd"]>;

/**
 * How the gRPC channel finds etcd again after an outage. With grpc-js' defaults a node cut off etcd for 30 s
 * needed 6.7 s after the cut healed to make a call (bench/etcd-reconnect), longer than a lease TTL, so the
 * standby, or the node's own term, was lost for nothing.
 */
const RECONNECT = {
  // The measured fix. etcd3 drops its channels after each failed call, but by default a new channel shares the
  // process-wide subchannel, whose connection attempt is still waiting on SYN retransmits; a channel of its own
  // dials afresh. The cost, during a partition that drops packets: each abandoned attempt keeps its socket until
  // the kernel gives up its SYN (about 2 min), so a node cut off holds some tens of half-open sockets (43 after
  // 72 s, measured in review), all gone once the cut heals or the kernel times them out.
  "grpc.use_local_subchannel_pool": 1,
  // When etcd refuses connections, the default back-off grows to 120 s; a lease is worth seconds.
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 1000,
  // A name that did not resolve (a member's Pod or container not up yet) is retried after 30 s by default.
  "grpc.dns_min_time_between_resolutions_ms": 1000,
};

export function etcdClient(cfg: EtcdConfig): Etcd3 {
  const opts: IOptions = {
    hosts: cfg.endpoints,
    dialTimeout: 2000,
    // etcd3 retries each call three times and trips a per-host breaker by default; both hide how long etcd has
    // really been unreachable, which the election must know exactly.
    faultHandling: { host: () => noop, global: noop },
    grpcOptions: RECONNECT,
  };
  if (cfg.username && cfg.password) opts.auth = { username: cfg.username, password: cfg.password };
  if (cfg.caFile) {
    opts.credentials = {
      rootCertificate: readFileSync(cfg.caFile),
      ...(cfg.certFile ? { certChain: readFileSync(cfg.certFile) } : {}),
      ...(cfg.keyFile ? { privateKey: readFileSync(cfg.keyFile) } : {}),
    };
  }
  return new Etcd3(opts);
}

export function deadline(ms: number): { deadline: Date } {
  return { deadline: new Date(Date.now() + ms) };
}

/**
 * What an etcd call's failure says, in one short phrase, and the setting most likely to fix it: grpc-js hides
 * the socket's error inside a long UNAVAILABLE message ("… Last error: Error: connect ECONNREFUSED …").
 */
export function etcdTrouble(err: unknown): { cause: string; variable: string } {
  const message = err instanceof Error ? err.message : String(err);
  if (
    err instanceof EtcdAuthenticationFailedError ||
    err instanceof EtcdUserNotFoundError ||
    err instanceof EtcdInvalidAuthTokenError
  )
    return { cause: `authentication failed (${message})`, variable: "PROVISIOND_ETCD_USERNAME/_PASSWORD" };
  if (err instanceof EtcdPermissionDeniedError)
    return { cause: `permission denied (${message})`, variable: "PROVISIOND_ETCD_USERNAME" };
  if (/certificate|SSL|TLS|handshake/i.test(message))
    return { cause: lastError(message), variable: "PROVISIOND_ETCD_CA_FILE" };
  const dns = /Name resolution failed for target (?:dns:)?(\S+)/.exec(message);
  if (dns) return { cause: `cannot resolve ${dns[1]}`, variable: "PROVISIOND_ETCD_ENDPOINTS" };
  if (/DEADLINE_EXCEEDED/.test(message))
    return { cause: "no answer before the deadline", variable: "PROVISIOND_ETCD_ENDPOINTS" };
  return { cause: lastError(message), variable: "PROVISIOND_ETCD_ENDPOINTS" };
}

function lastError(message: string): string {
  const m = /Last error: (?:Error: )?(.*?)\.?(?: Resolution note:.*)?$/s.exec(message);
  return (m?.[1] ?? message).trim();
}
