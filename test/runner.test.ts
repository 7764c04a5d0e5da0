/**
 * The runner against dynalite and fauxqs: retries with backoff, permanent errors, the hard limit
 * for a handler that ignores its signal, cancellation, a lost lease, the memory guard, and a store
 * that fails while settling. Every job is written, claimed and settled through the real store.
 */
import { laneOf } from "../core/config.js";
import { describe, expect, test } from "vitest";
import { dynamoClient } from "../core/aws.js";
import { MemoryMetrics } from "../core/metrics.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices } from "../core/services.js";
import type { FailedJob, QueuedJob, RunningJob, SucceededJob } from "../core/job.js";
import { MemoryGuard } from "../core/memory.js";
import { Runner } from "../core/runner.js";
import { JobStore } from "../core/store.js";
import { makeHandler } from "../functions/worker.js";
import { beatOf } from "../local/chaos-faults.js";
import { useEmulators, waitFor } from "./support/emulators.js";
import { pollOnce, submit, testServices } from "./worker-support.js";

const env = useEmulators("runner");
const quiet = { info() {}, warn() {}, error() {} };

describe("retries and failures", () => {
  test("demo.fail times=2, maxAttempts=3 succeeds on attempt 3 with backoff between attempts", async () => {
    const s = testServices(env);
    const handler = makeHandler(s, { workerId: "lambda-a", memory: false, log: quiet });
    const job = await submit(s, "demo.fail", { times: 2 }, { maxAttempts: 3 });
    const seen: { attempts: number; runAt?: number; at: number; status: string }[] = [];
    const final = await waitFor(async () => {
      const { jobIds } = await pollOnce(s, handler);
      const j = await s.store.mustGet(job.id);
      if (jobIds.includes(job.id)) seen.push({ attempts: j.attempts, status: j.status, at: Date.now(), ...(j.status === "queued" && j.runAt ? { runAt: j.runAt } : {}) });
      return j.status === "succeeded" ? (j as SucceededJob) : undefined;
    }, 30_000, "demo.fail to succeed");
    expect(final.attempts).toBe(3);
    expect(final.result).toEqual({ attempt: 3 });
    expect(final.history.map((h) => h.outcome)).toEqual(["retried", "retried", "succeeded"]);
    // Each failed attempt left the job queued with a runAt in the future: that is the backoff.
    const retried = seen.filter((x) => x.status === "queued");
    expect(retried).toHaveLength(2);
    for (const r of retried) expect(r.runAt! - r.at).toBeGreaterThan(0);
    // Attempts started no earlier than their backoff allowed.
    const starts = final.history.map((h) => h.startedAt);
    const ends = final.history.map((h) => h.endedAt!);
    expect(starts[1]! - ends[0]!).toBeGreaterThanOrEqual(400);
    expect(starts[2]! - ends[1]!).toBeGreaterThanOrEqual(400);
    expect(s.metrics.sum("JobsFailed", 0, { ErrorCode: "handler_error" })).toBe(2);
    expect(s.metrics.sum("JobsSucceeded")).toBeGreaterThanOrEqual(1);
  });

  test("demo.permanent fails on attempt 1 with a readable error, and is not retried", async () => {
    const s = testServices(env);
    const runner = new Runner(s, { workerId: "w-perm", kind: "lambda", log: quiet });
    const job = await submit(s, "demo.permanent", {}, { maxAttempts: 5, ring: false });
    const out = await runner.run(job.id);
    expect(out).toMatchObject({ claimed: true, outcome: "failed" });
    const j = (await s.store.mustGet(job.id)) as FailedJob;
    expect(j.status).toBe("failed");
    expect(j.attempts).toBe(1);
    expect(j.error.code).toBe("handler_error");
    expect(j.error.message).toMatch(/^PermanentError: demo\.permanent always fails/);
  });

  test("a handler that throws never crashes the worker; the job records the error", async () => {
    const s = testServices(env);
    const runner = new Runner(s, { workerId: "w-throw", kind: "local", log: quiet });
    const bad = await submit(s, "demo.fail", { times: 5 }, { maxAttempts: 1, ring: false });
    const out = await runner.run(bad.id);
    expect(out).toMatchObject({ claimed: true, outcome: "failed" });
    expect(((await s.store.mustGet(bad.id)) as FailedJob).error.code).toBe("attempts_exhausted");
    const good = await submit(s, "demo.sleep", { items: 2, msPerItem: 10 }, { ring: false });
    expect(await runner.run(good.id)).toMatchObject({ claimed: true, outcome: "succeeded" });
  });

  test("input that no longer matches its type fails at once as invalid_input", async () => {
    const s = testServices(env);
    const { job } = await s.store.create({ owner: "t", type: "demo.sleep", queue: "default", input: { items: "many" }, maxAttempts: 3, timeoutMs: 60_000 });
    const out = await new Runner(s, { workerId: "w-inv", kind: "local", log: quiet }).run(job.id);
    expect(out).toMatchObject({ claimed: true, outcome: "failed" });
    expect(((await s.store.mustGet(job.id)) as FailedJob).error).toMatchObject({ code: "invalid_input" });
  });
});

describe("limits", () => {
  test("demo.hang ignores its signal and is settled by the hard limit: failed with timeout at the runtime limit", async () => {
    const s = testServices(env);
    const runner = new Runner(s, { workerId: "w-hang", kind: "fargate", log: quiet, limits: { abortGraceMs: 300 } });
    const job = await submit(s, "demo.hang", {}, { timeoutMs: 800, ring: false });
    const t0 = Date.now();
    const out = await runner.run(job.id);
    const took = Date.now() - t0;
    expect(out).toMatchObject({ claimed: true, outcome: "failed", abort: "soft_limit", abandoned: true });
    expect(took).toBeGreaterThanOrEqual(1_000);
    expect(took).toBeLessThan(5_000);
    const j = (await s.store.mustGet(job.id)) as FailedJob;
    expect(j.status).toBe("failed");
    expect(j.error.code).toBe("timeout");
    expect(j.error.message).toMatch(/total runtime limit/);
    expect(runner.active()).toEqual([]);
  });

  test("the soft limit with a checkpoint releases the job without spending an attempt", async () => {
    const s = testServices(env);
    const runner = new Runner(s, { workerId: "w-soft", kind: "fargate", log: quiet, limits: { softLimitMs: 500 } });
    const job = await submit(s, "demo.sleep", { items: 20, msPerItem: 100, checkpointEvery: 2 }, { ring: false });
    const out = await runner.run(job.id);
    expect(out).toMatchObject({ claimed: true, outcome: "released", abort: "soft_limit", queue: "default" });
    const j = (await s.store.mustGet(job.id)) as QueuedJob;
    expect(j.status).toBe("queued");
    expect(j.attempts).toBe(0);
    expect((j.checkpoint as { done: number }).done).toBeGreaterThanOrEqual(3);
    expect(j.progress?.done).toBe((j.checkpoint as { done: number }).done);
  });

  test("the soft limit without a checkpoint is a retryable timeout", async () => {
    const s = testServices(env);
    const runner = new Runner(s, { workerId: "w-soft2", kind: "fargate", log: quiet, limits: { softLimitMs: 300, abortGraceMs: 200 } });
    const job = await submit(s, "demo.hang", {}, { ring: false });
    const out = await runner.run(job.id);
    expect(out).toMatchObject({ claimed: true, outcome: "retried", abort: "soft_limit" });
    const j = (await s.store.mustGet(job.id)) as QueuedJob;
    expect(j.status).toBe("queued");
    expect(j.attempts).toBe(1);
    expect(j.error).toMatchObject({ code: "timeout" });
    expect(j.runAt).toBeGreaterThan(Date.now() - 1_000);
  });
});

describe("cancellation and lost leases", () => {
  test("a cancel request reaches the handler on a heartbeat and the job ends cancelled with its checkpoint", async () => {
    const s = testServices(env);
    const runner = new Runner(s, { workerId: "w-cancel", kind: "local", log: quiet, heartbeatMs: 100 });
    const job = await submit(s, "demo.sleep", { items: 100, msPerItem: 50, checkpointEvery: 3 }, { ring: false });
    const running = runner.run(job.id);
    await waitFor(async () => ((await s.store.mustGet(job.id)).progress?.done ?? 0) >= 4, 10_000, "progress");
    await s.store.requestCancel(job.id);
    expect(await running).toMatchObject({ claimed: true, outcome: "cancelled", abort: "cancelled" });
    const j = await s.store.mustGet(job.id);
    expect(j.status).toBe("cancelled");
    expect((j.checkpoint as { done: number }).done).toBeGreaterThanOrEqual(4);
  });

  test("a worker whose job was taken away (lease lost) stops and writes nothing more", async () => {
    const s = testServices(env);
    const runner = new Runner(s, { workerId: "w-lost", kind: "local", log: quiet, heartbeatMs: 100 });
    const job = await submit(s, "demo.sleep", { items: 100, msPerItem: 50 }, { ring: false });
    const running = runner.run(job.id);
    const r = await waitFor(async () => {
      const j = await s.store.mustGet(job.id);
      return j.status === "running" && (j.progress?.done ?? 0) >= 2 ? (j as RunningJob) : undefined;
    }, 10_000, "running");
    const taken = await s.store.reclaim(r); // the sweeper takes it back: the token moves on
    expect(await running).toMatchObject({ claimed: true, outcome: "lease_lost", abort: "lease_lost" });
    const after = await s.store.mustGet(job.id);
    expect(after.status).toBe("queued");
    expect(after.token).toBe(taken.token);
    expect(after.updatedAt).toBe(taken.updatedAt);
    expect(s.metrics.sum("LeaseLost")).toBeGreaterThanOrEqual(1);
  });

  test("a claim refused because another worker holds the lease counts as a claim conflict", async () => {
    const s = testServices(env);
    const job = await submit(s, "demo.sleep", { items: 5, msPerItem: 50 }, { ring: false });
    const a = new Runner(s, { workerId: "w-a", kind: "local", log: quiet });
    const b = new Runner(s, { workerId: "w-b", kind: "local", log: quiet });
    const first = a.run(job.id);
    await waitFor(async () => (await s.store.mustGet(job.id)).status === "running");
    expect(await b.run(job.id)).toMatchObject({ claimed: false, reason: "leased" });
    expect(await first).toMatchObject({ outcome: "succeeded" });
    expect(s.metrics.sum("ClaimConflicts")).toBe(1);
  });
});

describe("memory guard", () => {
  test("demo.memory above the critical threshold is aborted with memory, retried on large, and the worker carries on", async () => {
    const s = testServices(env);
    // The sampler measures what Buffers really allocate; the limit is 64 MB above the start.
    const base = process.memoryUsage().arrayBuffers;
    const guard = new MemoryGuard({
      sampler: () => ({ usedBytes: Math.max(0, process.memoryUsage().arrayBuffers - base), limitBytes: 64 * 1024 * 1024 }),
      intervalMs: 20,
      metrics: s.metrics,
      queue: "default",
    });
    const runner = new Runner(s, { workerId: "w-mem", kind: "lambda", log: quiet, memory: guard, limits: { abortGraceMs: 2_000 } });
    await runner.start();
    try {
      const job = await submit(s, "demo.memory", { mb: 256, holdMs: 5_000 }, { ring: false });
      expect(job.queue).toBe("default");
      const out = await runner.run(job.id);
      expect(out).toMatchObject({ claimed: true, outcome: "retried", abort: "memory", queue: "large" });
      const j = (await s.store.mustGet(job.id)) as QueuedJob;
      expect(j.status).toBe("queued");
      expect(j.queue).toBe("large");
      expect(j.error).toMatchObject({ code: "memory" });
      expect(s.metrics.sum("MemoryAborts")).toBe(1);
      expect(s.metrics.points.some((p) => p.name === "WorkerMemoryPercent" && p.value >= 95)).toBe(true);
      const rung = await s.queue.receive(laneOf({ queue: "large" }), { waitSeconds: 1 });
      expect(rung.map((m) => m.jobId)).toContain(job.id);
      for (const m of rung) await s.queue.delete(m.lane, m.receiptHandle);
      // The worker survived: the next job runs to completion. (The guard is stopped first: this
      // test process cannot force a collection, so the freed Buffers would still be counted; the
      // worker-process test shows the same with real memory and a collection after the abort.)
      guard.stop();
      const next = await submit(s, "demo.sleep", { items: 2, msPerItem: 10 }, { ring: false });
      expect(await runner.run(next.id)).toMatchObject({ claimed: true, outcome: "succeeded" });
    } finally {
      await runner.stop();
    }
  });

  test("the guard warns above 85 % and calls back above 95 %", () => {
    let used = 0;
    const critical: number[] = [];
    const warnings: unknown[] = [];
    const guard = new MemoryGuard({
      sampler: () => ({ usedBytes: used, limitBytes: 1000 }),
      log: { info() {}, warn: (_m, e) => warnings.push(e), error() {} },
    });
    guard.onCritical((p) => critical.push(p));
    used = 500;
    expect(guard.check()).toBe(50);
    used = 900;
    expect(guard.check()).toBe(90);
    expect(warnings).toHaveLength(1);
    expect(critical).toEqual([]);
    used = 960;
    guard.check();
    expect(critical).toEqual([96]);
  });
});

describe("store failures while settling", () => {
  test("a store that fails on the final write does not crash the worker; the outcome says so", async () => {
    const s = testServices(env);
    // A second client whose UpdateItem calls fail once `broken` is set: a fault the emulator cannot produce.
    const doc = dynamoClient({ dynamodb: env.emu.dynamoEndpoint });
    let broken = false;
    doc.middlewareStack.add(
      (next, context) => async (args) => {
        if (broken && context.commandName === "UpdateItemCommand") throw new Error("simulated: DynamoDB unreachable");
        return next(args);
      },
      { step: "initialize", name: "breakUpdates" },
    );
    const store = new JobStore(doc, { tableName: env.emu.tableName });
    const runner = new Runner({ ...s, store }, { workerId: "w-broken", kind: "local", heartbeatMs: 5_000, log: { info() {}, warn() {}, error() {} } });
    const job = await submit(s, "demo.sleep", { items: 3, msPerItem: 100 }, { ring: false });
    const running = runner.run(job.id);
    await waitFor(async () => (await s.store.mustGet(job.id)).status === "running");
    broken = true;
    expect(await running).toMatchObject({ claimed: true, outcome: "settle_error" });
    // Still running in the table: the lease expires and the sweeper takes it back.
    expect((await s.store.mustGet(job.id)).status).toBe("running");
    doc.destroy();
  });
});

describe("a worker paused through its whole lease", () => {
  test("does not start the handler when the lease ran out between the claim and its answer", async () => {
    let skew = 0;
    const s = { ...testServices(env), now: () => Date.now() + skew };
    const runner = new Runner(s, { workerId: "frozen", kind: "local", leaseMs: 1000, log: quiet });
    const job = await submit(s, "demo.sleep", { items: 3, msPerItem: 1 }, { ring: false });
    // The claim is written; then the worker "freezes" past its lease before the handler starts.
    const out = await runner.run(job.id, "default", { onClaimed: () => void (skew = 5_000) });
    expect(out).toMatchObject({ claimed: true, outcome: "lease_lost" });
    const stored = await s.store.mustGet(job.id);
    expect(stored).toMatchObject({ status: "running", workerId: "frozen", attempts: 1 });
    expect(stored.progress).toBeUndefined(); // the handler never ran, so it reported nothing
    expect(s.metrics.sum("LeaseLost")).toBe(1);
  });
});

/** An error shaped as the SDK throws it, for faults the emulator cannot produce. */
function awsError(name: string, status: number): Error {
  return Object.assign(new Error(`simulated ${name}`), { name, $metadata: { httpStatusCode: status } });
}

describe("heartbeat failures", () => {
  /** Services over a client whose heartbeats fail while `fault` answers an error: the rest goes through. */
  function faultyBeats(fault: () => Error | undefined) {
    const doc = dynamoClient({ dynamodb: env.emu.dynamoEndpoint });
    doc.middlewareStack.add(
      (next, context) => async (args) => {
        const e = beatOf(context.commandName ?? "", args.input as Record<string, unknown>) !== undefined ? fault() : undefined;
        if (e) throw e;
        return next(args);
      },
      { step: "initialize", name: "faultyBeats" },
    );
    const s = buildServices(loadRuntime({ ...env.emu.env }), { doc, sqs: env.sqs, metrics: new MemoryMetrics() });
    return { s: s as typeof s & { metrics: MemoryMetrics }, doc };
  }

  test("throttled heartbeats are retried on the next beat: the job keeps its lease, succeeds once, and StoreThrottled counts them", async () => {
    let toFail = 3;
    const { s, doc } = faultyBeats(() => (toFail-- > 0 ? awsError("ProvisionedThroughputExceededException", 400) : undefined));
    const runner = new Runner(s, { workerId: "w-throttled", kind: "local", leaseMs: 2_000, heartbeatMs: 150, log: quiet });
    const job = await submit(s, "demo.sleep", { items: 12, msPerItem: 100, checkpointEvery: 2 }, { ring: false });
    expect(await runner.run(job.id)).toMatchObject({ claimed: true, outcome: "succeeded" });
    const done = await s.store.mustGet(job.id);
    expect(done).toMatchObject({ status: "succeeded", attempts: 1 });
    expect(toFail).toBeLessThan(0); // every one of the three failures happened, and later beats went through
    expect(s.metrics.sum("StoreThrottled")).toBe(3);
    expect(s.metrics.sum("LeaseLost")).toBe(0);
    doc.destroy();
  });

  test("a worker whose heartbeats keep failing stops at the end of its own lease, writes nothing, and the job is taken over", async () => {
    let failures = 0;
    const { s, doc } = faultyBeats(() => (failures++, awsError("InternalServerError", 500)));
    const runner = new Runner(s, { workerId: "w-cut-off", kind: "local", leaseMs: 1_000, heartbeatMs: 150, log: quiet });
    const job = await submit(s, "demo.sleep", { items: 40, msPerItem: 100, checkpointEvery: 1 }, { ring: false });
    const started = Date.now();
    const out = await runner.run(job.id);
    expect(out).toMatchObject({ claimed: true, outcome: "lease_lost", abort: "lease_lost" });
    // It gave up once its lease (1 s) had run out, long before the 4 s of work were done.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(failures).toBeGreaterThanOrEqual(5);
    // Nothing written after the claim: still running under the first worker, for the sweeper or a reclaim.
    expect(await s.store.mustGet(job.id)).toMatchObject({ status: "running", workerId: "w-cut-off", attempts: 1 });
    expect(s.metrics.sum("LeaseLost")).toBe(1);
    expect(s.metrics.sum("StoreThrottled")).toBe(0); // a 500 is not throttling

    const healthy = testServices(env);
    const next = new Runner(healthy, { workerId: "w-next", kind: "local", leaseMs: 2_000, log: quiet });
    const taken = await waitFor(async () => {
      const r = await next.run(job.id);
      return r.claimed ? r : undefined;
    }, 10_000, "the expired lease to be claimable");
    expect(taken).toMatchObject({ outcome: "succeeded" });
    const done = await s.store.mustGet(job.id);
    expect(done).toMatchObject({ status: "succeeded", attempts: 2 });
    expect(done.history.map((h) => h.worker)).toEqual(["w-cut-off", "w-next"]);
    doc.destroy();
  });
});
