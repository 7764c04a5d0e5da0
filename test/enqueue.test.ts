/**
 * Enqueue inside the caller's own transaction (core/enqueue.ts, docs/effects.md), on DynamoDB
 * Local: dynalite has no transactions. An application's own item and a job commit together or
 * not at all; the job runs within seconds of its ring, and by its start deadline (the sweeper's
 * resend) when the ring never comes; a retried transaction makes one job; a request POST /jobs
 * would refuse is refused before anything is written.
 */
import { GetCommand, TransactWriteCommand } from "@aws-sdk/lib-dynamodb";
import { z } from "zod";
import { beforeAll, describe, expect, test } from "vitest";
import { ApiError } from "../core/api/errors.js";
import { ValidationError } from "../core/errors.js";
import { Enqueue, type TransactPut } from "../core/enqueue.js";
import { MemoryMetrics } from "../core/metrics.js";
import { defineJob, Registry } from "../core/registry.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import { Sweeper } from "../core/sweeper.js";
import { makeHandler } from "../functions/worker.js";
import { ensureAppTable } from "../local/emulators.js";
import { useEmulators, waitFor } from "./support/emulators.js";
import { pollOnce } from "./worker-support.js";

const env = useEmulators("enqueue", { dynamodb: "dynamodb-local" });
const APP = "app-orders";
const quiet = { info() {}, warn() {}, error() {} };

const ship = defineJob({
  name: "orders.ship",
  input: z.object({ orderId: z.string(), note: z.string() }).strict(),
  runsOn: "lambda",
  handler: async (input) => ({ shipped: input.orderId, noteChars: input.note.length }),
});

function services(): Services {
  // A short start deadline, so the sweeper's resend of a job never rung comes within the test.
  const cfg = loadRuntime({ ...env.emu.env, WARDEN_LEASE_SECONDS: "5", WARDEN_START_DEADLINE_SECONDS: "2" });
  return buildServices(cfg, { doc: env.doc, sqs: env.sqs, metrics: new MemoryMetrics(), registry: new Registry().register(ship) });
}

/** The application's transaction: its own order item (new only) and the job's entries. */
const commit = (orderId: string, entries: TransactPut[]) =>
  env.doc.send(new TransactWriteCommand({ TransactItems: [{ Put: { TableName: APP, Item: { id: orderId, status: "paid" }, ConditionExpression: "attribute_not_exists(id)" } }, ...entries] }));

const order = async (id: string) => (await env.doc.send(new GetCommand({ TableName: APP, Key: { id }, ConsistentRead: true }))).Item;

/** Runs what the default queue's doorbells ring until the job has succeeded (the Lambda worker's path). */
async function runUntilSucceeded(s: Services, jobId: string, o: { sweeper?: Sweeper } = {}) {
  const handler = makeHandler(s, { workerId: "lambda-enqueue", memory: false, log: quiet });
  return waitFor(async () => {
    await o.sweeper?.sweep();
    await pollOnce(s, handler, { waitSeconds: 0 });
    const job = await s.store.mustGet(jobId);
    return job.status === "succeeded" ? job : undefined;
  }, 20_000, "the job to succeed");
}

beforeAll(async () => {
  await ensureAppTable(env.emu.dynamoEndpoint, APP);
});

describe("a job enqueued inside the application's transaction", () => {
  test("commits with the application's item, and runs within seconds once rung", async () => {
    const s = services();
    const enqueue = new Enqueue(s, "shop");
    const note = "fragile ".repeat(40); // larger than the record keeps inline: its value item rides in the transaction too
    const { job, entries } = enqueue.entries({ type: ship.name, input: { orderId: "o-1", note }, idempotencyKey: "ship-o-1" });
    expect(entries.length).toBeGreaterThanOrEqual(2);
    await commit("o-1", entries);
    expect(await order("o-1")).toMatchObject({ status: "paid" });
    expect(await s.store.mustGet(job.id)).toMatchObject({ status: "queued", owner: "shop", type: ship.name, attempts: 0 });

    const rungAt = Date.now();
    expect(await enqueue.ring(job.id)).toBe(true);
    // Counted as submitted when rung, as the API counts a submit.
    expect((s.metrics as MemoryMetrics).sum("JobsSubmitted", 0, { JobType: ship.name })).toBe(1);
    const done = await runUntilSucceeded(s, job.id);
    expect(Date.now() - rungAt).toBeLessThan(5_000);
    expect(done).toMatchObject({ attempts: 1, result: { shipped: "o-1", noteChars: note.length } });
  });

  test("or not at all: when the application's own condition refuses its item, no job exists and its ring finds none", async () => {
    const s = services();
    const enqueue = new Enqueue(s, "shop");
    await commit("o-2", enqueue.entries({ type: ship.name, input: { orderId: "o-2", note: "first" }, idempotencyKey: "ship-o-2" }).entries);
    // The order exists already: the application's condition refuses, and the whole transaction with it.
    const again = enqueue.entries({ type: ship.name, input: { orderId: "o-2", note: "twice" }, idempotencyKey: "ship-o-2-again" });
    await expect(commit("o-2", again.entries)).rejects.toThrow(/Transaction cancelled/i);
    expect(await s.store.getRecord(again.job.id)).toBeUndefined();
    expect(await enqueue.ring(again.job.id)).toBe(false);
    expect(await order("o-2")).toMatchObject({ status: "paid" });
  });

  test("retried after it committed, the transaction makes no second job: the job's key is taken, so the retry is refused whole", async () => {
    const s = services();
    const enqueue = new Enqueue(s, "shop");
    const req = { type: ship.name, input: { orderId: "o-3", note: "once" }, idempotencyKey: "ship-o-3" };
    const first = enqueue.entries(req);
    await commit("o-3", first.entries);
    // The application retries the same logical operation (its reply was lost): same key, so same job id.
    const retry = enqueue.entries(req);
    expect(retry.job.id).toBe(first.job.id);
    await expect(env.doc.send(new TransactWriteCommand({ TransactItems: retry.entries }))).rejects.toThrow(/Transaction cancelled/i);
    const ofKey = (await s.store.list({ owner: "shop", type: ship.name }, null, 100)).jobs.filter((j) => j.idempotencyKey === "ship-o-3");
    expect(ofKey).toHaveLength(1);
  });

  test("whose ring never came is found by the sweeper at its start deadline and runs", async () => {
    const s = services();
    const enqueue = new Enqueue(s, "shop");
    const { job, entries } = enqueue.entries({ type: ship.name, input: { orderId: "o-4", note: "no ring" }, idempotencyKey: "ship-o-4" });
    await commit("o-4", entries);
    // The process died between its commit and its ring: nothing was sent.
    const done = await runUntilSucceeded(s, job.id, { sweeper: new Sweeper(s) });
    expect(done).toMatchObject({ attempts: 1, result: { shipped: "o-4" } });
  });

  test("is checked as POST /jobs checks a submit: a bad input, an unknown type, no idempotencyKey, children: a 400 before anything is written", () => {
    const enqueue = new Enqueue(services(), "shop");
    const refusal = (req: unknown) => {
      try {
        enqueue.entries(req);
      } catch (e) {
        // The errors the API answers 400 for (core/api/errors.ts): its own, and the registry's.
        if (e instanceof ApiError) return e.message;
        if (e instanceof ValidationError) return `${e.message} ${JSON.stringify(e.details ?? "")}`;
        throw e;
      }
      throw new Error("not refused");
    };
    expect(refusal({ type: ship.name, input: { orderId: 3 }, idempotencyKey: "k1" })).toMatch(/input does not match job type "orders.ship".*orderId/);
    expect(refusal({ type: "orders.unknown", input: {}, idempotencyKey: "k2" })).toMatch(/unknown job type "orders.unknown"/);
    expect(refusal({ type: ship.name, input: { orderId: "o", note: "" } })).toMatch(/needs an idempotencyKey/);
    expect(refusal({ type: ship.name, input: { orderId: "o", note: "" }, idempotencyKey: "k3", children: [{ type: ship.name, input: { orderId: "c", note: "" } }] })).toMatch(/cannot have children/);
    expect(refusal({ type: ship.name, input: { orderId: "o", note: "" }, idempotencyKey: "k4", maxAtempts: 2 })).toMatch(/maxAtempts/);
  });
});
