/**
 * Runs `fn` over `items` with at most `limit` at once. It stops handing out items at the first failure, or
 * once `signal` is aborted, and returns only when every call it started has settled; then it throws that
 * first failure (or the signal's reason). So when it throws, nothing it started is still running: a caller
 * that retries cannot overlap with its own earlier attempt.
 *
 * Hand-written because the common pools (p-limit, p-map) either keep taking items after a rejection or
 * reject before the calls in flight have settled, and both break that promise.
 */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
  opts: {
    signal?: AbortSignal | undefined;
    /** Told of the first failure, and how many calls are still running, which it then waits for. */
    onFailure?: (error: unknown, inFlight: number) => void;
  } = {},
): Promise<void> {
  const { signal } = opts;
  let next = 0;
  let running = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (next < items.length && !failure && !signal?.aborted) {
      const item = items[next++]!;
      running++;
      try {
        await fn(item);
      } catch (error) {
        if (!failure) {
          failure = { error };
          if (running > 1) opts.onFailure?.(error, running - 1);
        }
      } finally {
        running--;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.error;
  if (signal?.aborted && next < items.length) throw signal.reason;
}

/** Awaits every promise, then throws the first rejection, if any: no work is left running behind an error. */
export async function settleAll<T extends readonly unknown[]>(
  promises: { [K in keyof T]: Promise<T[K]> },
): Promise<T> {
  const results = await Promise.allSettled(promises);
  for (const r of results) if (r.status === "rejected") throw r.reason;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}
