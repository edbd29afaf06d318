/**
 * The Helm chart: `helm lint --strict`, every rendered object valid against the Kubernetes API schemas
 * (kubernetes-models 5.1.0: the Kubernetes 1.34 API; the prometheus-operator and cert-manager CRD models), the
 * values schema refusing bad values, and the production shape of what renders.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Certificate } from "@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Pod } from "kubernetes-models/v1/Pod";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { parse } from "yaml";
import { CHART, helm, type Manifest, render } from "../support/helm.js";
import { ROOT } from "../support/vectors.js";

const REQUIRED = {
  "etcd.endpoints": "etcd-0.etcd:2379,etcd-1.etcd:2379,etcd-2.etcd:2379",
  "store.url": "mysql://app:pw@mysql:3306/app",
};

/** The values sets CI renders. */
const SETS: Record<string, Record<string, unknown>> = {
  minimal: REQUIRED,
  "tls + existingSecret": {
    "etcd.endpoints": REQUIRED["etcd.endpoints"],
    "store.existingSecret": "app-db",
    "scim.existingSecret": "scim-credentials",
    "tls.enabled": true,
    "tls.existingSecret": "scim-tls",
    "agent.source": "okta",
    "agent.okta.orgUrl": "https://example.okta.com",
    "agent.okta.appId": "0oa1b2c3d4EXAMPLE",
    "agent.okta.existingSecret": "okta-token",
    "etcd.existingSecret": "etcd-credentials",
    "etcd.tls.existingSecret": "etcd-client-tls",
    "etcd.tls.clientCertificate": true,
  },
  "monitoring + cert-manager": {
    ...REQUIRED,
    "metrics.serviceMonitor.enabled": true,
    "metrics.prometheusRule.enabled": true,
    "tls.enabled": true,
    "tls.certManager.enabled": true,
    "tls.certManager.issuerRef.name": "internal-ca",
    "tls.certManager.dnsNames": ["scim.example.internal"],
  },
  "bundled etcd + monitoring + dashboards": {
    "store.url": REQUIRED["store.url"],
    "etcd.bundled.enabled": true,
    "metrics.serviceMonitor.enabled": true,
    "metrics.prometheusRule.enabled": true,
    "dashboards.enabled": true,
    "networkPolicy.enabled": true,
  },
  "primary label on": { ...REQUIRED, "primaryLabel.enabled": true, replicaCount: 3 },
};

const MODELS: Record<string, new (o: Manifest) => { validate(): void }> = {
  StatefulSet,
  Service,
  Secret,
  ServiceAccount,
  PodDisruptionBudget,
  ServiceMonitor,
  PrometheusRule,
  Certificate,
  Role,
  RoleBinding,
  NetworkPolicy,
  ConfigMap,
  Pod,
};

const ofKind = (objs: Manifest[], kind: string) => objs.filter((o) => o.kind === kind);

describe("the Helm chart", () => {
  for (const [name, values] of Object.entries(SETS)) {
    it(`renders ${name}: helm lint --strict passes and every object is valid against its API schema`, () => {
      const sets = Object.entries(values).flatMap(([k, v]) => ["--set-json", `${k}=${JSON.stringify(v)}`]);
      helm(["lint", "--strict", CHART, ...sets]);
      const objs = render(values);
      assert.ok(objs.length >= 5);
      for (const o of objs) {
        const Model = MODELS[o.kind];
        assert.ok(Model, `no schema model for ${o.kind}`);
        assert.doesNotThrow(() => new Model(o).validate(), `${o.kind} ${o.metadata?.name}`);
      }
    });
  }

  it("refuses bad values with the schema's reason", () => {
    for (const [key, value, reason] of [
      ["replicaCount", "two", /replicaCount/],
      ["cluster.leaseTtlMs", 1500, /leaseTtlMs/],
      ["agent.source", "ldap", /agent\/source/],
      ["store.url", "postgres://x", /store\/url/],
      ["etcd.endpoints", "http://etcd:2379", /etcd\/endpoints/],
      ["scim.token", "short", /scim\/token/],
      ["agent.extraEnv", [{ name: "NODE_OPTIONS", value: "--inspect" }], /extraEnv/],
      ["unknownKey", true, /unknownKey/],
    ] as const) {
      assert.throws(
        () => render({ ...REQUIRED, [key]: value }),
        (err: Error & { stderr?: string }) => {
          assert.match(String(err.stderr), reason, `${key}=${JSON.stringify(value)}`);
          return true;
        },
      );
    }
    // What the schema cannot say, the templates do: a cluster needs etcd and a shared store.
    assert.throws(() => render({ "store.url": REQUIRED["store.url"] }), /etcd\.endpoints is required/);
    assert.throws(
      () => render({ "etcd.endpoints": REQUIRED["etcd.endpoints"] }),
      /store\.url .* is required/,
    );
    assert.throws(() => render({ ...REQUIRED, "tls.enabled": true }), /tls\.enabled needs/);
    assert.throws(() => render({ ...REQUIRED, "etcd.bundled.enabled": true }), /not both/);
    assert.throws(
      () =>
        render({
          "store.url": REQUIRED["store.url"],
          "etcd.bundled.enabled": true,
          "etcd.existingSecret": "x",
        }),
      /bundled one has no auth/,
    );
    assert.throws(
      () => render({ ...REQUIRED, "primaryLabel.enabled": true, "serviceAccount.create": false }),
      /not the namespace's default/,
    );
  });

  describe("the production shape", () => {
    const objs = render(SETS["monitoring + cert-manager"]!);
    const sts = ofKind(objs, "StatefulSet")[0];
    const pod = sts.spec.template.spec;
    const c = pod.containers[0];

    it("a StatefulSet of 2 nodes started in parallel, spread over hosts and zones, never forced together", () => {
      assert.equal(sts.spec.replicas, 2);
      assert.equal(sts.spec.podManagementPolicy, "Parallel");
      const anti = pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0];
      assert.equal(anti.podAffinityTerm.topologyKey, "kubernetes.io/hostname");
      assert.deepEqual(
        pod.topologySpreadConstraints.map((t: Manifest) => [t.topologyKey, t.whenUnsatisfiable]),
        [
          ["kubernetes.io/hostname", "ScheduleAnyway"],
          ["topology.kubernetes.io/zone", "ScheduleAnyway"],
        ],
      );
    });

    it("liveness never asks etcd or the store, readiness is not primary-only", () => {
      assert.equal(c.livenessProbe.httpGet.path, "/healthz");
      assert.equal(c.startupProbe.httpGet.path, "/healthz");
      assert.equal(c.readinessProbe.httpGet.path, "/readyz");
      const metricsPort = c.ports.find((p: Manifest) => p.name === "metrics").containerPort;
      const env = Object.fromEntries(c.env.map((e: Manifest) => [e.name, e]));
      assert.equal(env.PROVISIOND_ADMIN_PORT.value, String(metricsPort));
      assert.equal(env.PROVISIOND_ADMIN_HOST.value, "0.0.0.0", "the kubelet probes the pod's address");
      for (const p of [c.livenessProbe, c.startupProbe, c.readinessProbe])
        assert.equal(p.httpGet.port, "metrics");
    });

    it("runs as UID 10001 with a read-only root, no capabilities, no privilege escalation, RuntimeDefault seccomp", () => {
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.equal(pod.securityContext.runAsUser, 10001);
      assert.equal(pod.securityContext.seccompProfile.type, "RuntimeDefault");
      assert.equal(c.securityContext.readOnlyRootFilesystem, true);
      assert.equal(c.securityContext.allowPrivilegeEscalation, false);
      assert.deepEqual(c.securityContext.capabilities.drop, ["ALL"]);
      const mounts = c.volumeMounts.map((m: Manifest) => m.mountPath).sort();
      assert.deepEqual(mounts, ["/data", "/tls", "/tmp"]);
      assert.equal(pod.automountServiceAccountToken, false);
    });

    it("gives SIGTERM time for the handover, after the preStop wait", () => {
      const wait = Number(c.lifecycle.preStop.exec.command[1]);
      assert.ok(pod.terminationGracePeriodSeconds >= wait + 10);
    });

    it("a PDB keeps one node up; secrets come from Secrets, and a changed rendered Secret rolls the pods", () => {
      assert.equal(ofKind(objs, "PodDisruptionBudget")[0].spec.maxUnavailable, 1);
      const env = Object.fromEntries(c.env.map((e: Manifest) => [e.name, e]));
      for (const name of ["PROVISIOND_STORE_URL", "PROVISIOND_SCIM_TOKEN", "PROVISIOND_SCIM_AGENT_TOKEN"])
        assert.ok(env[name].valueFrom.secretKeyRef, name);
      assert.match(sts.spec.template.metadata.annotations["checksum/secret"], /^[0-9a-f]{64}$/);
      const sum = (v: Record<string, unknown>) =>
        ofKind(render(v), "StatefulSet")[0].spec.template.metadata.annotations["checksum/secret"];
      assert.notEqual(
        sum({
          ...REQUIRED,
          "scim.token": "a-token-of-sixteen-chars",
          "scim.agentToken": "agent-token-sixteen-chars",
        }),
        sum({
          ...REQUIRED,
          "scim.token": "b-token-of-sixteen-chars",
          "scim.agentToken": "agent-token-sixteen-chars",
        }),
      );
    });

    it("Services: SCIM over ready pods, metrics apart, headless without unready addresses; the monitor selects metrics", () => {
      const services = Object.fromEntries(ofKind(objs, "Service").map((s) => [s.metadata.name, s]));
      assert.equal(services["pd-provisiond"].spec.ports[0].name, "https");
      assert.equal(services["pd-provisiond-headless"].spec.clusterIP, "None");
      assert.equal(services["pd-provisiond-headless"].spec.publishNotReadyAddresses, false);
      const monitor = ofKind(objs, "ServiceMonitor")[0];
      assert.equal(monitor.spec.selector.matchLabels["app.kubernetes.io/component"], "metrics");
      assert.equal(
        services["pd-provisiond-metrics"].metadata.labels["app.kubernetes.io/component"],
        "metrics",
      );
    });

    it("`helm test` checks every pod by its stable name: ready, and one primary", () => {
      const test = ofKind(objs, "Pod")[0];
      assert.equal(test.metadata.annotations["helm.sh/hook"], "test");
      assert.deepEqual(test.spec.containers[0].args, [
        "check-cluster",
        "http://pd-provisiond-0.pd-provisiond-headless.provisiond.svc:9464",
        "http://pd-provisiond-1.pd-provisiond-headless.provisiond.svc:9464",
      ]);
    });

    it("the PrometheusRule carries exactly deploy/prometheus/alerts.yml", () => {
      const rule = ofKind(objs, "PrometheusRule")[0];
      const alerts = parse(readFileSync(join(ROOT, "deploy/prometheus/alerts.yml"), "utf8"));
      assert.deepEqual(rule.spec, alerts);
      assert.equal(
        readFileSync(join(CHART, "files/alerts.yml"), "utf8"),
        readFileSync(join(ROOT, "deploy/prometheus/alerts.yml"), "utf8"),
        "helm/provisiond/files/alerts.yml is a copy of deploy/prometheus/alerts.yml",
      );
    });
  });

  it("etcd over TLS with credentials: files from the Secret, credentials from it or from the chart's own", () => {
    const objs = render(SETS["tls + existingSecret"]!);
    const c = ofKind(objs, "StatefulSet")[0].spec.template.spec.containers[0];
    const env = Object.fromEntries(c.env.map((e: Manifest) => [e.name, e]));
    assert.equal(env.PROVISIOND_ETCD_CA_FILE.value, "/etcd-tls/ca.crt");
    assert.equal(env.PROVISIOND_ETCD_CERT_FILE.value, "/etcd-tls/tls.crt");
    assert.deepEqual(env.PROVISIOND_ETCD_PASSWORD.valueFrom.secretKeyRef, {
      name: "etcd-credentials",
      key: "password",
    });
    assert.ok(c.volumeMounts.some((m: Manifest) => m.mountPath === "/etcd-tls" && m.readOnly));
    const own = render({ ...REQUIRED, "etcd.username": "provisiond", "etcd.password": "etcd-secret" });
    const ownEnv = Object.fromEntries(
      ofKind(own, "StatefulSet")[0].spec.template.spec.containers[0].env.map((e: Manifest) => [e.name, e]),
    );
    const ref = ownEnv.PROVISIOND_ETCD_PASSWORD.valueFrom.secretKeyRef;
    const secret = ofKind(own, "Secret").find((x) => x.metadata.name === ref.name);
    assert.equal(Buffer.from(secret.data[ref.key], "base64").toString(), "etcd-secret");
    assert.throws(() => render({ ...REQUIRED, "etcd.username": "provisiond" }), /etcd\.password is required/);
  });

  describe("bundled etcd, dashboards and network policy", () => {
    const objs = render(SETS["bundled etcd + monitoring + dashboards"]!);
    const sets = ofKind(objs, "StatefulSet");
    const nodes = sets.find((o) => o.metadata.name === "pd-provisiond");
    const etcd = sets.find((o) => o.metadata.name === "pd-provisiond-etcd");
    const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
      Object.entries(selector).every(([k, v]) => labels[k] === v);

    it("3 members started together, each with a volume; the nodes' endpoints are the members' stable names", () => {
      assert.equal(etcd.spec.replicas, 3);
      assert.equal(etcd.spec.podManagementPolicy, "Parallel");
      assert.equal(etcd.spec.volumeClaimTemplates[0].spec.resources.requests.storage, "1Gi");
      const env = Object.fromEntries(
        etcd.spec.template.spec.containers[0].env.map((e: Manifest) => [e.name, e.value]),
      );
      const members = env.ETCD_INITIAL_CLUSTER.split(",").map((m: string) => m.split("=")[0]);
      assert.deepEqual(members, ["pd-provisiond-etcd-0", "pd-provisiond-etcd-1", "pd-provisiond-etcd-2"]);
      const nodeEnv = Object.fromEntries(
        nodes.spec.template.spec.containers[0].env.map((e: Manifest) => [e.name, e.value]),
      );
      assert.equal(
        nodeEnv.PROVISIOND_ETCD_ENDPOINTS,
        members.map((m: string) => `${m}.pd-provisiond-etcd-headless.provisiond.svc:2379`).join(","),
      );
      // Readiness needs a quorum; liveness must not, or a lost quorum restarts every member at once.
      const c = etcd.spec.template.spec.containers[0];
      assert.equal(c.readinessProbe.httpGet.path, "/health");
      assert.ok(c.livenessProbe.tcpSocket);
      assert.equal(
        ofKind(objs, "PodDisruptionBudget").find((p) => p.metadata.name === "pd-provisiond-etcd").spec
          .maxUnavailable,
        1,
      );
    });

    it("no selector of the nodes takes in an etcd or the helm test pod, and none of etcd's a node", () => {
      const nodeLabels = nodes.spec.template.metadata.labels;
      const etcdLabels = etcd.spec.template.metadata.labels;
      const testLabels = ofKind(objs, "Pod")[0].metadata.labels;
      for (const np of ofKind(objs, "NetworkPolicy"))
        assert.ok(!matches(np.spec.podSelector.matchLabels, testLabels), np.metadata.name);
      const selectors = [
        ...ofKind(objs, "Service").map((s) => s.spec.selector),
        ...ofKind(objs, "PodDisruptionBudget").map((p) => p.spec.selector.matchLabels),
        ...sets.map((s) => s.spec.selector.matchLabels),
      ];
      for (const sel of selectors) {
        assert.ok(!(matches(sel, nodeLabels) && matches(sel, etcdLabels)), JSON.stringify(sel));
        assert.ok(!matches(sel, testLabels), `${JSON.stringify(sel)} selects the helm test pod`);
      }
    });

    it("the dashboards ConfigMap carries grafana/dashboards as generated, with the sidecar's label", () => {
      const cm = ofKind(objs, "ConfigMap")[0];
      assert.equal(cm.metadata.labels.grafana_dashboard, "1");
      assert.equal(
        cm.data["provisiond-cluster.json"],
        readFileSync(join(ROOT, "grafana/dashboards/provisiond-cluster.json"), "utf8").replace(/\n$/, ""),
      );
    });

    it("network policies: etcd's peer port only from members, its client port only from this release", () => {
      const np = Object.fromEntries(ofKind(objs, "NetworkPolicy").map((n) => [n.metadata.name, n]));
      const [client, peer] = np["pd-provisiond-etcd"].spec.ingress;
      assert.deepEqual(peer.ports, [{ port: 2380 }]);
      assert.deepEqual(
        peer.from.map((f: Manifest) => f.podSelector.matchLabels),
        [etcd.spec.selector.matchLabels],
      );
      assert.deepEqual(
        client.from.map((f: Manifest) => f.podSelector.matchLabels),
        [nodes.spec.selector.matchLabels, etcd.spec.selector.matchLabels],
      );
      assert.deepEqual(np["pd-provisiond"].spec.podSelector.matchLabels, nodes.spec.selector.matchLabels);
    });
  });
});
