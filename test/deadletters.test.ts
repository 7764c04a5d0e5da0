/**
 * Dead letters against fauxqs: messages that failed every delivery show in the stuck report, a
 * peek shows their job ids without consuming them, and a redrive (the receive-send-delete mover)
 * puts them back on their queue, after which the jobs run through the real runner.
 */
import { expect, test } from "vitest";
import { QUEUES, laneOf } from "../core/config.js";
import { DeadLetters } from "../core/deadletters.js";
import { loadRuntime } from "../core/runtime.js";
import { Runner } from "../core/runner.js";
import { buildServices } from "../core/services.js";
import { stuckReport } from "../core/stuck.js";
import { useEmulators, waitFor } from "./support/emulators.js";

const env = useEmulators("dlq");

const quiet = { info() {}, warn() {}, error() {} };

test("a DLQ holding messages shows in the stuck report; a redrive moves them back and the jobs then run", async () => {
  const s = buildServices(loadRuntime(env.emu.env), { doc: env.doc, sqs: env.sqs });
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const { job } = await s.store.create({ owner: "t", type: "demo.sleep", queue: "default", input: { items: 2, msPerItem: 1 }, maxAttempts: 3, timeoutMs: 60_000 });
    ids.push(job.id);
  }
  await s.queue.send(laneOf({ queue: "default" }), ids);

  // A consumer that receives and never deletes (it crashes every time): after maxReceiveCount
  // deliveries SQS moves each message to the DLQ.
  await waitFor(async () => {
    await s.queue.receive(laneOf({ queue: "default" }), { waitSeconds: 0, visibilitySeconds: 0 });
    const dlq = await s.queue.depth("default", { dlq: true });
    return dlq.visible === 3;
  }, 15_000, "three messages in the default DLQ");
  expect(await s.queue.depth("default")).toEqual({ visible: 0, inFlight: 0, delayed: 0 });

  const report = await stuckReport(s);
  expect(report.deadLetters).toEqual({ default: 3, large: 0 });

  const dl = new DeadLetters(s.queue);
  const first = await dl.peek(10);
  expect(first.queues.default.count).toBe(3);
  expect(first.queues.large).toEqual({ count: 0, sample: [] });
  expect(new Set(first.queues.default.sample.map((x) => x.jobId))).toEqual(new Set(ids));
  for (const x of first.queues.default.sample) {
    expect(x.receiveCount).toBeGreaterThanOrEqual(QUEUES.default.maxReceiveCount);
    expect(Date.parse(x.firstFailedAt)).toBeLessThanOrEqual(Date.now());
  }
  // Not consumed: still there, and visible again at once (nothing waits out a visibility timeout).
  expect(await s.queue.depth("default", { dlq: true })).toEqual({ visible: 3, inFlight: 0, delayed: 0 });
  const second = await dl.peek(2);
  expect(second.queues.default.count).toBe(3);
  expect(second.queues.default.sample).toHaveLength(2);
  expect((await stuckReport(s)).deadLetters.default).toBe(3);

  // Nothing consumes a DLQ by itself; a person redrives it.
  expect(await dl.redrive("default")).toBe(3);
  expect(await s.queue.depth("default", { dlq: true })).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
  expect((await s.queue.depth("default")).visible).toBe(3);
  expect((await stuckReport(s)).deadLetters.default).toBe(0);
  expect(await dl.redrive("default")).toBe(0);

  // The jobs then run: a worker takes the redriven messages and runs them through core/runner.ts.
  const runner = new Runner(s, { workerId: "dlq-test", kind: "lambda", leaseMs: 10_000, log: quiet });
  const ran: string[] = [];
  for (;;) {
    const got = await s.queue.receive(laneOf({ queue: "default" }), { waitSeconds: 0, visibilitySeconds: 60 });
    if (!got.length) break;
    for (const m of got) {
      const out = await runner.run(m.jobId, "default");
      expect(out).toMatchObject({ claimed: true, outcome: "succeeded" });
      ran.push(m.jobId);
      await s.queue.delete(m.lane, m.receiptHandle);
    }
  }
  expect(new Set(ran)).toEqual(new Set(ids));
  for (const id of ids) expect(await s.store.mustGet(id)).toMatchObject({ status: "succeeded", result: { items: 2, resumedFrom: 0 } });
});
