/**
 * For a process that another process started and whose stdout and stderr are pipes to it: the
 * local runtime's worker processes (local/fleet.ts → functions/fargate.ts), the chaos run's
 * processes, and `npm start` itself when local/launch.ts starts it. When that parent dies (a
 * SIGKILL, an OOM kill) the child is re-parented, its pipes have no reader and the emulators it
 * talks to, which lived in the parent, are gone. Two things then go wrong without these guards:
 *
 * - a write to the closed pipe fails with EPIPE, which, with no 'error' listener on the stream,
 *   is an uncaughtException; a handler that logs it writes again and re-raises, forever;
 * - nothing tells the child to stop, so it polls dead endpoints until someone kills it.
 *
 * The spawner names itself in WARDEN_PARENT_PID; the child polls for its death and stops within
 * a bounded time. Without WARDEN_PARENT_PID (ECS, a terminal) nothing is watched. No imports
 * from core/: this only knows about processes.
 */

let broken = false;
let guarded = false;

/** True once a write to stdout or stderr has failed: nobody reads them any more. */
export const stdioBroken = (): boolean => broken;

/**
 * Listens for 'error' on process.stdout and process.stderr, so a write into a closed pipe
 * (EPIPE) is noted instead of raised as an uncaughtException. Nothing is logged about it: there
 * is nowhere left to log to. Later writes are dropped by the destroyed stream.
 */
export function guardStdio(): void {
  if (guarded) return;
  guarded = true;
  const onError = () => {
    broken = true;
  };
  process.stdout.on("error", onError);
  process.stderr.on("error", onError);
}

/** Writes a line with `write` unless the pipes are known to be broken; never throws. */
export function quietly(write: () => void): void {
  if (broken) return;
  try {
    write();
  } catch {
    broken = true;
  }
}

/** The pid a spawner named in WARDEN_PARENT_PID, when it is a plausible one. */
export function parentPidFromEnv(env: Record<string, string | undefined> = process.env): number | undefined {
  const n = Number(env.WARDEN_PARENT_PID);
  return Number.isInteger(n) && n > 1 ? n : undefined;
}

/** What a spawner puts in its child's environment so that the child watches it. */
export const parentEnv = (): { WARDEN_PARENT_PID: string } => ({ WARDEN_PARENT_PID: String(process.pid) });

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to someone else; only ESRCH means it is gone.
    return (e as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

export interface ParentWatch {
  readonly parentPid: number;
  stop(): void;
}

/**
 * Calls `onGone` once, within `intervalMs` of the parent's death. A direct child watches its
 * own `process.ppid`, which changes the moment it is re-parented (no pid-reuse race); a process
 * started through an intermediate (a shell, the tsx CLI) watches the pid itself. The timer never
 * keeps the process alive.
 */
export function watchParent(parentPid: number | undefined, onGone: () => void, intervalMs = 500): ParentWatch | undefined {
  if (parentPid === undefined || parentPid === process.pid) return undefined;
  const direct = process.ppid === parentPid;
  const gone = () => (direct ? process.ppid !== parentPid : !isAlive(parentPid));
  let fired = false;
  const check = () => {
    if (fired || !gone()) return;
    fired = true;
    clearInterval(timer);
    onGone();
  };
  const timer = setInterval(check, intervalMs);
  timer.unref();
  // A parent that died before we got here is noticed now, not one interval later.
  setImmediate(check).unref();
  return { parentPid, stop: () => clearInterval(timer) };
}

export interface OrphanOptions {
  /** The graceful stop to try: hand jobs back, close clients. */
  stop: () => Promise<unknown> | unknown;
  /** How long the stop may take before the process exits anyway; the parent's emulators are gone, so short. */
  boundMs?: number;
  /** What the process calls itself in the one line it tries to print. */
  name?: string;
  env?: Record<string, string | undefined>;
  intervalMs?: number;
  /** process.exit, replaceable for tests. */
  exit?: (code: number) => void;
}

/**
 * With WARDEN_PARENT_PID set: when that process dies, try `stop` for at most `boundMs` (2 s by
 * default), then exit: 0 when the stop finished, 1 when it failed or ran out of time.
 */
export function exitWhenOrphaned(o: OrphanOptions): ParentWatch | undefined {
  const exit = o.exit ?? ((code: number) => process.exit(code));
  const boundMs = o.boundMs ?? 2_000;
  return watchParent(
    parentPidFromEnv(o.env),
    () => {
      quietly(() => console.error(`${o.name ?? "warden"}: parent process exited; stopping within ${boundMs} ms`));
      const bound = setTimeout(() => exit(1), boundMs);
      void (async () => o.stop())().then(
        () => {
          clearTimeout(bound);
          exit(0);
        },
        () => {
          clearTimeout(bound);
          exit(1);
        },
      );
    },
    o.intervalMs,
  );
}
