/**
 * Helpers for handlers that honour their signal: stop at once, with an error that names why, so
 * the runner (which already knows the reason) never mistakes the stop for a failure of the job.
 */
import type { AbortReason } from "../registry.js";

/** Thrown by a handler that stopped because its signal fired; the runner settles by the reason. */
export class AbortedError extends Error {
  override readonly name = "AbortedError";
  constructor(readonly reason: AbortReason | string) {
    super(`stopped: ${String(reason)}`);
  }
}

export function checkAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new AbortedError(signal.reason as AbortReason);
}

/** Waits `ms`, or less when the signal fires; answers whether it waited the whole time. */
export function pause(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const done = (full: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      resolve(full);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
