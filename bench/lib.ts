/** Small helpers shared by the benchmarks: percentiles and a bounded-concurrency runner. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export interface RunResult {
  seconds: number;
  perSecond: number;
  latenciesMs: number[];
}

/** Runs `count` tasks with `concurrency` workers; returns the wall time and each task's latency, sorted. */
export async function runConcurrent(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<void>,
): Promise<RunResult> {
  let next = 0;
  const latencies: number[] = [];
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < count; i = next++) {
        const t0 = process.hrtime.bigint();
        await task(i);
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  latencies.sort((a, b) => a - b);
  return { seconds, perSecond: count / seconds, latenciesMs: latencies };
}

export const fmt = (n: number, digits = 1) => n.toFixed(digits);
