/** Reads a Prometheus text exposition: the sum of `name`'s samples whose labels include `labels`. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^[^{ ]+(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const have = new Map(
      [...(m[1] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!] as const),
    );
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) sum += Number(m[2]);
  }
  return sum;
}
