/**
 * `provisiond check-cluster URL...`: each node's admin URL answers /readyz, and exactly one of them acts as
 * primary (a standalone node is its own). The chart's `helm test` runs it; so can an operator after any change.
 */
/** A mistake on the command line, told apart from a node that fails the check. */
export class UsageError extends Error {}

interface Seen {
  url: string;
  ready: boolean;
  role: string;
  id: string;
}

/** The admin URLs, checked before any request: a typo is a usage error, not an unreachable node. */
export function adminUrls(args: string[]): string[] {
  if (!args.length || args.some((a) => a.startsWith("-")))
    throw new UsageError(
      "usage: provisiond check-cluster ADMIN_URL... (e.g. http://node-0:9464 http://node-1:9464)",
    );
  return args.map((a) => {
    let u: URL;
    try {
      u = new URL(a);
    } catch {
      throw new UsageError(
        `check-cluster: "${a}" is not a URL; give each node's admin URL, e.g. http://node-0:9464`,
      );
    }
    if (u.protocol !== "http:" && u.protocol !== "https:")
      throw new UsageError(`check-cluster: "${a}" is not an http(s) URL`);
    return a.replace(/\/+$/, "");
  });
}

async function look(url: string): Promise<Seen> {
  let ready: Response;
  try {
    ready = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5000) });
  } catch (err) {
    return { url, ready: false, role: `unreachable (${(err as Error).message})`, id: "?" };
  }
  const status = await fetch(`${url}/status`, { signal: AbortSignal.timeout(5000) }).catch(() => undefined);
  const body = (await status?.json().catch(() => undefined)) as
    | { nodeId?: string; role?: string }
    | undefined;
  if (!body?.role)
    return {
      url,
      ready: false,
      role: `not a provisiond admin port (/status answered ${status?.status ?? "nothing"})`,
      id: "?",
    };
  return { url, ready: ready.status === 200, role: body.role, id: body.nodeId ?? "?" };
}

export async function checkCluster(urls: string[], out: (line: string) => void): Promise<boolean> {
  const nodes = await Promise.all(urls.map(look));
  for (const n of nodes) out(`${n.url}  ${n.id}  ${n.ready ? "ready" : "NOT READY"}  ${n.role}`);
  const problems: string[] = [];
  const notReady = nodes.filter((n) => !n.ready).length;
  if (notReady) problems.push(`${notReady} of ${nodes.length} not ready`);
  const primaries = nodes.filter((n) => n.role === "primary" || n.role === "standalone").length;
  if (primaries !== 1)
    problems.push(primaries === 0 ? "no primary" : `${primaries} nodes say they are primary`);
  const ids = nodes.map((n) => n.id).filter((id) => id !== "?");
  if (new Set(ids).size !== ids.length)
    problems.push("one node was named twice (the same nodeId answered twice)");
  out(problems.length ? `FAILED: ${problems.join("; ")}` : "ok: every node ready, one primary");
  return problems.length === 0;
}
