/** PROVISIOND_ETCD_*, PROVISIOND_CLUSTER, PROVISIOND_LEASE_TTL_MS: the election, or none (standalone). */
import { ConfigError, type Reader } from "./reader.js";
import type { Config } from "./types.js";

export function clusterConfig(r: Reader): Config["cluster"] {
  const endpoints = r.raw("PROVISIOND_ETCD_ENDPOINTS");
  const prefix = r.str("PROVISIOND_ETCD_PREFIX", "/provisiond");
  if (!/^\/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$/.test(prefix))
    throw new ConfigError("PROVISIOND_ETCD_PREFIX", "must be a key prefix like /provisiond");
  const name = r.str("PROVISIOND_CLUSTER", "default");
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name))
    throw new ConfigError("PROVISIOND_CLUSTER", "must be 1-64 letters, digits, '.', '_' or '-'");
  const leaseTtlMs = r.int("PROVISIOND_LEASE_TTL_MS", 5000, 2000, 600_000);
  if (leaseTtlMs % 1000 !== 0)
    throw new ConfigError(
      "PROVISIOND_LEASE_TTL_MS",
      "must be whole seconds (etcd leases have second granularity), e.g. 2000 or 5000",
    );
  const out: Config["cluster"] = { prefix, name, leaseTtlMs };
  if (endpoints !== undefined) {
    const list = endpoints
      .split(",")
      .map((e) => e.trim())
      .filter(Boolean);
    for (const e of list) {
      if (!/^(https?:\/\/)?[^\s/:]+:\d+$/.test(e))
        throw new ConfigError("PROVISIOND_ETCD_ENDPOINTS", `"${e}" is not host:port`);
    }
    const etcd: NonNullable<Config["cluster"]["etcd"]> = { endpoints: list };
    const user = r.raw("PROVISIOND_ETCD_USERNAME");
    const pass = r.secret("PROVISIOND_ETCD_PASSWORD");
    if ((user === undefined) !== (pass === undefined))
      throw new ConfigError(
        "PROVISIOND_ETCD_PASSWORD",
        "etcd auth needs both PROVISIOND_ETCD_USERNAME and PROVISIOND_ETCD_PASSWORD",
      );
    if (user && pass) Object.assign(etcd, { username: user, password: pass });
    for (const [k, v] of [
      ["caFile", "PROVISIOND_ETCD_CA_FILE"],
      ["certFile", "PROVISIOND_ETCD_CERT_FILE"],
      ["keyFile", "PROVISIOND_ETCD_KEY_FILE"],
    ] as const) {
      const f = r.raw(v);
      if (f) etcd[k] = f;
    }
    out.etcd = etcd;
  }
  return out;
}
