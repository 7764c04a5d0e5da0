/**
 * The ECS service stand-in: N Fargate-style worker processes (functions/fargate.ts), each a
 * separate OS process with its own id, restarted with a small backoff when it dies, as ECS starts
 * a new task. Stopping sends SIGTERM (the worker releases its jobs) and SIGKILL after the grace,
 * as ECS's stopTimeout does. A worker whose parent dies without stopping it (SIGKILL) exits by
 * itself within a few seconds (functions/parent-watch.ts).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { WorkerDeath } from "../core/lifecycle.js";
import { parentEnv } from "../functions/parent-watch.js";

export const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
const ENTRY = "functions/fargate.ts";
const READY = /^warden-worker: ready (\S+)/;

export interface FleetOptions {
  count: number;
  env: Record<string, string>;
  /** Sent to each process on stop before SIGKILL; ECS's stopTimeout, shortened locally. */
  stopGraceMs?: number;
  /** A stdout line that is not the ready line; true when consumed (EMF metrics), else logged. */
  onLine?: (line: string) => boolean;
  /**
   * A worker process exited for any reason but a clean stop (a kill, a crash, an OOM): the local
   * counterpart of ECS's task-stopped event, for core/deaths.ts.
   */
  onDeath?: (death: WorkerDeath) => void;
  log?: (line: string) => void;
}

export interface WorkerProcess {
  slot: number;
  id: string;
  pid: number | undefined;
  ready: boolean;
  restarts: number;
  startedAt: number;
}

interface Slot {
  slot: number;
  generation: number;
  child?: ChildProcess;
  info: WorkerProcess;
  backoffMs: number;
  restartTimer?: NodeJS.Timeout;
  exited?: Promise<void>;
}

export class WorkerFleet {
  private readonly slots: Slot[] = [];
  private stopping = false;
  private readyWaiters: (() => void)[] = [];

  constructor(private readonly o: FleetOptions) {}

  list(): WorkerProcess[] {
    return this.slots.map((s) => ({ ...s.info }));
  }

  start(): void {
    // Detached children outlive a crashed parent; do not leave them polling a dead emulator.
    process.once("exit", () => {
      for (const s of this.slots) if (s.child?.exitCode === null && s.child.signalCode === null) s.child.kill("SIGKILL");
    });
    for (let i = 1; i <= this.o.count; i++) {
      const s: Slot = { slot: i, generation: 0, backoffMs: 500, info: { slot: i, id: "", pid: undefined, ready: false, restarts: 0, startedAt: 0 } };
      this.slots.push(s);
      this.spawn(s);
    }
  }

  /** Resolves once every slot has a process that printed its ready line. */
  async ready(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.slots.every((s) => s.info.ready)) {
      if (Date.now() > deadline) throw new Error(`worker processes not ready after ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        this.readyWaiters.push(r);
        setTimeout(r, 200);
      });
    }
  }

  private spawn(s: Slot): void {
    s.generation++;
    // This run's pid too: two runs on one external DynamoDB must not share worker ids.
    const id = `fargate-${process.pid}-${s.slot}-${s.generation}`;
    const child = spawn(process.execPath, ["--import", "tsx", ENTRY], {
      cwd: REPO_ROOT,
      // WARDEN_PARENT_PID: a worker outliving this process (SIGKILL, OOM) notices and exits.
      env: { ...process.env, ...this.o.env, WARDEN_WORKER_ID: id, ...parentEnv() },
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group: a terminal's Ctrl-C reaches `npm start` only, which then sends
      // each worker one SIGTERM, as ECS does (a second signal would make it settle at once).
      detached: true,
    });
    s.child = child;
    s.info = { slot: s.slot, id, pid: child.pid, ready: false, restarts: s.generation - 1, startedAt: Date.now() };
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const m = READY.exec(line);
      if (m) {
        s.info.ready = true;
        if (m[1] && m[1] !== id) s.info.id = m[1];
        this.o.log?.(`[${id}] ready (pid ${child.pid})`);
        this.readyWaiters.splice(0).forEach((r) => r());
        return;
      }
      if (!this.o.onLine?.(line)) this.o.log?.(`[${id}] ${line}`);
    });
    createInterface({ input: child.stderr! }).on("line", (line) => this.o.log?.(`[${id}] ${line}`));
    s.exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        resolve();
        if (this.stopping) return;
        if (code !== 0) this.o.onDeath?.({ workerId: s.info.id, at: Date.now(), reason: `process exited (${signal ?? `code ${code}`})` });
        const lived = Date.now() - s.info.startedAt;
        // A process that stayed up a while was healthy: restart quickly; a crash loop backs off.
        s.backoffMs = lived > 30_000 ? 500 : Math.min(10_000, s.backoffMs * 2);
        this.o.log?.(`[${id}] exited (${signal ?? `code ${code}`}); restarting in ${s.backoffMs} ms, as ECS would`);
        s.info.ready = false;
        s.restartTimer = setTimeout(() => this.spawn(s), s.backoffMs);
      });
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const grace = this.o.stopGraceMs ?? 20_000;
    await Promise.all(
      this.slots.map(async (s) => {
        clearTimeout(s.restartTimer);
        const child = s.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        child.kill("SIGTERM");
        const killer = setTimeout(() => {
          this.o.log?.(`[${s.info.id}] did not stop within ${grace} ms: SIGKILL`);
          child.kill("SIGKILL");
        }, grace);
        await s.exited;
        clearTimeout(killer);
      }),
    );
  }
}
