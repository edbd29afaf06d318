/**
 * Chart to containers: no Kubernetes runs here, so the rendered pod spec is run with the real image as a kubelet
 * would run it. Each pod of the StatefulSet becomes a container with the pod's command, env (secretKeyRef read
 * from the rendered Secret, fieldRef metadata.name the pod's name), user, read-only root, dropped capabilities,
 * no-new-privileges, and its emptyDirs as tmpfs; beside etcd and MariaDB containers. Then the startup, readiness
 * and liveness probes run as the kubelet runs them (HTTP GET on the rendered path and port). Both pods must
 * become ready, and exactly one primary. This catches a chart whose env names, paths or ports disagree with the
 * binary.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { getContainerRuntimeClient } from "testcontainers";
import { type Manifest, render } from "../support/helm.js";
import { waitFor } from "../support/okta-sim.js";
import { APP_ID, DB_PASSWORD, IMAGE, LABEL, SIM_TOKEN, sweep, Topology } from "./topology.js";

// biome-ignore lint/suspicious/noExplicitAny: pod spec JSON
type Json = any;

const [repository, tag] = IMAGE.split(":") as [string, string];

/** The chart rendered for this topology. */
function renderChart(): Manifest[] {
  return render(
    {
      "image.repository": repository,
      "image.tag": tag,
      "etcd.endpoints": "e1:2379,e2:2379,e3:2379",
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

/** A container spec for pod `name` of the StatefulSet, as the kubelet would run it. */
function podAsContainer(objs: Manifest[], name: string) {
  const sts = objs.find((o) => o.kind === "StatefulSet");
  const secrets = new Map(objs.filter((o) => o.kind === "Secret").map((s) => [s.metadata.name, s.data]));
  const pod = sts.spec.template.spec;
  assert.equal(pod.containers.length, 1);
  const c = pod.containers[0];
  const env = c.env.map((e: Json) => {
    if (e.value !== undefined) return `${e.name}=${e.value}`;
    if (e.valueFrom?.fieldRef?.fieldPath === "metadata.name") return `${e.name}=${name}`;
    const ref = e.valueFrom?.secretKeyRef;
    assert.ok(ref, `env ${e.name} has neither a value, the pod's name, nor a secretKeyRef`);
    const data = secrets.get(ref.name);
    assert.ok(data?.[ref.key], `env ${e.name}: the chart renders no Secret ${ref.name} with key ${ref.key}`);
    return `${e.name}=${Buffer.from(data[ref.key], "base64").toString("utf8")}`;
  });
  const volumes = new Map(pod.volumes.map((v: Json) => [v.name, v]));
  const tmpfs: Record<string, string> = {};
  for (const m of c.volumeMounts) {
    const v = volumes.get(m.name) as Json;
    assert.ok(v?.emptyDir, `volume ${m.name} is not an emptyDir (this check mounts only those)`);
    // An emptyDir belongs to the pod's fsGroup.
    tmpfs[m.mountPath] =
      `rw,uid=${pod.securityContext.runAsUser},gid=${pod.securityContext.fsGroup},mode=0770`;
  }
  const port = (p: string | number) =>
    typeof p === "number" ? p : c.ports.find((x: Json) => x.name === p).containerPort;
  const probe = (p: Json) => ({ path: p.httpGet.path as string, port: port(p.httpGet.port) as number });
  return {
    image: c.image as string,
    args: c.args as string[],
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
    adminPort: port("metrics") as number,
  };
}

describe("the chart's pods, run as a kubelet would", { timeout: 10 * 60_000 }, () => {
  let t: Topology;
  const ids: string[] = [];

  before(async () => {
    await sweep();
    t = await Topology.start(`chart-${process.pid}`, { nodes: 0 });
  });

  after(async () => {
    const { dockerode } = (await getContainerRuntimeClient()).container;
    for (const id of ids)
      await dockerode
        .getContainer(id)
        .remove({ force: true })
        .catch(() => undefined);
    await t?.stop();
    await sweep();
  });

  it("starts both pods of the StatefulSet: probes pass on the rendered paths and ports, one becomes primary", async () => {
    const objs = renderChart();
    const { dockerode } = (await getContainerRuntimeClient()).container;
    const ips: string[] = [];
    const specs = ["pd-provisiond-0", "pd-provisiond-1"].map((name) => ({
      name,
      spec: podAsContainer(objs, name),
    }));
    for (const { name, spec } of specs) {
      assert.equal(spec.image, IMAGE);
      const c = await dockerode.createContainer({
        Image: spec.image,
        Cmd: spec.args,
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
        NetworkingConfig: { EndpointsConfig: { [t.app.getName()]: { Aliases: [name] } } },
      });
      ids.push(c.id);
      await c.start();
      await dockerode
        .getNetwork(t.etcdNet.getId())
        .connect({ Container: c.id, EndpointConfig: { Aliases: [name] } });
      ips.push((await c.inspect()).NetworkSettings.Networks[t.app.getName()]!.IPAddress);
    }
    const get = async (ip: string, p: { path: string; port: number }) => {
      try {
        return (await fetch(`http://${ip}:${p.port}${p.path}`, { signal: AbortSignal.timeout(2000) })).status;
      } catch {
        return 0;
      }
    };
    for (const [i, { name, spec }] of specs.entries()) {
      const ip = ips[i]!;
      await waitFor(`${name}'s startup probe`, async () => (await get(ip, spec.probes.startup)) === 200);
      await waitFor(`${name}'s readiness probe`, async () => (await get(ip, spec.probes.readiness)) === 200);
      assert.equal(await get(ip, spec.probes.liveness), 200, `${name}'s liveness probe`);
    }
    await waitFor("exactly one primary among the pods", async () => {
      const roles = await Promise.all(
        ips.map(async (ip, i) => {
          try {
            const res = await fetch(`http://${ip}:${specs[i]!.spec.adminPort}/status`, {
              signal: AbortSignal.timeout(2000),
            });
            return (await res.json()).role as string;
          } catch {
            return "none";
          }
        }),
      );
      return (
        roles.filter((r) => r === "primary").length === 1 && roles.filter((r) => r === "standby").length === 1
      );
    });
  });
});
