/** PROVISIOND_KUBERNETES_*: the pod label the chart's -primary Service selects (off unless the chart turns it on). */
import { ConfigError, type Reader } from "./reader.js";
import type { Config } from "./types.js";

const POD_NAME = /^[a-z0-9]([-a-z0-9]{0,251}[a-z0-9])?$/;

export function kubernetesConfig(
  r: Reader,
  nodeId: string,
  cluster: Config["cluster"],
): Config["kubernetes"] {
  if (!r.bool("PROVISIOND_KUBERNETES_ROLE_LABEL", false)) return undefined;
  if (!cluster.etcd)
    throw new ConfigError(
      "PROVISIOND_KUBERNETES_ROLE_LABEL",
      "labels the primary's pod, so it needs a cluster: set PROVISIOND_ETCD_ENDPOINTS",
    );
  if (!r.raw("KUBERNETES_SERVICE_HOST"))
    throw new ConfigError(
      "PROVISIOND_KUBERNETES_ROLE_LABEL",
      "works only in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set); turn it off elsewhere",
    );
  const pod = r.str("PROVISIOND_KUBERNETES_POD", nodeId);
  if (!POD_NAME.test(pod))
    throw new ConfigError(
      "PROVISIOND_KUBERNETES_POD",
      `"${pod}" is not a pod name; set it (or PROVISIOND_NODE_ID) to metadata.name`,
    );
  const peers = (r.raw("PROVISIOND_KUBERNETES_PEER_PODS") ?? "")
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p && p !== pod);
  for (const p of peers)
    if (!POD_NAME.test(p))
      throw new ConfigError("PROVISIOND_KUBERNETES_PEER_PODS", `"${p}" is not a pod name`);
  const namespace = r.raw("PROVISIOND_KUBERNETES_NAMESPACE");
  if (namespace !== undefined && !POD_NAME.test(namespace))
    throw new ConfigError("PROVISIOND_KUBERNETES_NAMESPACE", `"${namespace}" is not a namespace name`);
  return { pod, peers, ...(namespace ? { namespace } : {}) };
}
