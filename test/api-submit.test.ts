/**
 * Submission's two safety nets: an idempotency key makes concurrent repeats one job, and a crash
 * between writing a job and enqueueing it loses nothing (the sweeper sends the message, and the
 * job then runs).
 */
import { beforeAll, expect, it } from "vitest";
import { silentLog } from "../core/api/jobs.js";
import { type QueueName, laneOf } from "../core/config.js";
import { MemoryMetrics } from "../core/metrics.js";
import { JobQueue } from "../core/queue.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import { Sweeper } from "../core/sweeper.js";
import { makeHandler } from "../functions/api.js";
import { useEmulators, waitFor } from "./support/emulators.js";
import { apiEvent, jwtAuthorizer } from "./support/http-api.js";
import { startWorkerLoop } from "./support/api-worker.js";

const env = useEmulators("submit");
let services: Services;

beforeAll(() => {
  // A one-second start deadline, so the sweeper treats a job without a message as stuck quickly.
  services = buildServices(loadRuntime({ ...env.emu.env, WARDEN_START_DEADLINE_SECONDS: "1" }), { metrics: new MemoryMetrics() });
});

const submitEvent = (sub: string, body: unknown) =>
  apiEvent({ method: "POST", path: "/jobs", headers: { "content-type": "application/json" }, rawBody: JSON.stringify(body), authorizer: jwtAuthorizer({ sub }) });

async function drain(queue: QueueName): Promise<string[]> {
  const ids: string[] = [];
  for (;;) {
    const ms = await services.queue.receive(laneOf({ queue: queue }), { max: 10, waitSeconds: 0 });
    if (!ms.length) return ids;
    for (const m of ms) {
      ids.push(m.jobId);
      await services.queue.delete(m.lane, m.receiptHandle);
    }
  }
}

it("makes one job of ten concurrent submits with the same idempotency key", async () => {
  const handler = makeHandler(services, { log: silentLog });
  const body = { type: "demo.sleep", input: { items: 1, msPerItem: 0 }, idempotencyKey: "nightly-2024-05-01" };
  const answers = await Promise.all(Array.from({ length: 10 }, () => handler(submitEvent("ivy", body))));
  const statuses = answers.map((a) => a.statusCode).sort();
  expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
  const ids = new Set(answers.map((a) => JSON.parse(a.body ?? "{}").job.id));
  expect(ids.size).toBe(1);
  const page = await services.store.list({ owner: "ivy" }, undefined, 100);
  expect(page.jobs.map((j) => j.id)).toEqual([...ids]);
  // Only the submit that wrote the job rang the queue.
  const rung = await waitFor(async () => {
    const got = await drain("default");
    return got.length ? got : undefined;
  }, 5_000, "the doorbell");
  expect(rung).toEqual([...ids]);
});

/** A queue whose sends fail, as if the API crashed (or SQS refused) right after the write. */
class LostSends extends JobQueue {
  attempts = 0;
  override async send(): Promise<void> {
    this.attempts++;
    throw new Error("injected: the process died before SendMessage");
  }
}

it("leaves a queued job when enqueueing fails; the sweeper sends it and the job then runs", async () => {
  const lost = new LostSends(services.sqs, services.cfg.queues);
  const warnings: unknown[] = [];
  const crashy = makeHandler({ ...services, queue: lost }, { log: { ...silentLog, warn: (m, f) => warnings.push({ m, f }) } });
  const res = await crashy(submitEvent("jack", { type: "demo.sleep", input: { items: 2, msPerItem: 5 } }));
  expect(res.statusCode).toBe(201);
  const id = JSON.parse(res.body ?? "{}").job.id as string;
  expect(lost.attempts).toBe(1);
  expect(warnings).toHaveLength(1);
  expect(JSON.stringify(warnings)).not.toContain('"items"'); // the log names the job, not its input
  expect((await services.store.get(id))?.status).toBe("queued");
  expect(await drain("default")).not.toContain(id);

  // The sweeper finds it once its start deadline passes and sends its message.
  const sweeper = new Sweeper(services);
  await waitFor(async () => (await sweeper.sweep()).touched.resent?.includes(id), 10_000, "the sweeper to resend the job");

  const worker = startWorkerLoop(services, { queues: ["default"] });
  try {
    const done = await waitFor(async () => {
      const j = await services.store.get(id);
      return j?.status === "succeeded" ? j : undefined;
    }, 15_000, "the job to run");
    expect(done.result).toEqual({ items: 2, resumedFrom: 0 });
    expect(done.attempts).toBe(1);
  } finally {
    await worker.stop();
  }
});

it("takes a 150 KB payload through the API: it runs, and GET /jobs/{id} and GET /jobs answer the input whole", async () => {
  const handler = makeHandler(services, { log: silentLog });
  const payload = "p".repeat(150 * 1024);
  const input = { items: 2, msPerItem: 0, payload };
  const created = await handler(submitEvent("pam", { type: "demo.sleep", input }));
  expect(created.statusCode).toBe(201);
  const id = JSON.parse(created.body ?? "{}").job.id as string;
  const worker = startWorkerLoop(services);
  try {
    await waitFor(async () => (await services.store.getRecord(id))?.status === "succeeded", 20_000, "the job to succeed");
  } finally {
    await worker.stop();
  }
  const read = (path: string) => handler(apiEvent({ method: "GET", path, authorizer: jwtAuthorizer({ sub: "pam" }) }));
  const one = JSON.parse((await read(`/jobs/${id}`)).body ?? "{}").job;
  expect(one).toMatchObject({ status: "succeeded", input, result: { items: 2, resumedFrom: 0 } });
  const listed = JSON.parse((await read("/jobs")).body ?? "{}").jobs as { id: string; input: unknown }[];
  expect(listed.find((j) => j.id === id)?.input).toMatchObject(input);
});
