import type { ChildProcess } from "node:child_process";

export function running(p: ChildProcess | undefined): p is ChildProcess {
  return p !== undefined && p.exitCode === null && p.signalCode === null;
}

/** Sends `signal` and waits for the exit; SIGKILL after `graceMs` for a process that ignores it. */
export async function stopChild(
  p: ChildProcess | undefined,
  signal: NodeJS.Signals,
  graceMs: number,
): Promise<void> {
  if (!running(p)) return;
  const exited = new Promise<void>((resolve) => p.once("exit", () => resolve()));
  p.kill(signal);
  const timer = setTimeout(() => p.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}
