/**
 * Two sweeps at once over the same 200 overdue jobs: every action is a conditional write on what
 * the sweep read, so each job is repaired exactly once and gets exactly one new message. Counted
 * two ways: the successful writes each sweeper's DynamoDB client saw, and the SQS messages
 * actually on the queue afterwards.
 */
import { laneOf } from "../core/config.js";
import { expect, test } from "vitest";
import { dynamoClient, sqsClient } from "../core/aws.js";
import { MemoryMetrics } from "../core/metrics.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices } from "../core/services.js";
import { stuckReport } from "../core/stuck.js";
import { Sweeper, type SweepAction } from "../core/sweeper.js";
import { manualClock, useEmulators } from "./support/emulators.js";

const env = useEmulators("sweep-race");

/** Records each UpdateItem that succeeded, by job id: a recorder, not a mock. */
function recordWrites(client: { middlewareStack: { add: Function } }): Map<string, number> {
  const writes = new Map<string, number>();
  client.middlewareStack.add(
    (next: (a: unknown) => Promise<unknown>, context: { commandName?: string }) => async (args: { input?: { Key?: { id?: unknown } } }) => {
      const out = await next(args);
      if (context.commandName === "UpdateItemCommand") {
        const raw = args.input?.Key?.id as string | { S?: string } | undefined;
        const id = typeof raw === "string" ? raw : (raw?.S ?? "?");
        writes.set(id, (writes.get(id) ?? 0) + 1);
      }
      return out;
    },
    { step: "initialize", name: "recordWrites" },
  );
  return writes;
}

test("two concurrent sweeps over 200 overdue jobs act on each exactly once", async () => {
  const clock = manualClock(Date.now());
  const cfg = loadRuntime({ ...env.emu.env, WARDEN_START_DEADLINE_SECONDS: "60" });
  const setup = buildServices(cfg, { doc: env.doc, sqs: env.sqs, now: clock.now });

  const lost: string[] = []; // written, message never sent
  const dead: string[] = []; // claimed by a worker that died
  for (let i = 0; i < 200; i++) {
    const { job } = await setup.store.create({ owner: "t", type: "demo.sleep", queue: i % 4 === 0 ? "large" : "default", input: {}, maxAttempts: 3, timeoutMs: 3_600_000 });
    if (i % 2) {
      const c = await setup.store.claim(job.id, `w${i}`, 30_000);
      expect(c.ok).toBe(true);
      dead.push(job.id);
    } else lost.push(job.id);
  }
  clock.advance(61_000);
  const report = await stuckReport(setup);
  expect(report.states.queued.count).toBe(100);
  expect(report.states.running.count).toBe(100);

  // Two sweepers as two Lambda invocations would be: their own clients, the same table and queues.
  const sweepers = [0, 1].map(() => {
    const doc = dynamoClient({ dynamodb: env.emu.dynamoEndpoint });
    const sqs = sqsClient({ sqs: env.emu.sqsEndpoint });
    const writes = recordWrites(doc);
    const metrics = new MemoryMetrics(clock.now);
    const s = buildServices(cfg, { doc, sqs, now: clock.now, metrics });
    // A generous time budget: this test is about exactly-once, and a loaded CI machine must not
    // cut a sweep short (running jobs sort first, so a cut sweep would re-send nothing).
    return { doc, sqs, writes, metrics, sweeper: new Sweeper(s, { pageSize: 60, concurrency: 8, budgetMs: 60_000 }) };
  });
  const [a, b] = await Promise.all(sweepers.map((x) => x.sweeper.sweep()));

  const sum = (action: SweepAction) => a!.counts[action] + b!.counts[action];
  expect(sum("resent")).toBe(100);
  expect(sum("reclaimed")).toBe(100);
  expect(sum("failedExhausted") + sum("failedTimeout") + sum("cancelled")).toBe(0);
  const touchedA = Object.entries(a!.touched).filter(([k]) => k !== "skipped").flatMap(([, ids]) => ids ?? []);
  const touchedB = Object.entries(b!.touched).filter(([k]) => k !== "skipped").flatMap(([, ids]) => ids ?? []);
  expect(touchedA.filter((id) => touchedB.includes(id))).toEqual([]); // nobody acted twice
  expect(new Set([...touchedA, ...touchedB])).toEqual(new Set([...lost, ...dead]));
  console.log(`sweep A acted on ${touchedA.length}, skipped ${a!.counts.skipped}; sweep B acted on ${touchedB.length}, skipped ${b!.counts.skipped}`);

  // Transitions: exactly one successful conditional write per job across both sweepers.
  const writes = new Map<string, number>();
  for (const x of sweepers) for (const [id, n] of x.writes) writes.set(id, (writes.get(id) ?? 0) + n);
  expect(writes.size).toBe(200);
  expect([...writes.values()].every((n) => n === 1)).toBe(true);
  for (const id of dead) expect(await setup.store.mustGet(id)).toMatchObject({ status: "queued", token: 2, attempts: 1 });
  for (const id of lost) expect(await setup.store.mustGet(id)).toMatchObject({ status: "queued", token: 0, dueAt: clock.now() + 60_000 });

  // Messages: exactly one per job on the queues.
  const depth = async () => {
    const d = await Promise.all((["default", "large"] as const).map((q) => setup.queue.depth(q)));
    return d.reduce((n, x) => n + x.visible + x.inFlight + x.delayed, 0);
  };
  expect(await depth()).toBe(200);
  const seen = new Map<string, number>();
  for (const q of ["default", "large"] as const) {
    for (;;) {
      const got = await setup.queue.receive(laneOf({ queue: q }), { waitSeconds: 0, visibilitySeconds: 60 });
      if (!got.length) break;
      for (const m of got) {
        seen.set(m.jobId, (seen.get(m.jobId) ?? 0) + 1);
        await setup.queue.delete(m.lane, m.receiptHandle);
      }
    }
  }
  expect(seen.size).toBe(200);
  expect([...seen.values()].every((n) => n === 1)).toBe(true);

  // Metrics from both sweepers add up to the same totals.
  const total = (name: "Reclaimed" | "Requeued") => sweepers.reduce((n, x) => n + x.metrics.sum(name), 0);
  expect(total("Reclaimed")).toBe(100);
  expect(total("Requeued")).toBe(100);

  // And a third sweep finds nothing left to do.
  const third = await new Sweeper(setup).sweep();
  expect(third.read).toBe(0);
  for (const x of sweepers) {
    x.doc.destroy();
    x.sqs.destroy();
  }
});
