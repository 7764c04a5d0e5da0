/**
 * The limits under load, through real workers (ten Fargate-style pollers of four slots each: 40
 * at once) on dynalite and fauxqs: the handler's own ledger says how many keyed jobs ran at once
 * and when each attempt started, DynamoDB's records say every job ended after one attempt.
 */
import { laneOf } from "../core/config.js";
import { z } from "zod";
import { afterEach, describe, expect, test } from "vitest";
import { buildServices, type Services } from "../core/services.js";
import { loadRuntime } from "../core/runtime.js";
import { MemoryMetrics } from "../core/metrics.js";
import { defineJob, Registry } from "../core/registry.js";
import type { Job } from "../core/job.js";
import { startFargateWorker, type FargateWorker } from "../functions/fargate.js";
import { useEmulators, waitFor } from "./support/emulators.js";

const env = useEmulators("limits-load");
const quiet = { info() {}, warn() {}, error() {} };
const workers: FargateWorker[] = [];

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop({ force: true })));
});

/** What the handlers saw, in this process: every start and end, and the most keyed jobs running at once. */
class Ledger {
  starts = new Map<string, number[]>();
  running = 0;
  maxRunning = 0;
  ended = new Map<string, number>();

  start(id: string, keyed: boolean): void {
    this.starts.set(id, [...(this.starts.get(id) ?? []), Date.now()]);
    if (keyed) this.maxRunning = Math.max(this.maxRunning, ++this.running);
  }

  end(id: string, keyed: boolean): void {
    if (keyed) this.running--;
    this.ended.set(id, Date.now());
  }
}

/** `workMs` for a keyed job's handler; `plainMs` for an unkeyed one's. */
function servicesWith(ledger: Ledger, workMs: number, plainMs = workMs): Services {
  const work = defineJob({
    name: "load.work",
    input: z.object({ keyed: z.boolean() }),
    runsOn: "lambda",
    handler: async (input, ctx) => {
      ledger.start(ctx.jobId, input.keyed);
      try {
        await new Promise((r) => setTimeout(r, input.keyed ? workMs : plainMs)); // the job's own work
        return { ok: true };
      } finally {
        ledger.end(ctx.jobId, input.keyed);
      }
    },
  });
  const cfg = loadRuntime({ ...env.emu.env, WARDEN_LEASE_SECONDS: "10" });
  return buildServices(cfg, { doc: env.doc, sqs: env.sqs, metrics: new MemoryMetrics(), registry: new Registry().register(work) });
}

async function submitAll(s: Services, specs: { keyed: boolean; key?: string }[]): Promise<Job[]> {
  const jobs: Job[] = [];
  for (let i = 0; i < specs.length; i += 25) {
    const batch = await Promise.all(
      specs.slice(i, i + 25).map(async (x) => {
        const { job } = await s.store.create({ owner: "load", type: "load.work", queue: "default", input: { keyed: x.keyed }, maxAttempts: 3, timeoutMs: 600_000, ...(x.key ? { concurrencyKey: x.key } : {}) });
        return job;
      }),
    );
    await s.queue.send(laneOf({ queue: "default" }), batch.map((j) => j.id));
    jobs.push(...batch);
  }
  return jobs;
}

function startWorkers(s: Services, n: number): void {
  for (let i = 0; i < n; i++) workers.push(startFargateWorker(s, { workerId: `load-${i}-${Math.random().toString(36).slice(2, 6)}`, queue: "default", concurrency: 4, pollWaitSeconds: 1, log: quiet }));
}

async function allEnded(s: Services, ids: string[]): Promise<Job[]> {
  return (await waitFor(async () => {
    const jobs = await s.store.recordsOf(ids);
    return jobs.length === ids.length && jobs.every((j) => j.status === "succeeded") ? jobs : undefined;
  }, 240_000, "every job to succeed")) as Job[];
}

describe("limits under load", () => {
  test("40 workers, 500 jobs with a key limited to 3 among 500 without: never more than 3 keyed run at once, each job runs once, and the unkeyed are not held behind them", async () => {
    const ledger = new Ledger();
    // A keyed run outlasts the hand-off of a slot (a release, a wake, a doorbell, a claim: a few
    // hundred ms on a loaded machine), so that the three slots' runs overlap and the ledger can
    // see the limit reached, not only not passed.
    const s = servicesWith(ledger, 250, 100);
    await s.store.controls.setLimit("key:tenant-acme", { concurrency: 3 }, "test", Date.now());
    const specs = Array.from({ length: 1000 }, (_, i) => (i % 2 ? { keyed: true, key: "tenant-acme" } : { keyed: false }));
    const jobs = await submitAll(s, specs);
    startWorkers(s, 10);
    const keyed = new Set(jobs.filter((j) => j.concurrencyKey).map((j) => j.id));
    const unkeyed = jobs.filter((j) => !keyed.has(j.id)).map((j) => j.id);

    const plain = await allEnded(s, unkeyed);
    const keyedLeft = [...keyed].filter((id) => !ledger.ended.has(id)).length;
    const done = await allEnded(s, [...keyed]);

    expect(ledger.maxRunning).toBe(3);
    for (const j of [...plain, ...done]) {
      expect(ledger.starts.get(j.id), j.id).toHaveLength(1); // run once: no second start
      expect(j.attempts, j.id).toBe(1); // a hold spends no attempt
    }
    // The unkeyed jobs finished while most keyed ones still waited for a slot: the limit held back only its own.
    expect(keyedLeft).toBeGreaterThan(250);
    // Every slot given back: a run gives its slot back right after its job's end is written.
    await waitFor(async () => (Object.keys(await s.store.controls.holders("key:tenant-acme")).length ? undefined : true), 10_000, "every slot given back");
  }, 300_000);

  test("a rate limit of 10 starts a second: no one-second window holds more than 10 attempt starts", async () => {
    const ledger = new Ledger();
    const s = servicesWith(ledger, 5);
    await s.store.controls.setLimit("key:api-x", { rate: { starts: 10, perMs: 1_000 } }, "test", Date.now());
    // Ninety starts: at 10 a second they span 8 s at least, so the ceiling is tried over many
    // windows. How close the pace comes to the limit is a figure, not a pass: `npm run bench -- --only rate-pace`.
    const jobs = await submitAll(s, Array.from({ length: 90 }, () => ({ keyed: false, key: "api-x" })));
    startWorkers(s, 10);
    const done = await allEnded(s, jobs.map((j) => j.id));
    // The attempt's own start, as its claim wrote it (the time the rate log counted).
    const starts = done.map((j) => j.history[0]!.startedAt).sort((a, b) => a - b);
    let busiest = 0;
    for (let i = 0; i < starts.length; i++) {
      let n = 0;
      while (i + n < starts.length && starts[i + n]! < starts[i]! + 1_000) n++;
      busiest = Math.max(busiest, n);
    }
    expect(busiest).toBeLessThanOrEqual(10);
    expect(starts.at(-1)! - starts[0]!).toBeGreaterThanOrEqual(8_000); // 90 starts at 10 a second take 8 s at least
    for (const j of done) expect(j.attempts).toBe(1);
  }, 120_000);
});
