/**
 * A stand-in for the Kubernetes API server's pod endpoints, for the role label's tests: no API server can run
 * here. It answers what the labeller asks (GET and PATCH of /api/v1/namespaces/{ns}/pods/{name}, JSON patch and
 * JSON merge patch) as the real one does, and refuses what the real one would: a missing bearer token, a verb or
 * pod name the Role does not grant (the Role as the chart renders it), a media type PATCH does not take, a JSON
 * patch whose `test` fails (422), label keys or values apimachinery rejects, and a patched Pod that is not valid
 * against the Kubernetes 1.34 OpenAPI schema (kubernetes-models).
 */
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import fastJsonPatch, { type Operation } from "fast-json-patch";
import { Pod } from "kubernetes-models/v1/Pod";
import type { Manifest } from "./helm.js";

export interface Recorded {
  method: string;
  path: string;
  contentType: string | undefined;
  body: unknown;
  status: number;
}

/** The media types the OpenAPI document lists for PATCH on a pod. */
const PATCH_TYPES = [
  "application/json-patch+json",
  "application/merge-patch+json",
  "application/strategic-merge-patch+json",
  "application/apply-patch+yaml",
];
const NAME = "[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?";
const LABEL_NAME = new RegExp(`^${NAME}$`);
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** apimachinery's IsQualifiedName and IsValidLabelValue. */
export function labelProblems(labels: Record<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(labels)) {
    const [prefix, name] = k.includes("/") ? k.split("/", 2) : [undefined, k];
    if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) out.push(`key ${k}`);
    if (!name || name.length > 63 || !LABEL_NAME.test(name)) out.push(`key ${k}`);
    if (typeof v !== "string" || v.length > 63 || (v !== "" && !LABEL_NAME.test(v)))
      out.push(`value ${k}=${v}`);
  }
  return out;
}

/** RFC 7386, the merge patch the API server applies for application/merge-patch+json. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target && typeof target === "object" && !Array.isArray(target) ? { ...(target as object) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

interface Rule {
  verbs: string[];
  resources: string[];
  resourceNames?: string[];
  apiGroups: string[];
}

export class KubeApiStandIn {
  readonly pods = new Map<string, Manifest>();
  readonly requests: Recorded[] = [];
  private server!: Server;
  private revision = 100;
  private failures: number[] = [];
  private afterRead = new Map<string, () => void>();
  private held: (() => void)[] | undefined;
  private conflicting = false;

  constructor(
    readonly namespace: string,
    private readonly rules: Rule[],
    readonly token = "test-service-account-token",
  ) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  /** A KubeConfig as a pod's service account would give, pointed here. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    const server = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    kc.loadFromOptions({
      clusters: [{ name: "c", server, skipTLSVerify: true }],
      users: [{ name: "sa", token: this.token }],
      contexts: [{ name: "ctx", cluster: "c", user: "sa", namespace: this.namespace }],
      currentContext: "ctx",
    });
    return kc;
  }

  addPod(name: string, labels: Record<string, string> = {}, annotations: Record<string, string> = {}): void {
    this.pods.set(name, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name,
        namespace: this.namespace,
        resourceVersion: String(++this.revision),
        labels,
        annotations,
      },
      spec: { containers: [{ name: "provisiond", image: "provisiond:local" }] },
    });
  }

  /** What another writer does to a pod (a late patch, another node): it moves the resourceVersion too. */
  edit(
    name: string,
    metadata: { labels?: Record<string, string | null>; annotations?: Record<string, string | null> },
  ) {
    const pod = this.pods.get(name)!;
    this.pods.set(
      name,
      mergePatch(pod, { metadata: { ...metadata, resourceVersion: String(++this.revision) } }),
    );
  }

  labels(name: string): Record<string, string> {
    return this.pods.get(name)?.metadata.labels ?? {};
  }

  /** The next `n` requests fail with `code` (an API server restarting, a webhook timing out). */
  failNext(n: number, code = 503): void {
    for (let i = 0; i < n; i++) this.failures.push(code);
  }

  /** While on, requests are taken and never answered (an API server or webhook that hangs); off lets them go on. */
  hang(on: boolean): void {
    if (on) this.held ??= [];
    else for (const go of this.held?.splice(0) ?? []) go();
    if (!on) this.held = undefined;
  }

  /** While on, every JSON patch answers 409, as a proxy or webhook that always conflicts would. */
  conflictOnPatch(on: boolean): void {
    this.conflicting = on;
  }

  /** Runs `fn` right after the next successful read of `name` answers: a write that races the reader. */
  onNextRead(name: string, fn: () => void): void {
    this.afterRead.set(name, fn);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString();
    const contentType = req.headers["content-type"]?.split(";")[0];
    const rec: Recorded = {
      method: req.method!,
      path: req.url!,
      contentType,
      body: text ? JSON.parse(text) : undefined,
      status: 0,
    };
    this.requests.push(rec);
    const answer = (status: number, body: unknown) => {
      rec.status = status;
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    };
    const fail = (code: number, reason: string, message: string) =>
      answer(code, {
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message,
        reason,
        code,
      });

    if (this.held) {
      const held = this.held;
      await new Promise<void>((go) => held.push(go));
      if (res.destroyed) return;
    }
    const injected = this.failures.shift();
    if (injected) return fail(injected, "ServiceUnavailable", "injected failure");
    if (req.headers.authorization !== `Bearer ${this.token}`)
      return fail(401, "Unauthorized", "Unauthorized");
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/?]+)(\?.*)?$/.exec(req.url!);
    if (!m) return fail(404, "NotFound", `no route ${req.method} ${req.url}`);
    const [, ns, name] = m as unknown as [string, string, string];
    const verb = req.method === "GET" ? "get" : req.method === "PATCH" ? "patch" : req.method!.toLowerCase();
    const allowed = this.rules.some(
      (r) =>
        r.apiGroups.includes("") &&
        r.resources.includes("pods") &&
        r.verbs.includes(verb) &&
        (!r.resourceNames || r.resourceNames.includes(name)),
    );
    if (ns !== this.namespace || !allowed)
      return fail(
        403,
        "Forbidden",
        `pods "${name}" is forbidden: cannot ${verb} resource "pods" in namespace "${ns}"`,
      );
    const pod = this.pods.get(name);
    if (!pod) return fail(404, "NotFound", `pods "${name}" not found`);

    if (verb === "get") {
      answer(200, pod);
      const after = this.afterRead.get(name);
      this.afterRead.delete(name);
      after?.();
      return;
    }
    if (verb !== "patch") return fail(405, "MethodNotAllowed", verb);
    if (!contentType || !PATCH_TYPES.includes(contentType))
      return fail(
        415,
        "UnsupportedMediaType",
        `the body of the request was in an unknown format: ${contentType}`,
      );
    let next: Manifest;
    if (contentType === "application/json-patch+json" && this.conflicting)
      return fail(
        409,
        "Conflict",
        "the object has been modified; please apply your changes to the latest version",
      );
    if (contentType === "application/json-patch+json") {
      const problem = fastJsonPatch.validate(rec.body as Operation[], pod);
      if (problem) return fail(422, "Invalid", problem.message);
      next = fastJsonPatch.applyPatch(pod, rec.body as Operation[], true, false).newDocument;
    } else if (contentType === "application/merge-patch+json") {
      next = mergePatch(pod, rec.body);
    } else
      return fail(415, "UnsupportedMediaType", `${contentType} is valid, but not one this stand-in applies`);
    const bad = labelProblems(next.metadata.labels ?? {});
    if (bad.length) return fail(422, "Invalid", `metadata.labels: Invalid value: ${bad.join(", ")}`);
    try {
      new Pod(next).validate();
    } catch (err) {
      return fail(422, "Invalid", String(err));
    }
    next.metadata.resourceVersion = String(++this.revision);
    this.pods.set(name, next);
    answer(200, next);
  }
}
