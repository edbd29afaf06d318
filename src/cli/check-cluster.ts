/**
 * `provisiond check-cluster URL...`: each node's admin URL answers /readyz, and exactly one of them says it is
 * primary. The chart's `helm test` runs it; so can an operator after any change.
 */
export async function checkCluster(adminUrls: string[], out: (line: string) => void): Promise<boolean> {
  const nodes = await Promise.all(
    adminUrls.map(async (url) => {
      const base = url.replace(/\/+$/, "");
      try {
        const ready = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(5000) });
        const status = (await (
          await fetch(`${base}/status`, { signal: AbortSignal.timeout(5000) })
        ).json()) as {
          nodeId?: string;
          role?: string;
        };
        return {
          url: base,
          ready: ready.status === 200,
          role: status.role ?? "unknown",
          id: status.nodeId ?? "?",
        };
      } catch (err) {
        return { url: base, ready: false, role: `unreachable (${(err as Error).message})`, id: "?" };
      }
    }),
  );
  for (const n of nodes) out(`${n.url}  ${n.id}  ${n.ready ? "ready" : "NOT READY"}  ${n.role}`);
  const primaries = nodes.filter((n) => n.role === "primary").length;
  const ok = nodes.every((n) => n.ready) && primaries === 1;
  out(ok ? "ok: every node ready, one primary" : `FAILED: ${primaries} primaries; every node must be ready`);
  return ok;
}
