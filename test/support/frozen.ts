/**
 * `npm start` in a child process (local/launch.ts) for a describe block, with a caller's and the
 * admin's client, and worker processes frozen on purpose (SIGSTOP) continued again however the
 * tests end: a stopped process left behind would hold its jobs and its ports.
 */
import { afterAll, beforeAll, expect } from "vitest";
import { client, launchLocal, type Launched, type LaunchOptions } from "../../local/launch.js";

export interface FrozenWorkers {
  sys(): Launched;
  call: ReturnType<typeof client>;
  admin: ReturnType<typeof client>;
  freeze(pid: number): void;
  /** SIGCONT, once: a pid already continued (or gone) is left alone. */
  thaw(pid: number): void;
}

export function useLaunchedWithFreezes(o: LaunchOptions): FrozenWorkers {
  let sys: Launched | undefined;
  let call: ReturnType<typeof client> | undefined;
  let admin: ReturnType<typeof client> | undefined;
  const frozen = new Set<number>();
  beforeAll(async () => {
    sys = await launchLocal(o);
    call = client(sys.url, sys.callerToken);
    admin = client(sys.url, sys.adminToken);
  }, 60_000);
  afterAll(async () => {
    for (const pid of [...frozen]) thaw(pid);
    expect(await sys?.stop()).toBe(0);
  });
  const thaw = (pid: number): void => {
    if (!frozen.delete(pid)) return;
    try {
      process.kill(pid, "SIGCONT");
    } catch {
      /* already gone */
    }
  };
  return {
    sys: () => sys!,
    call: ((...a: Parameters<ReturnType<typeof client>>) => call!(...a)) as ReturnType<typeof client>,
    admin: ((...a: Parameters<ReturnType<typeof client>>) => admin!(...a)) as ReturnType<typeof client>,
    freeze: (pid) => {
      process.kill(pid, "SIGSTOP");
      frozen.add(pid);
    },
    thaw,
  };
}
