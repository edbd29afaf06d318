/**
 * The pod role label (src/kubernetes/role-label.ts) through @kubernetes/client-node's real HTTP requests, against
 * a stand-in for the API server's pod endpoints that enforces the Role the chart renders and validates every
 * patched Pod against the Kubernetes 1.34 OpenAPI schema (test/support/kube-api.ts). No API server runs here.
 */
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import pino from "pino";
import { loadConfig } from "../../src/config/index.js";
import { kubernetesPods } from "../../src/kubernetes/pods.js";
import { ROLE_LABEL, RoleLabel, TERM_ANNOTATION } from "../../src/kubernetes/role-label.js";
import { type Manifest, render } from "../support/helm.js";
import { KubeApiStandIn } from "../support/kube-api.js";
import { waitFor } from "../support/okta-sim.js";

const silent = pino({ level: "silent" });
const objs = render({
  "etcd.endpoints": "etcd:2379",
  "store.url": "mysql://app:pw@mysql:3306/app",
  "primaryLabel.enabled": true,
});
const role = objs.find((o) => o.kind === "Role") as Manifest;
const env = Object.fromEntries(
  objs
    .find((o) => o.kind === "StatefulSet")
    .spec.template.spec.containers[0].env.map((e: Manifest) => [e.name, e.value]),
);
const [P0, P1] = (env.PROVISIOND_KUBERNETES_PEER_PODS as string).split(",") as [string, string];

describe("the pod role label", () => {
  const api = new KubeApiStandIn("provisiond", role.rules);
  const made: RoleLabel[] = [];
  const labeller = (pod: string, peers: string[], resyncMs?: number, callTimeoutMs?: number) => {
    const l = new RoleLabel({
      pods: kubernetesPods(undefined, api.kubeConfig()),
      pod,
      peers,
      logger: silent,
      ...(resyncMs ? { resyncMs } : {}),
      ...(callTimeoutMs ? { callTimeoutMs } : {}),
    });
    made.push(l);
    return l;
  };
  const term = (pod: string) => api.pods.get(pod)?.metadata.annotations?.[TERM_ANNOTATION];

  before(() => api.start());
  after(async () => {
    await Promise.all(made.splice(0).map((l) => l.stop()));
    await api.stop();
  });
  beforeEach(async () => {
    await Promise.all(made.splice(0).map((l) => l.stop()));
    api.requests.length = 0;
    api.addPod(P0);
    api.addPod(P1);
  });

  it("the chart's pods and Role agree: get and patch, on this release's pod names only", () => {
    assert.deepEqual(role.rules, [
      { apiGroups: [""], resources: ["pods"], verbs: ["get", "patch"], resourceNames: [P0, P1] },
    ]);
    assert.equal(env.PROVISIOND_KUBERNETES_ROLE_LABEL, "true");
    const sts = objs.find((o) => o.kind === "StatefulSet");
    assert.equal(sts.spec.template.spec.automountServiceAccountToken, true);
    const svc = objs.find((o) => o.kind === "Service" && o.metadata.name.endsWith("-primary"));
    assert.equal(svc.spec.selector[ROLE_LABEL], "primary");
    assert.equal(svc.spec.publishNotReadyAddresses, false);
  });

  it("the primary labels its pod and clears an older term's label from a peer; stepping down takes it off", async () => {
    api.edit(P1, { labels: { [ROLE_LABEL]: "primary" }, annotations: { [TERM_ANNOTATION]: "5" } });
    const l = labeller(P0, [P1]);
    l.want({ term: 9 });
    await l.settled();
    assert.equal(api.labels(P0)[ROLE_LABEL], "primary");
    assert.equal(term(P0), "9");
    assert.equal(api.labels(P1)[ROLE_LABEL], undefined, "the dead primary's label is still on");
    l.want(undefined);
    await l.settled();
    assert.equal(api.labels(P0)[ROLE_LABEL], undefined);
    // Every request was one the Role allows, in a media type PATCH takes, and produced a valid Pod.
    assert.ok(api.requests.length >= 4);
    for (const r of api.requests) {
      assert.equal(r.status, 200, `${r.method} ${r.path}: ${r.status}`);
      assert.match(r.path, /^\/api\/v1\/namespaces\/provisiond\/pods\/[a-z0-9-]+$/);
      if (r.method === "PATCH")
        assert.ok(["application/merge-patch+json", "application/json-patch+json"].includes(r.contentType!));
    }
  });

  it("a peer labelled by a newer term is left alone, and this node adds no second label", async () => {
    api.edit(P1, { labels: { [ROLE_LABEL]: "primary" }, annotations: { [TERM_ANNOTATION]: "12" } });
    const l = labeller(P0, [P1]);
    l.want({ term: 9 });
    await l.settled();
    assert.equal(api.labels(P1)[ROLE_LABEL], "primary");
    assert.equal(api.labels(P0)[ROLE_LABEL], undefined);
  });

  it("a peer that a newer term labels between the read and the patch is read again, not overwritten", async () => {
    api.edit(P1, { labels: { [ROLE_LABEL]: "primary" }, annotations: { [TERM_ANNOTATION]: "5" } });
    api.onNextRead(P1, () => api.edit(P1, { annotations: { [TERM_ANNOTATION]: "12" } }));
    const l = labeller(P0, [P1]);
    l.want({ term: 9 });
    await l.settled();
    assert.equal(api.labels(P1)[ROLE_LABEL], "primary", "the newer term's label was removed");
    assert.equal(term(P1), "12");
    assert.ok(
      api.requests.some((r) => r.status === 422),
      "the resourceVersion test did not refuse the stale patch",
    );
    assert.equal(
      api.labels(P0)[ROLE_LABEL],
      undefined,
      "a second pod labelled primary beside the newer term",
    );
  });

  it("calls that fail are retried until the label holds", { timeout: 30_000 }, async () => {
    api.failNext(3, 503);
    const l = labeller(P0, [P1]);
    l.want({ term: 9 });
    await l.settled();
    assert.equal(api.labels(P0)[ROLE_LABEL], "primary");
    assert.equal(api.requests.filter((r) => r.status === 503).length, 3);
  });

  it("a call that never answers is cut at its deadline and tried again; stop() ends one in flight", {
    timeout: 30_000,
  }, async () => {
    api.hang(true);
    const l = labeller(P0, [P1], undefined, 200);
    l.want({ term: 9 });
    await waitFor("a second attempt after the first timed out", async () => api.requests.length >= 2);
    api.hang(false);
    await l.settled();
    assert.equal(api.labels(P0)[ROLE_LABEL], "primary");
    // Now one that hangs with the default 5 s deadline: stop() must not wait for it.
    api.hang(true);
    const stopping = labeller(P1, [P0]);
    const before = api.requests.length;
    stopping.want({ term: 10 });
    await waitFor("a call in flight", async () => api.requests.length > before);
    await stopping.stop();
    api.hang(false);
  });

  it("a peer that conflicts on every patch fails the attempt into the back-off, not a busy loop", async () => {
    api.edit(P1, { labels: { [ROLE_LABEL]: "primary" }, annotations: { [TERM_ANNOTATION]: "5" } });
    api.conflictOnPatch(true);
    let failures = 0;
    const l = new RoleLabel({
      pods: kubernetesPods(undefined, api.kubeConfig()),
      pod: P0,
      peers: [P1],
      logger: silent,
      onFailure: () => failures++,
    });
    made.push(l);
    l.want({ term: 9 });
    await waitFor("the attempt to fail", async () => failures >= 1, 10_000);
    await l.stop();
    api.conflictOnPatch(false);
    // One attempt: a read and a patch per conflict, five conflicts at most.
    assert.ok(api.requests.length <= 2 * 5 + 2, `${api.requests.length} requests`);
    assert.equal(api.labels(P0)[ROLE_LABEL], undefined);
  });

  it("a late label from an old term (a patch sent before a pause) is undone by the primary's resync", async () => {
    const l = labeller(P0, [P1], 100);
    l.want({ term: 9 });
    await l.settled();
    api.edit(P1, { labels: { [ROLE_LABEL]: "primary" }, annotations: { [TERM_ANNOTATION]: "5" } });
    await waitFor(
      "the primary to clear the late label",
      async () => api.labels(P1)[ROLE_LABEL] === undefined,
      10_000,
    );
    assert.equal(api.labels(P0)[ROLE_LABEL], "primary");
  });

  it("the newest wish wins when wishes change faster than the API answers", async () => {
    const l = labeller(P0, [P1]);
    l.want({ term: 9 });
    l.want(undefined);
    l.want({ term: 11 });
    await l.settled();
    assert.equal(term(P0), "11");
    l.want(undefined);
    l.want({ term: 13 });
    l.want(undefined);
    await l.settled();
    assert.equal(api.labels(P0)[ROLE_LABEL], undefined);
  });

  it("is configured from the chart's variables, and refuses what cannot work", () => {
    const base = {
      PROVISIOND_ETCD_ENDPOINTS: "etcd:2379",
      PROVISIOND_STORE_URL: "mysql://app:pw@mysql:3306/app",
      PROVISIOND_NODE_ID: P0,
      PROVISIOND_SCIM_TOKEN: "a-cluster-wide-scim-token",
      KUBERNETES_SERVICE_HOST: "10.96.0.1",
    };
    const cfg = loadConfig({
      ...base,
      PROVISIOND_KUBERNETES_ROLE_LABEL: "true",
      PROVISIOND_KUBERNETES_PEER_PODS: `${P0},${P1}`,
    });
    assert.deepEqual(cfg.kubernetes, { pod: P0, peers: [P1] });
    assert.equal(loadConfig(base).kubernetes, undefined);
    assert.throws(
      () => loadConfig({ PROVISIOND_KUBERNETES_ROLE_LABEL: "true" }),
      /PROVISIOND_KUBERNETES_ROLE_LABEL: .*PROVISIOND_ETCD_ENDPOINTS/,
    );
    assert.throws(
      () => loadConfig({ ...base, KUBERNETES_SERVICE_HOST: "", PROVISIOND_KUBERNETES_ROLE_LABEL: "1" }),
      /only in a Kubernetes pod/,
    );
    assert.throws(
      () => loadConfig({ ...base, PROVISIOND_NODE_ID: "Node_1", PROVISIOND_KUBERNETES_ROLE_LABEL: "1" }),
      /PROVISIOND_KUBERNETES_POD: "Node_1" is not a pod name/,
    );
  });
});
