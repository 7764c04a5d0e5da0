/**
 * Recovery in seconds: a worker the platform reports dead has its jobs run again at once, not
 * when their leases run out (core/deaths.ts), and a death event that is late, repeated, or about
 * a worker that no longer holds the job touches nothing.
 */
import { gzipSync } from "node:zlib";
import { ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { describe, expect, test } from "vitest";
import { countCalls, dynamoClient } from "../core/aws.js";
import { TABLE } from "../core/config.js";
import { MemoryMetrics } from "../core/metrics.js";
import { ACCESS, type TableAction } from "../stacks/access.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import { DeathReaper } from "../core/deaths.js";
import { deathsOf, ecsDeath, fargateWorkerId, lambdaDeaths, lambdaWorkerId } from "../core/death-events.js";
import type { CancelledJob, FailedJob, Lease, QueuedJob } from "../core/job.js";
import type { QueueName } from "../core/config.js";
import { decodeMessage } from "../core/queue.js";
import { manualClock, useEmulators, waitFor } from "./support/emulators.js";

const env = useEmulators("deaths");
const LEASE_MS = 60_000;

function setup() {
  const clock = manualClock();
  const cfg = loadRuntime({ ...env.emu.env, WARDEN_LEASE_SECONDS: String(LEASE_MS / 1000) });
  const s: Services = buildServices(cfg, { doc: env.doc, sqs: env.sqs, now: clock.now, metrics: new MemoryMetrics() });
  return { s, clock, reaper: new DeathReaper(s) };
}

async function running(s: Services, workerId: string, o: { maxAttempts?: number; queue?: QueueName } = {}): Promise<Lease> {
  const { job } = await s.store.create({ owner: "deaths", type: "t.any", queue: o.queue ?? "large", input: { n: 1 }, maxAttempts: o.maxAttempts ?? 3, timeoutMs: 3_600_000 });
  const c = await s.store.claim(job.id, workerId, LEASE_MS);
  if (!c.ok) throw new Error(`claim refused: ${c.reason}`);
  return c.lease;
}

async function doorbells(queue: QueueName = "large"): Promise<string[]> {
  const out = await env.sqs.send(new ReceiveMessageCommand({ QueueUrl: env.emu.queues[queue].queue, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
  return (out.Messages ?? []).map((m) => decodeMessage(m.Body)?.jobId ?? "");
}

describe("a dead worker's jobs", () => {
  test("are queued again at its death event, long before their leases run out, and their doorbells ring", async () => {
    const { s, clock, reaper } = setup();
    const a = await running(s, "ecs:dead-1");
    const b = await running(s, "ecs:dead-1");
    const other = await running(s, "ecs:alive-1");
    clock.advance(1_000); // 59 s of lease left
    const r = await reaper.onDeath({ workerId: "ecs:dead-1", at: clock.now(), reason: "EssentialContainerExited: exit code 137" });
    expect(r.requeued.sort()).toEqual([a.jobId, b.jobId].sort());
    for (const id of [a.jobId, b.jobId]) {
      const job = (await s.store.getRecord(id)) as QueuedJob;
      expect(job.status).toBe("queued");
      expect(job.error).toMatchObject({ code: "worker_lost" });
      expect(job.error?.message).toMatch(/worker ecs:dead-1 died at .* \(EssentialContainerExited: exit code 137\)/);
      expect(job.history.at(-1)?.outcome).toBe("worker_lost");
    }
    expect((await s.store.getRecord(other.jobId))?.status).toBe("running");
    expect((await doorbells()).filter((id) => id === a.jobId || id === b.jobId).sort()).toEqual([a.jobId, b.jobId].sort());
    // The dead worker's fence is gone: it could not write anything now.
    await expect(s.store.heartbeat(a)).rejects.toThrow(/claimed it after this lease expired|is queued now/);
  });

  test("a reclaimed job's doorbell rings again a moment later: the dead worker's own long poll, still open at the queue, takes the first", async () => {
    const { s, clock, reaper } = setup();
    // On a queue no other test here rings (their second doorbells arrive 2 s late).
    const lease = await running(s, "ecs:dead-poll", { queue: "default" });
    // The dead worker's poll: open at the queue when the event comes, its answer never read.
    const zombie = env.sqs.send(new ReceiveMessageCommand({ QueueUrl: env.emu.queues.default.queue, MaxNumberOfMessages: 1, WaitTimeSeconds: 10 }));
    await new Promise((r) => setTimeout(r, 200)); // let it reach the queue
    await reaper.onDeath({ workerId: "ecs:dead-poll", at: clock.now(), reason: "stopped" });
    const swallowed = (await zombie).Messages?.map((m) => decodeMessage(m.Body)?.jobId);
    expect(swallowed).toEqual([lease.jobId]);
    const live = await waitFor(async () => ((await doorbells("default")).includes(lease.jobId) ? true : undefined), 6_000, "the second doorbell");
    expect(live).toBe(true);
  });

  test("a repeated death event finds nothing left to do", async () => {
    const { s, clock, reaper } = setup();
    const lease = await running(s, "ecs:dead-2");
    await reaper.onDeath({ workerId: "ecs:dead-2", at: clock.now(), reason: "stopped" });
    const after = await s.store.getRecord(lease.jobId);
    const again = await reaper.onDeath({ workerId: "ecs:dead-2", at: clock.now(), reason: "stopped" });
    expect(again.requeued).toEqual([]);
    expect(await s.store.getRecord(lease.jobId)).toEqual(after);
  });

  test("a death event that arrives after the job moved to another worker touches nothing, even through a stale index", async () => {
    const { s, clock, reaper } = setup();
    const lease = await running(s, "ecs:dead-3");
    await s.store.release(lease);
    const c = await s.store.claim(lease.jobId, "ecs:alive-3", LEASE_MS);
    expect(c.ok).toBe(true);
    const late = { workerId: "ecs:dead-3", at: clock.now(), reason: "stopped" };
    expect((await reaper.onDeath(late)).requeued).toEqual([]);
    // As if the index still named the dead worker: the decision on the record refuses it.
    expect(await s.store.reclaimDead(lease.jobId, late)).toBeUndefined();
    expect(await s.store.getRecord(lease.jobId)).toMatchObject({ status: "running", workerId: "ecs:alive-3" });
  });

  test("a job a worker of the same id claimed after the death (a restarted runtime in the same Lambda environment) is kept", async () => {
    const { s, clock, reaper } = setup();
    const died = clock.now();
    clock.advance(500);
    const lease = await running(s, "lambda:env-4");
    const r = await reaper.onDeath({ workerId: "lambda:env-4", at: died, reason: "Runtime exited with error: signal: killed" });
    expect(r).toMatchObject({ found: 1, requeued: [], untouched: [lease.jobId] });
    expect((await s.store.getRecord(lease.jobId))?.status).toBe("running");
  });

  test("a cancel requested before the death ends the job cancelled; a job with no attempts left ends failed", async () => {
    const { s, clock, reaper } = setup();
    const cancelling = await running(s, "ecs:dead-5");
    await s.store.requestCancel(cancelling.jobId);
    const last = await running(s, "ecs:dead-5", { maxAttempts: 1 });
    const r = await reaper.onDeath({ workerId: "ecs:dead-5", at: clock.now(), reason: "OutOfMemoryError" });
    expect(r.ended.sort()).toEqual([cancelling.jobId, last.jobId].sort());
    expect(((await s.store.getRecord(cancelling.jobId)) as CancelledJob).status).toBe("cancelled");
    const failed = (await s.store.getRecord(last.jobId)) as FailedJob;
    expect(failed.error.code).toBe("attempts_exhausted");
    expect(failed.error.message).toMatch(/OutOfMemoryError/);
  });

  test("the directory lists the dead worker as dead, holding nothing, until it reports again", async () => {
    const { s, clock, reaper } = setup();
    const lease = await running(s, "ecs:dead-6");
    await s.workers.report({ id: "ecs:dead-6", kind: "fargate", startedAt: clock.now(), jobs: [lease.jobId] });
    await reaper.onDeath({ workerId: "ecs:dead-6", at: clock.now(), reason: "stopped" });
    const listed = (await s.workers.list()).find((w) => w.id === "ecs:dead-6");
    expect(listed).toMatchObject({ jobs: [], diedAt: clock.now(), deathReason: "stopped" });
    await s.workers.report({ id: "ecs:dead-6", kind: "fargate", startedAt: clock.now(), jobs: [] });
    expect((await s.workers.list()).find((w) => w.id === "ecs:dead-6")?.diedAt).toBeUndefined();
  });
});

describe("the platform's death events", () => {
  const taskArn = "arn:aws:ecs:us-east-1:123456789012:task/warden-prod-cluster/0f1e2d3c4b5a69788796a5b4c3d2e1f0";

  test("an ECS task-stopped event names the worker the task's id gives, when it stopped and why", () => {
    const event = {
      source: "aws.ecs",
      "detail-type": "ECS Task State Change",
      time: "2026-12-01T10:00:05Z",
      detail: { taskArn, lastStatus: "STOPPED", stoppedAt: "2026-12-01T10:00:03.250Z", stopCode: "EssentialContainerExited", stoppedReason: "Essential container in task exited" },
    };
    expect(ecsDeath(event)).toEqual({ workerId: fargateWorkerId(taskArn), at: Date.parse("2026-12-01T10:00:03.250Z"), reason: "EssentialContainerExited: Essential container in task exited" });
    expect(fargateWorkerId(taskArn)).toBe("ecs:0f1e2d3c4b5a69788796a5b4c3d2e1f0");
    expect(deathsOf({ ...event, detail: { ...event.detail, lastStatus: "RUNNING" } })).toEqual([]);
  });

  test("a Logs subscription delivery of a Lambda crash or timeout names the worker its log stream gives; a line that only quotes those words is not a death", () => {
    const logStream = "2026/12/01/[$LATEST]a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const payload = {
      messageType: "DATA_MESSAGE",
      logGroup: "/aws/lambda/warden-prod-worker",
      logStream,
      logEvents: [
        { id: "1", timestamp: 1_796_000_000_000, message: "RequestId: 3f2c9a1e-5b7d-4c8e-9f01-23456789abcd Error: Runtime exited with error: signal: killed\nRuntime.ExitError" },
        { id: "2", timestamp: 1_796_000_001_000, message: "an ordinary line" },
        // A live environment quoting another function's timeout, in Warden's own log line: not a death.
        { id: "3", timestamp: 1_796_000_002_000, message: '{"level":"WARN","message":"the handler failed; retrying","error":"Task timed out after 3.00 seconds"}' },
        { id: "4", timestamp: 1_796_000_003_000, message: "Error: downstream said: Runtime exited with error" },
        { id: "5", timestamp: 1_796_000_004_000, message: "2026-12-01T10:00:04.000Z 3f2c9a1e-5b7d-4c8e-9f01-23456789abcd Task timed out after 120.05 seconds" },
      ],
    };
    const deaths = lambdaDeaths({ awslogs: { data: gzipSync(JSON.stringify(payload)).toString("base64") } });
    expect(deaths).toEqual([
      { workerId: "lambda:a1b2c3d4e5f60718293a4b5c6d7e8f90", at: 1_796_000_000_000, reason: "RequestId: 3f2c9a1e-5b7d-4c8e-9f01-23456789abcd Error: Runtime exited with error: signal: killed" },
      { workerId: "lambda:a1b2c3d4e5f60718293a4b5c6d7e8f90", at: 1_796_000_004_000, reason: "2026-12-01T10:00:04.000Z 3f2c9a1e-5b7d-4c8e-9f01-23456789abcd Task timed out after 120.05 seconds" },
    ]);
    expect(lambdaWorkerId(logStream)).toBe(deaths[0]!.workerId);
    expect(lambdaDeaths({ awslogs: { data: gzipSync(JSON.stringify({ messageType: "CONTROL_MESSAGE", logEvents: [] })).toString("base64") } })).toEqual([]);
  });
});


describe("the reaper's grants", () => {
  test("every DynamoDB call the reaper makes is one its IAM policy grants", async () => {
    const doc = dynamoClient({ dynamodb: env.emu.dynamoEndpoint });
    const seen = countCalls(doc);
    try {
      const { s, clock } = setup();
      const reaperServices = buildServices(loadRuntime({ ...env.emu.env, WARDEN_LEASE_SECONDS: "60" }), { doc, sqs: env.sqs, now: clock.now, metrics: new MemoryMetrics() });
      await s.workers.report({ id: "ecs:grants", kind: "fargate", startedAt: clock.now(), jobs: [] });
      const lease = await running(s, "ecs:grants");
      await s.store.heartbeat(lease, { checkpoint: { pad: "c".repeat(2_000) } });
      await new DeathReaper(reaperServices).onDeath({ workerId: "ecs:grants", at: clock.now(), reason: "stopped" });
      expect((await s.store.getRecord(lease.jobId))?.status).toBe("queued");
    } finally {
      doc.destroy();
    }
    const calls = [...seen.keys()].map((c) => c.replace(/Command$/, ""));
    expect(calls.filter((c) => c !== "Query" && !ACCESS.reaper.table.includes(c as TableAction))).toEqual([]);
    // Its Query of the dead worker's jobs; and of the held jobs a reclaimed run's concurrency slots are handed to.
    expect(ACCESS.reaper.indexes).toEqual([TABLE.workerIndex.name, TABLE.holdIndex.name]);
  });
});
