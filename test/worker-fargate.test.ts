/**
 * The Fargate worker as a real OS process (functions/fargate.ts under tsx) against the emulators:
 * killed with SIGKILL mid-job (the job resumes elsewhere from its checkpoint), stopped with SIGTERM
 * (the job is handed back with a checkpoint and no attempt spent, exit 0), stopped while a handler
 * ignores its signal (a second SIGTERM or the grace running out still releases the lease), and a
 * job over the memory limit aborted while the process lives on.
 */
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, test } from "vitest";
import type { FailedJob, Job, QueuedJob, RunningJob, SucceededJob } from "../core/job.js";
import { Sweeper } from "../core/sweeper.js";
import { startFargateWorker, type FargateWorker } from "../functions/fargate.js";
import { useEmulators, waitFor } from "./support/emulators.js";
import { spawnWorker, submit, testServices, type WorkerChild } from "./worker-support.js";

const env = useEmulators("fargate");
const quiet = { info() {}, warn() {}, error() {} };
const children: WorkerChild[] = [];
const inProcess: FargateWorker[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill("SIGKILL");
  await Promise.all(inProcess.splice(0).map((w) => w.stop({ force: true })));
});

async function child(vars: Record<string, string> = {}): Promise<WorkerChild> {
  const c = await spawnWorker(env, { WARDEN_LEASE_SECONDS: "1", WARDEN_WORKER_QUEUE: "large", WARDEN_WORKER_CONCURRENCY: "2", ...vars });
  children.push(c);
  return c;
}

/** A second worker, in this process, to finish what the killed one left. */
function finisher(id: string): FargateWorker {
  const w = startFargateWorker(testServices(env), { workerId: id, queue: "large", pollWaitSeconds: 1, log: quiet });
  inProcess.push(w);
  return w;
}

const jobOf = (s: ReturnType<typeof testServices>, id: string) => s.store.mustGet(id);

describe("a Fargate worker process", () => {
  test("killed with SIGKILL mid demo.sleep: the job is claimed again after its lease expires and resumes from its checkpoint", async () => {
    const s = testServices(env);
    const a = await child();
    const job = await submit(s, "demo.sleep", { items: 30, msPerItem: 100, checkpointEvery: 3 }, { queue: "large" });
    await waitFor(async () => ((await jobOf(s, job.id)).checkpoint as { done?: number } | undefined)?.done! >= 9, 20_000, "a few checkpoints");
    a.child.kill("SIGKILL");
    expect((await a.exited).signal).toBe("SIGKILL");
    const orphan = (await jobOf(s, job.id)) as RunningJob;
    expect(orphan.status).toBe("running");
    expect(orphan.workerId).toBe(a.id);
    const checkpoint = (orphan.checkpoint as { done: number }).done;
    expect(checkpoint).toBeGreaterThanOrEqual(9);
    // The sweeper's part: once the lease has expired, it takes the job back and rings its
    // doorbell. SQS may hand that doorbell to the killed worker's long poll, which it still counts
    // as waiting (a SIGKILL does not withdraw a ReceiveMessage): the sweeper then rings it again at
    // the job's start deadline, as it would in the cloud.
    const sweeper = new Sweeper(testServices(env, { WARDEN_START_DEADLINE_SECONDS: "2" }));
    finisher("finisher-kill");
    let swept = 0;
    const done = (await waitFor(async () => {
      const j = await jobOf(s, job.id);
      if (j.status === "succeeded") return j;
      if (Date.now() - swept > 500) {
        swept = Date.now();
        await sweeper.sweep();
      }
      return undefined;
    }, 20_000, "the job to finish elsewhere")) as SucceededJob;
    expect(done.attempts).toBe(2);
    expect(done.result).toEqual({ items: 30, resumedFrom: checkpoint });
    expect(done.history.map((h) => [h.worker, h.outcome])).toEqual([
      [a.id, "worker_lost"],
      ["finisher-kill", "succeeded"],
    ]);
  }, 60_000);

  test("sent SIGTERM: the job is released with a checkpoint, no attempt spent, exit 0, and another worker finishes it", async () => {
    const s = testServices(env);
    const a = await child({ WARDEN_SHUTDOWN_GRACE_MS: "5000" });
    // Checkpoints only when told to stop, so the checkpoint seen below can only come from the shutdown.
    const job = await submit(s, "demo.sleep", { items: 40, msPerItem: 100, checkpointEvery: 1000 }, { queue: "large" });
    await waitFor(async () => ((await jobOf(s, job.id)).progress?.done ?? 0) >= 5, 20_000, "progress");
    const t0 = Date.now();
    a.child.kill("SIGTERM");
    expect(await a.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(5_000);
    const handed = (await jobOf(s, job.id)) as QueuedJob;
    expect(handed.status).toBe("queued");
    expect(handed.attempts).toBe(0);
    expect(handed.history.at(-1)).toMatchObject({ worker: a.id, outcome: "released" });
    const checkpoint = (handed.checkpoint as { done: number }).done;
    expect(checkpoint).toBeGreaterThanOrEqual(5);
    // The doorbell the worker rang on release is what the next worker picks up.
    finisher("finisher-term");
    const done = (await waitFor(async () => {
      const j = await jobOf(s, job.id);
      return j.status === "succeeded" ? j : undefined;
    }, 20_000, "the job to finish elsewhere")) as SucceededJob;
    expect(done.attempts).toBe(1);
    expect(done.result).toEqual({ items: 40, resumedFrom: checkpoint });
  }, 60_000);

  test("a handler that ignores shutdown: a second SIGTERM still releases its lease before exit", async () => {
    const s = testServices(env);
    const a = await child({ WARDEN_SHUTDOWN_GRACE_MS: "60000", WARDEN_ABORT_GRACE_MS: "60000" });
    const job = await submit(s, "demo.hang", {}, { queue: "large" });
    await waitFor(async () => (await jobOf(s, job.id)).status === "running", 20_000, "running");
    const t0 = Date.now();
    a.child.kill("SIGTERM");
    await waitFor(() => a.lines.some((l) => l.includes("shutting down gracefully")), 5_000, "the first signal to land");
    a.child.kill("SIGTERM");
    expect(await a.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(10_000);
    const j = (await jobOf(s, job.id)) as QueuedJob;
    expect(j.status).toBe("queued");
    expect(j.attempts).toBe(0);
    expect(j.history.at(-1)?.outcome).toBe("released");
    await s.store.requestCancel(job.id); // so no later worker in this file picks the hang up
  }, 60_000);

  test("a handler that ignores shutdown: when the grace runs out the lease is still released before exit", async () => {
    const s = testServices(env);
    const a = await child({ WARDEN_SHUTDOWN_GRACE_MS: "1000", WARDEN_ABORT_GRACE_MS: "60000" });
    const job = await submit(s, "demo.hang", {}, { queue: "large" });
    await waitFor(async () => (await jobOf(s, job.id)).status === "running", 20_000, "running");
    const t0 = Date.now();
    a.child.kill("SIGTERM");
    expect(await a.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    const j = (await jobOf(s, job.id)) as QueuedJob;
    expect(j.status).toBe("queued");
    expect(j.history.at(-1)?.outcome).toBe("released");
    await s.store.requestCancel(job.id);
  }, 60_000);

  test("demo.memory over the memory limit is aborted with memory and retried; the process survives and runs the next job", async () => {
    const s = testServices(env);
    // A 3 s lease: allocating a gigabyte blocks the event loop in bursts, and on a loaded machine
    // a 1 s lease can run out between two heartbeats (the keeper then rightly calls it lost).
    const a = await child({ WARDEN_MEMORY_LIMIT_MB: "512", WARDEN_MEMORY_SAMPLE_MS: "50", WARDEN_WORKER_CONCURRENCY: "1", WARDEN_LEASE_SECONDS: "3" });
    const job = await submit(s, "demo.memory", { mb: 1024, holdMs: 10_000 }, { queue: "large", maxAttempts: 2 });
    const failed = (await waitFor(async () => {
      const j = await jobOf(s, job.id);
      return j.status === "failed" ? j : undefined;
    }, 30_000, "both attempts to be aborted").catch((e) => {
      throw new Error(`${e}\n${a.lines.slice(-20).join("\n")}`);
    })) as FailedJob;
    expect(failed.attempts).toBe(2);
    expect(failed.error.code).toBe("attempts_exhausted");
    expect(failed.error.message).toMatch(/memory/);
    expect(failed.history.map((h) => h.outcome)).toEqual(["retried", "failed"]);
    expect(a.child.exitCode).toBeNull();
    // Wait for the freed buffers to leave the process before asking it for more work.
    await waitFor(() => rssMb(a.child.pid!) < 400, 20_000, "memory to be returned");
    const next = await submit(s, "demo.sleep", { items: 3, msPerItem: 20 }, { queue: "large" });
    const ok: Job = await waitFor(async () => {
      const j = await jobOf(s, next.id);
      return j.status === "succeeded" ? j : undefined;
    }, 20_000, "the next job");
    expect(ok.history[0]?.worker).toBe(a.id);
    expect(a.child.exitCode).toBeNull();
  }, 90_000);
});

function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : Infinity;
}
