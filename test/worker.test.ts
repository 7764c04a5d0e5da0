/**
 * The Lambda worker (functions/worker.ts) fed by a stand-in for Lambda's SQS event source over
 * real fauxqs queues: a long job handed back before each deadline and finished over several
 * invocations, messages for unknown or finished jobs, duplicates, a store that cannot be reached,
 * and a job that outgrows Lambda moving to the large queue.
 */
import { laneOf } from "../core/config.js";
import { describe, expect, test } from "vitest";
import type { Context, SQSEvent } from "aws-lambda";
import type { QueuedJob, SucceededJob } from "../core/job.js";
import { encodeMessage } from "../core/queue.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices } from "../core/services.js";
import { makeHandler } from "../functions/worker.js";
import { useEmulators, waitFor } from "./support/emulators.js";
import { fakeContext, pollOnce, submit, testServices } from "./worker-support.js";

const env = useEmulators("worker");
const quiet = { info() {}, warn() {}, error() {} };

const record = (body: string, messageId = `m-${Math.random().toString(36).slice(2)}`): SQSEvent["Records"][number] => ({
  messageId,
  receiptHandle: `rh-${messageId}`,
  body,
  attributes: { ApproximateReceiveCount: "1", SentTimestamp: String(Date.now()), SenderId: "t", ApproximateFirstReceiveTimestamp: String(Date.now()) },
  messageAttributes: {},
  md5OfBody: "",
  eventSource: "aws:sqs",
  eventSourceARN: "arn:aws:sqs:us-east-1:000000000000:t",
  awsRegion: "us-east-1",
});

describe("the Lambda deadline", () => {
  test("a 10 s job with 3 s per invocation is checkpointed, released, re-enqueued and finished over several invocations", async () => {
    const s = testServices(env);
    const handler = makeHandler(s, { workerId: "lambda-deadline", deadlineMarginMs: 1_000, memory: false, log: quiet });
    const job = await submit(s, "demo.sleep", { items: 20, msPerItem: 500, checkpointEvery: 4 });
    let invocations = 0;
    const final = await waitFor(async () => {
      const { jobIds } = await pollOnce(s, handler, { remainingMs: 3_000 });
      if (jobIds.includes(job.id)) {
        invocations++;
        // Whatever happened in the invocation, nothing is left running once it returns.
        const j = await s.store.mustGet(job.id);
        expect(["queued", "succeeded"]).toContain(j.status);
      }
      const j = await s.store.mustGet(job.id);
      return j.status === "succeeded" ? (j as SucceededJob) : undefined;
    }, 45_000, "the long job to finish");
    expect(invocations).toBeGreaterThanOrEqual(4);
    const result = final.result as { items: number; resumedFrom: number };
    expect(result.items).toBe(20);
    expect(result.resumedFrom).toBeGreaterThan(0);
    // Hand-backs spend no attempt: every invocation but the last released the job.
    expect(final.attempts).toBe(1);
    const outcomes = final.history.map((h) => h.outcome);
    expect(outcomes.at(-1)).toBe("succeeded");
    expect(outcomes.filter((o) => o === "released").length).toBeGreaterThanOrEqual(3);
    expect(final.queue).toBe("default");
  }, 60_000);

  test("a job that reaches the deadline without any checkpoint moves to the large queue", async () => {
    const s = testServices(env);
    const handler = makeHandler(s, { workerId: "lambda-outgrown", deadlineMarginMs: 1_000, limits: { abortGraceMs: 200 }, memory: false, log: quiet });
    // demo.memory may move to Fargate (runsOn auto); holding its memory, it saves no checkpoint.
    const job = await submit(s, "demo.memory", { mb: 8, holdMs: 60_000 }, { ring: false });
    expect(job.queue).toBe("default");
    const res = await handler({ Records: [record(encodeMessage({ jobId: job.id, queue: "default" }))] }, fakeContext(1_500));
    expect(res.batchItemFailures).toEqual([]);
    const j = (await s.store.mustGet(job.id)) as QueuedJob;
    expect(j.status).toBe("queued");
    expect(j.queue).toBe("large");
    expect(j.history.at(-1)?.outcome).toBe("released");
    // Moving without progress spends the attempt, so a job that never progresses stays bounded.
    expect(j.attempts).toBe(1);
    const rung = await s.queue.receive(laneOf({ queue: "large" }), { waitSeconds: 1 });
    expect(rung.map((m) => m.jobId)).toContain(job.id);
    for (const m of rung) await s.queue.delete(m.lane, m.receiptHandle);
  });
});

describe("messages", () => {
  test("a message for an unknown job, a finished job or no job at all is deleted without effect", async () => {
    const s = testServices(env);
    const handler = makeHandler(s, { workerId: "lambda-msgs", memory: false, log: quiet });
    const done = await submit(s, "demo.sleep", { items: 1, msPerItem: 1 }, { ring: false });
    await handler({ Records: [record(encodeMessage({ jobId: done.id, queue: "default" }))] }, fakeContext(60_000));
    const finished = await s.store.mustGet(done.id);
    expect(finished.status).toBe("succeeded");
    const started = s.metrics.sum("JobsStarted");

    await s.queue.send(laneOf({ queue: "default" }), [done.id, "01JD0000000000000000000000"]);
    await s.sqs.send(new (await import("@aws-sdk/client-sqs")).SendMessageCommand({ QueueUrl: s.cfg.queues.default.queue, MessageBody: "not json" }));
    let handled = 0;
    await waitFor(async () => {
      const { jobIds, failures } = await pollOnce(s, handler);
      expect(failures).toEqual([]);
      handled += jobIds.length;
      return handled >= 3;
    }, 10_000, "three messages");
    const depth = await s.queue.depth("default");
    expect(depth.visible + depth.inFlight).toBe(0);
    const after = await s.store.mustGet(done.id);
    expect(after).toEqual(finished);
    expect(s.metrics.sum("JobsStarted")).toBe(started);
  });

  test("the same message delivered twice (even at once) runs the job once", async () => {
    const s = testServices(env);
    const handler = makeHandler(s, { workerId: "lambda-dup", memory: false, log: quiet });
    const other = makeHandler(s, { workerId: "lambda-dup-2", memory: false, log: quiet });
    const job = await submit(s, "demo.sleep", { items: 3, msPerItem: 50 }, { ring: false });
    const body = encodeMessage({ jobId: job.id, queue: "default" });
    const [a, b] = await Promise.all([
      handler({ Records: [record(body, "dup-1")] }, fakeContext(60_000)),
      other({ Records: [record(body, "dup-1")] }, fakeContext(60_000)),
    ]);
    expect(a.batchItemFailures).toEqual([]);
    expect(b.batchItemFailures).toEqual([]);
    // And once more after it finished.
    const c = await handler({ Records: [record(body, "dup-1")] }, fakeContext(60_000));
    expect(c.batchItemFailures).toEqual([]);
    const j = (await s.store.mustGet(job.id)) as SucceededJob;
    expect(j.status).toBe("succeeded");
    expect(j.attempts).toBe(1);
    expect(j.history).toHaveLength(1);
    expect(s.metrics.sum("JobsStarted")).toBe(1);
    expect(s.metrics.sum("ClaimConflicts")).toBe(1);
  });

  test("records run concurrently within a batch", async () => {
    const s = testServices(env);
    const handler = makeHandler(s, { workerId: "lambda-batch", memory: false, log: quiet });
    const jobs = await Promise.all(Array.from({ length: 5 }, () => submit(s, "demo.sleep", { items: 4, msPerItem: 250 }, { ring: false })));
    const t0 = Date.now();
    const res = await handler({ Records: jobs.map((j) => record(encodeMessage({ jobId: j.id, queue: "default" }))) }, fakeContext(60_000));
    expect(res.batchItemFailures).toEqual([]);
    // Five one-second jobs one after another would take five seconds.
    expect(Date.now() - t0).toBeLessThan(3_500);
    for (const j of jobs) expect((await s.store.mustGet(j.id)).status).toBe("succeeded");
  });

  test("a record the worker cannot process at all (the store unreachable) is reported as a batch item failure", async () => {
    // A real client pointed at a port where nothing listens: the store is unreachable.
    const cfg = loadRuntime({ ...env.emu.env, WARDEN_DYNAMODB_ENDPOINT: "http://127.0.0.1:9" });
    const s = buildServices(cfg, { sqs: env.sqs });
    const handler = makeHandler(s, { workerId: "lambda-down", memory: false, log: quiet });
    const ok = record("garbage", "m-garbage");
    const bad = record(encodeMessage({ jobId: "01JD0000000000000000000000", queue: "default" }), "m-store-down");
    const res = await handler({ Records: [ok, bad] }, fakeContext(60_000) as Context);
    expect(res.batchItemFailures).toEqual([{ itemIdentifier: "m-store-down" }]);
    s.doc.destroy();
  });
});
