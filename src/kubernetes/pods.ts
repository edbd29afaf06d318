/**
 * The three pod calls the role label needs, through @kubernetes/client-node: read, JSON merge patch (RFC 7386)
 * and JSON patch (RFC 6902). The Role the chart renders grants exactly get and patch on this release's pods.
 */
import type { KubeConfig } from "@kubernetes/client-node";

export interface PodMeta {
  name: string;
  resourceVersion: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export type JsonPatchOp =
  | { op: "test"; path: string; value: string }
  | { op: "remove"; path: string }
  | { op: "add" | "replace"; path: string; value: string };

/** Every call ends by `signal` (its deadline, or the node stopping): an API server that never answers holds nothing. */
export interface Pods {
  /** undefined: no such pod (deleted, or not created yet). */
  read(name: string, signal: AbortSignal): Promise<PodMeta | undefined>;
  merge(
    name: string,
    patch: { metadata: Record<string, Record<string, string | null>> },
    signal: AbortSignal,
  ): Promise<void>;
  /** "conflict": a `test` op failed, the pod changed since it was read. "gone": no such pod. */
  jsonPatch(name: string, ops: JsonPatchOp[], signal: AbortSignal): Promise<"ok" | "conflict" | "gone">;
}

/**
 * In a pod, the service account's token, CA and namespace; a test passes its own KubeConfig and namespace.
 * client-node is loaded on the first call, not at startup: importing it costs about 450 ms, and most nodes never
 * label a pod.
 */
export function kubernetesPods(namespace: string | undefined, kc?: KubeConfig): Pods {
  let loaded: Promise<Client> | undefined;
  const client = () => {
    // A failed start (no service account yet) is tried again on the next call, not remembered.
    loaded ??= connect(namespace, kc).catch((err) => {
      loaded = undefined;
      throw err;
    });
    return loaded;
  };
  return {
    async read(name, signal) {
      const { api, ns, code, options } = await client();
      try {
        const pod = await api.readNamespacedPod({ name, namespace: ns }, options(signal));
        return {
          name,
          resourceVersion: pod.metadata?.resourceVersion ?? "",
          labels: pod.metadata?.labels ?? {},
          annotations: pod.metadata?.annotations ?? {},
        };
      } catch (err) {
        if (code(err) === 404) return undefined;
        throw err;
      }
    },
    async merge(name, patch, signal) {
      const { api, ns, k8s, options } = await client();
      await api.patchNamespacedPod(
        { name, namespace: ns, body: patch },
        options(signal, k8s.PatchStrategy.MergePatch),
      );
    },
    async jsonPatch(name, ops, signal) {
      const { api, ns, k8s, code, options } = await client();
      try {
        await api.patchNamespacedPod(
          { name, namespace: ns, body: ops },
          options(signal, k8s.PatchStrategy.JsonPatch),
        );
        return "ok";
      } catch (err) {
        // A failed `test` is 422 from the API server (409 from some proxies); either way, read again.
        if (code(err) === 422 || code(err) === 409) return "conflict";
        if (code(err) === 404) return "gone";
        throw err;
      }
    },
  };
}

type K8s = typeof import("@kubernetes/client-node");
interface Client {
  k8s: K8s;
  api: InstanceType<K8s["CoreV1Api"]>;
  ns: string;
  code: (err: unknown) => number | undefined;
  /** Per-call options: the abort signal (client-node 1.4 sets no timeout of its own) and a patch's media type. */
  options: (signal: AbortSignal, contentType?: string) => ReturnType<K8s["setHeaderOptions"]>;
}

async function connect(namespace: string | undefined, kc: KubeConfig | undefined): Promise<Client> {
  const k8s = await import("@kubernetes/client-node");
  let config = kc;
  if (!config) {
    config = new k8s.KubeConfig();
    // KUBERNETES_SERVICE_HOST/PORT and /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}.
    config.loadFromCluster();
  }
  const ns = namespace ?? config.getContextObject(config.getCurrentContext())?.namespace ?? "default";
  return {
    k8s,
    api: config.makeApiClient(k8s.CoreV1Api),
    ns,
    code: (err) => (err instanceof k8s.ApiException ? err.code : undefined),
    options: (signal, contentType) => {
      const aborts = {
        pre: (ctx: { setSignal(s: AbortSignal): void }) => {
          ctx.setSignal(signal);
          return new k8s.Observable(Promise.resolve(ctx));
        },
        post: <T>(res: T) => new k8s.Observable(Promise.resolve(res)),
      };
      const base = contentType ? k8s.setHeaderOptions("Content-Type", contentType) : {};
      return {
        ...base,
        middleware: [...(base.middleware ?? []), aborts],
        middlewareMergeStrategy: "append",
      } as ReturnType<K8s["setHeaderOptions"]>;
    },
  };
}
