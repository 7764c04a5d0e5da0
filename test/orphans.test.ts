/**
 * Worker processes must not outlive the process that spawned them. `npm start` (local/main.ts)
 * is SIGKILLed, as a crashed terminal or an OOM kill would: its Fargate-style worker processes
 * (local/fleet.ts → functions/fargate.ts) are re-parented, their log pipes are closed and the
 * emulators they talk to are gone. Each must notice its parent's death and exit within a few
 * seconds, without spinning on the broken pipe meanwhile. And a worker whose log pipes close
 * while its parent lives must not spin either: a write to a closed pipe is not an exception.
 *
 * Real processes, real signals; every process a test starts is SIGKILLed after it if still alive.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, test } from "vitest";
import { startEmulators, type Emulators } from "../local/emulators.js";
import { REPO_ROOT } from "../local/fleet.js";
import { launchLocal, type Launched } from "../local/launch.js";
import { waitFor } from "./support/emulators.js";

/** Kernel clock ticks per second (USER_HZ): what /proc/<pid>/stat counts CPU time in. */
const TICKS_PER_SECOND = 100;

interface ProcSample {
  alive: boolean;
  /** utime + stime in clock ticks; undefined where /proc cannot be read (not Linux). */
  cpuTicks?: number;
}

/** Alive means signal 0 reaches it and it is not a zombie waiting to be reaped. */
function sample(pid: number): ProcSample {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ESRCH") return { alive: false };
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name in field 2 may hold spaces; everything after its closing paren is fixed.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (f[0] === "Z" || f[0] === "X") return { alive: false };
    return { alive: true, cpuTicks: Number(f[11]) + Number(f[12]) };
  } catch {
    return { alive: true };
  }
}

/** Everything a test started, killed after it whatever happened. */
const started = new Set<number>();
const groups = new Set<number>();
const emulators: Emulators[] = [];

afterEach(async () => {
  for (const pid of started) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  for (const pgid of groups) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  started.clear();
  groups.clear();
  for (const e of emulators.splice(0)) await e.stop().catch(() => undefined);
});

/**
 * Polls the processes until every one is gone or `timeoutMs` passes; answers the survivors and
 * the CPU time each one used from the first sample to its last sample alive.
 */
async function watchExit(pids: number[], timeoutMs: number): Promise<{ survivors: number[]; cpuSeconds: Map<number, number>; ms: number }> {
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  const note = () => {
    const alive: number[] = [];
    for (const pid of pids) {
      const s = sample(pid);
      if (!s.alive) continue;
      alive.push(pid);
      if (s.cpuTicks !== undefined) {
        if (!first.has(pid)) first.set(pid, s.cpuTicks);
        last.set(pid, s.cpuTicks);
      }
    }
    return alive;
  };
  const t0 = Date.now();
  note();
  let survivors: number[] = [];
  try {
    await waitFor(() => note().length === 0, timeoutMs, "every worker process to exit");
  } catch {
    survivors = note();
  }
  const cpuSeconds = new Map(pids.map((pid) => [pid, ((last.get(pid) ?? 0) - (first.get(pid) ?? 0)) / TICKS_PER_SECOND]));
  return { survivors, cpuSeconds, ms: Date.now() - t0 };
}

describe("orphaned worker processes", () => {
  test("SIGKILL npm start: every worker process exits within 5 s and does not burn CPU meanwhile", async () => {
    const launched: Launched = await launchLocal({ args: ["--memory", "--workers", "2"], readyTimeoutMs: 90_000 });
    const parent = launched.child.pid!;
    started.add(parent);
    groups.add(parent);
    const workerPids = () =>
      launched.output.map((l) => /^\[[^\]]+\] ready \(pid (\d+)\)/.exec(l)?.[1]).filter((p): p is string => p !== undefined).map(Number);
    const pids = await waitFor(() => (workerPids().length >= 2 ? workerPids() : undefined), 30_000, "both workers' ready lines");
    for (const pid of pids) started.add(pid);
    expect(pids.every((pid) => sample(pid).alive)).toBe(true);

    const parentGone = new Promise((r) => launched.child.once("exit", r));
    process.kill(parent, "SIGKILL");
    await parentGone;

    const { survivors, cpuSeconds, ms } = await watchExit(pids, 5_000);
    const report = pids.map((pid) => `pid ${pid}: ${survivors.includes(pid) ? "still alive" : "exited"}, ${cpuSeconds.get(pid)?.toFixed(2)} s CPU`).join("; ");
    expect(survivors, `after ${ms} ms: ${report}`).toEqual([]);
    // A worker spinning on its closed pipe burns ~0.7 s of CPU a second; a quiet one a few ticks.
    for (const pid of pids) expect(cpuSeconds.get(pid) ?? 0, report).toBeLessThan(1);
  });

  test("SIGKILL the process that launched npm start: npm start stops itself and its workers", async () => {
    // The launcher is what a test run or the demo is to `npm start`: local/launch.ts in a process
    // of its own, which prints the pids and then idles until it is killed.
    const script = [
      'import { launchLocal } from "./local/launch.ts";',
      'const l = await launchLocal({ args: ["--memory", "--workers", "2"], readyTimeoutMs: 90000 });',
      "const workers = l.output.map((x) => /^\\[[^\\]]+\\] ready \\(pid (\\d+)\\)/.exec(x)?.[1]).filter(Boolean).map(Number);",
      "console.log(JSON.stringify({ main: l.child.pid, workers }));",
      "setInterval(() => {}, 60000);",
    ].join("\n");
    const launcher = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: REPO_ROOT,
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    started.add(launcher.pid!);
    groups.add(launcher.pid!);
    const stderr: string[] = [];
    createInterface({ input: launcher.stderr! }).on("line", (l) => stderr.push(l));
    const pids = await new Promise<{ main: number; workers: number[] }>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the launcher printed no pids within 90 s: ${stderr.slice(-20).join("\n")}`)), 90_000);
      createInterface({ input: launcher.stdout! }).on("line", (l) => {
        if (!l.startsWith("{")) return;
        clearTimeout(t);
        resolve(JSON.parse(l) as { main: number; workers: number[] });
      });
    });
    started.add(pids.main);
    groups.add(pids.main);
    for (const pid of pids.workers) started.add(pid);
    expect(pids.workers).toHaveLength(2);

    const launcherGone = new Promise((r) => launcher.once("exit", r));
    process.kill(launcher.pid!, "SIGKILL");
    await launcherGone;

    // npm start keeps its emulators, so it stops as on SIGTERM: the workers hand their jobs back
    // and exit, then it does; bounded by the fleet's 15 s grace, and quick with no jobs running.
    const all = [pids.main, ...pids.workers];
    const { survivors, ms } = await watchExit(all, 20_000);
    expect(survivors, `still alive ${ms} ms after the launcher died (npm start is ${pids.main})`).toEqual([]);
  });

  test("a worker whose log pipes close does not spin, and still stops on SIGTERM", async () => {
    const emu = await startEmulators({ stage: "orphans" });
    emulators.push(emu);
    const env: Record<string, string | undefined> = {
      ...process.env,
      ...emu.env,
      WARDEN_WORKER_ID: "orphans-pipe",
      WARDEN_POLL_WAIT_SECONDS: "1",
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    };
    // Its parent (this process) stays alive: no parent watch is involved here.
    delete env.WARDEN_PARENT_PID;
    const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "functions/fargate.ts"], {
      cwd: REPO_ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const pid = child.pid!;
    started.add(pid);
    groups.add(pid);
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("the worker printed no ready line within 60 s")), 60_000);
      createInterface({ input: child.stdout! }).on("line", (l) => {
        if (l.startsWith("warden-worker: ready")) {
          clearTimeout(t);
          resolve();
        }
      });
      void exited.then(() => reject(new Error("the worker exited before it was ready")));
    });

    // Close the read ends of its stdout and stderr, then take the emulators away so that every
    // poll fails and the worker logs a warning into the closed pipes.
    child.stdout!.destroy();
    child.stderr!.destroy();
    await emu.stop();
    emulators.splice(emulators.indexOf(emu), 1);

    const before = sample(pid);
    await new Promise((r) => setTimeout(r, 3_000));
    const after = sample(pid);
    expect(after.alive, "the worker is still running (nothing in this test asks it to stop yet)").toBe(true);
    if (before.cpuTicks !== undefined && after.cpuTicks !== undefined) {
      const cpu = (after.cpuTicks - before.cpuTicks) / TICKS_PER_SECOND;
      expect(cpu, `CPU used in 3 s with closed log pipes: ${cpu.toFixed(2)} s`).toBeLessThan(0.6);
    }

    // A process stuck re-raising EPIPE never gets to its signal handlers.
    process.kill(pid, "SIGTERM");
    const { survivors, ms } = await watchExit([pid], 10_000);
    expect(survivors, `still alive ${ms} ms after SIGTERM`).toEqual([]);
    await exited;
  });
});
