/** The etcd client as the cluster code wants it: no hidden retries, so every timing decision is ours. */
import { readFileSync } from "node:fs";
import { noop } from "cockatiel";
import { Etcd3, type IOptions } from "etcd3";

import type { Config } from "../config/index.js";

export type EtcdConfig = NonNullable<Config["cluster"]["etcd"]>;

export function etcdClient(cfg: EtcdConfig): Etcd3 {
  const opts: IOptions = {
    hosts: cfg.endpoints,
    dialTimeout: 2000,
    // etcd3 retries each call three times and trips a per-host breaker by default; both hide how long etcd has
    // really been unreachable, which the election must know exactly.
    faultHandling: { host: () => noop, global: noop },
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
