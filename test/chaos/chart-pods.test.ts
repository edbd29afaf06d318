/**
 * Chart to containers: no Kubernetes runs here, so the rendered pod specs are run with the real images as a
 * kubelet would run them. Each pod of a StatefulSet becomes a container with the pod's command and args, env
 * (secretKeyRef read from the rendered Secret, fieldRef metadata.name/namespace, $(VAR) references expanded),
 * user, read-only root, dropped capabilities, no-new-privileges, its emptyDirs and volume claims as tmpfs, and
 * the DNS name the headless Service gives it; beside etcd and MariaDB containers. Then the startup, readiness
 * and liveness probes run as the kubelet runs them (HTTP GET on the rendered path and port, or a TCP connect).
 * Every pod must become ready, exactly one node primary, and the chart's `helm test` pod must pass. This catches
 * a chart whose env names, paths or ports disagree with the binaries.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { getContainerRuntimeClient } from "testcontainers";
import { type Manifest, render } from "../support/helm.js";
import { waitFor } from "../support/okta-sim.js";
import { APP_ID, DB_PASSWORD, ETCD_IMAGE, IMAGE, LABEL, SIM_TOKEN, sweep, Topology } from "./topology.js";

// biome-ignore lint/suspicious/noExplicitAny: pod spec JSON
type Json = any;

const NAMESPACE = "provisiond";
const [repository, tag] = IMAGE.split(":") as [string, string];
const [etcdRepository, etcdTag] = ETCD_IMAGE.split(":") as [string, string];

/** The chart rendered for this topology; `bundled` deploys its own etcd instead of the topology's. */
function renderChart(bundled: boolean): Manifest[] {
  return render(
    {
      "image.repository": repository,
      "image.tag": tag,
      ...(bundled
        ? {
            "etcd.bundled.enabled": true,
            "etcd.bundled.image.repository": etcdRepository,
            "etcd.bundled.image.tag": etcdTag,
          }
        : { "etcd.endpoints": "e1:2379,e2:2379,e3:2379" }),
      "store.url": `mysql://provisiond:${DB_PASSWORD}@mariadb:3306/provisiond`,
      "cluster.leaseTtlMs": 2000,
      "agent.source": "okta-sim",
      "agent.okta.orgUrl": "http://okta-sim:8090",
      "agent.okta.appId": APP_ID,
      "agent.okta.apiToken": SIM_TOKEN,
    },
    "pd",
  );
}

interface Probe {
  path?: string;
  port: number;
}

/** A container spec for pod `name` of StatefulSet `sts`, as the kubelet would run it. */
function podAsContainer(objs: Manifest[], sts: Manifest, name: string) {
  const secrets = new Map(objs.filter((o) => o.kind === "Secret").map((s) => [s.metadata.name, s.data]));
  const pod = sts.spec.template.spec;
  assert.equal(pod.containers.length, 1);
  const c = pod.containers[0];
  const vars: Record<string, string> = {};
  const env = c.env.map((e: Json) => {
    let value: string;
    if (e.value !== undefined)
      value = e.value.replace(/\$\(([A-Z_]+)\)/g, (_: string, v: string) => vars[v] ?? "");
    else if (e.valueFrom?.fieldRef?.fieldPath === "metadata.name") value = name;
    else if (e.valueFrom?.fieldRef?.fieldPath === "metadata.namespace") value = NAMESPACE;
    else {
      const ref = e.valueFrom?.secretKeyRef;
      assert.ok(ref, `env ${e.name} has neither a value, a pod field, nor a secretKeyRef`);
      const data = secrets.get(ref.name);
      assert.ok(
        data?.[ref.key],
        `env ${e.name}: the chart renders no Secret ${ref.name} with key ${ref.key}`,
      );
      value = Buffer.from(data[ref.key], "base64").toString("utf8");
    }
    vars[e.name] = value;
    return `${e.name}=${value}`;
  });
  const volumes = new Map(pod.volumes?.map((v: Json) => [v.name, v]) ?? []);
  const claims = new Set(sts.spec.volumeClaimTemplates?.map((v: Json) => v.metadata.name) ?? []);
  const tmpfs: Record<string, string> = {};
  for (const m of c.volumeMounts) {
    const v = volumes.get(m.name) as Json;
    assert.ok(v?.emptyDir || claims.has(m.name), `volume ${m.name} is neither an emptyDir nor a claim`);
    // Both belong to the pod's fsGroup.
    tmpfs[m.mountPath] =
      `rw,uid=${pod.securityContext.runAsUser},gid=${pod.securityContext.fsGroup},mode=0770`;
  }
  const port = (p: string | number) =>
    typeof p === "number" ? p : c.ports.find((x: Json) => x.name === p).containerPort;
  const probe = (p: Json): Probe =>
    p.httpGet ? { path: p.httpGet.path, port: port(p.httpGet.port) } : { port: port(p.tcpSocket.port) };
  return {
    name,
    // The headless Service's per-pod name.
    fqdn: `${name}.${sts.spec.serviceName}.${NAMESPACE}.svc`,
    image: c.image as string,
    command: c.command as string[] | undefined,
    args: c.args as string[] | undefined,
    env,
    user: `${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`,
    readOnly: c.securityContext.readOnlyRootFilesystem === true,
    capDrop: c.securityContext.capabilities.drop as string[],
    noNewPrivileges: c.securityContext.allowPrivilegeEscalation === false,
    tmpfs,
    probes: {
      startup: probe(c.startupProbe),
      readiness: probe(c.readinessProbe),
      liveness: probe(c.livenessProbe),
    },
  };
}

/** What the kubelet sees: 200 for an HTTP probe, an accepted connection for a TCP one. */
async function probeOk(ip: string, p: Probe): Promise<boolean> {
  if (p.path === undefined)
    return new Promise((resolve) => {
      const s = connect(p.port, ip, () => {
        s.end();
        resolve(true);
      }).on("error", () => resolve(false));
      s.setTimeout(2000, () => {
        s.destroy();
        resolve(false);
      });
    });
  try {
    return (
      (await fetch(`http://${ip}:${p.port}${p.path}`, { signal: AbortSignal.timeout(2000) })).status === 200
    );
  } catch {
    return false;
  }
}

describe("the chart's pods, run as a kubelet would", { timeout: 10 * 60_000 }, () => {
  let t: Topology;
  const ids: string[] = [];

  before(async () => {
    await sweep();
    t = await Topology.start(`chart-${process.pid}`, { nodes: 0 });
  });

  after(async () => {
    await removeAll();
    await t?.stop();
    await sweep();
  });

  async function removeAll(): Promise<void> {
    const { dockerode } = (await getContainerRuntimeClient()).container;
    for (const id of ids.splice(0))
      await dockerode
        .getContainer(id)
        .remove({ force: true })
        .catch(() => undefined);
  }

  /** Starts the pod on both networks under its headless DNS name; returns its address. */
  async function run(spec: ReturnType<typeof podAsContainer>): Promise<string> {
    const { dockerode } = (await getContainerRuntimeClient()).container;
    const c = await dockerode.createContainer({
      Image: spec.image,
      ...(spec.command ? { Entrypoint: spec.command } : {}),
      ...(spec.args ? { Cmd: spec.args } : {}),
      Env: spec.env,
      User: spec.user,
      Labels: { [LABEL]: "chart" },
      HostConfig: {
        ReadonlyRootfs: spec.readOnly,
        CapDrop: spec.capDrop,
        SecurityOpt: spec.noNewPrivileges ? ["no-new-privileges"] : [],
        Tmpfs: spec.tmpfs,
        NetworkMode: t.app.getName(),
      },
      NetworkingConfig: { EndpointsConfig: { [t.app.getName()]: { Aliases: [spec.name, spec.fqdn] } } },
    });
    ids.push(c.id);
    await c.start();
    await dockerode
      .getNetwork(t.etcdNet.getId())
      .connect({ Container: c.id, EndpointConfig: { Aliases: [spec.name, spec.fqdn] } });
    return (await c.inspect()).NetworkSettings.Networks[t.app.getName()]!.IPAddress;
  }

  /** Runs every pod of the StatefulSets named, then their probes as the kubelet does; returns the addresses. */
  async function runStatefulSet(objs: Manifest[], stsName: string): Promise<Map<string, string>> {
    const sts = objs.find((o) => o.kind === "StatefulSet" && o.metadata.name === stsName);
    const specs = Array.from({ length: sts.spec.replicas }, (_, i) =>
      podAsContainer(objs, sts, `${stsName}-${i}`),
    );
    const ips = new Map<string, string>();
    for (const spec of specs) ips.set(spec.name, await run(spec));
    for (const spec of specs) {
      const ip = ips.get(spec.name)!;
      await waitFor(`${spec.name}'s startup probe`, () => probeOk(ip, spec.probes.startup));
      await waitFor(`${spec.name}'s readiness probe`, () => probeOk(ip, spec.probes.readiness));
      assert.ok(await probeOk(ip, spec.probes.liveness), `${spec.name}'s liveness probe`);
    }
    return ips;
  }

  async function roles(objs: Manifest[], ips: Map<string, string>): Promise<string[]> {
    const port = objs.find((o) => o.metadata.name === "pd-provisiond-metrics").spec.ports[0].port;
    return Promise.all(
      [...ips.values()].map(async (ip) => {
        try {
          const res = await fetch(`http://${ip}:${port}/status`, { signal: AbortSignal.timeout(2000) });
          return (await res.json()).role as string;
        } catch {
          return "none";
        }
      }),
    );
  }

  /** Exactly one node primary and the other standby, by their /status; then the chart's `helm test` passes. */
  async function onePrimaryAndHelmTest(objs: Manifest[], ips: Map<string, string>): Promise<void> {
    await waitFor("exactly one primary among the pods", async () => {
      const r = await roles(objs, ips);
      return r.filter((x) => x === "primary").length === 1 && r.filter((x) => x === "standby").length === 1;
    });
    const verdict = await helmTest(objs);
    assert.equal(verdict.code, 0, verdict.log);
    assert.match(verdict.log, /ok: every node ready, one primary/);
  }

  /** The `helm test` pod, run once to completion: its exit code is the verdict. */
  async function helmTest(objs: Manifest[]): Promise<{ code: number; log: string }> {
    const pod = objs.find((o) => o.kind === "Pod" && o.metadata.annotations?.["helm.sh/hook"] === "test");
    const c = pod.spec.containers[0];
    const { dockerode } = (await getContainerRuntimeClient()).container;
    const ctr = await dockerode.createContainer({
      Image: c.image,
      Cmd: c.args,
      User: `${pod.spec.securityContext.runAsUser}:${pod.spec.securityContext.runAsGroup}`,
      Labels: { [LABEL]: "chart" },
      HostConfig: { ReadonlyRootfs: true, CapDrop: ["ALL"], NetworkMode: t.app.getName() },
    });
    ids.push(ctr.id);
    await ctr.start();
    const { StatusCode } = await ctr.wait();
    const log = (await ctr.logs({ stdout: true, stderr: true })).toString("utf8");
    return { code: StatusCode, log };
  }

  it("starts both pods of the StatefulSet: probes pass on the rendered paths and ports, one becomes primary, `helm test` passes", async () => {
    const objs = renderChart(false);
    const ips = await runStatefulSet(objs, "pd-provisiond");
    await onePrimaryAndHelmTest(objs, ips);
    await removeAll();
  });

  it("bundled etcd: the chart's 3 members form a cluster under their headless names, and the nodes elect through it", async () => {
    const objs = renderChart(true);
    await runStatefulSet(objs, "pd-provisiond-etcd");
    const ips = await runStatefulSet(objs, "pd-provisiond");
    await onePrimaryAndHelmTest(objs, ips);
  });
});
