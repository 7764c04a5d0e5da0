/**
 * The sweeper's read path: a Query on the sparse `due` index. Finished jobs are not in it, so
 * finding the overdue ones costs the same however many finished jobs the table holds.
 */
import { expect, test } from "vitest";
import { LeaseKeeper } from "../core/lease.js";
import { ReportBuffer } from "../core/coalescer.js";
import type { RunningJob } from "../core/job.js";
import { useEmulators } from "./support/emulators.js";
import { writeFinishedLike } from "./support/finished.js";

const env = useEmulators("overdue");

test("listOverdue returns exactly the overdue jobs, reading as much with 5,000 finished jobs as with none", async () => {
  const store = env.store();
  const overdue = new Set<string>();
  for (let i = 0; i < 10; i++) {
    const { job } = await store.create({ owner: "o", type: "demo.sleep", queue: i % 2 ? "default" : "large", input: {}, maxAttempts: 3, timeoutMs: 3_600_000 });
    const c = await store.claim(job.id, "dead-worker", 1); // a 1 ms lease: overdue at once
    expect(c.ok).toBe(true);
    overdue.add(job.id);
  }
  // Live jobs that are not overdue must not be returned either.
  for (let i = 0; i < 5; i++) await store.create({ owner: "o", type: "demo.sleep", queue: "default", input: {}, maxAttempts: 3, timeoutMs: 3_600_000 });

  const later = Date.now() + 10;
  const empty = await store.listOverdue(later, 100);
  expect(new Set(empty.jobs.map((j) => j.id))).toEqual(overdue);

  await writeFinishedLike(env, 5000);
  // Asked after the load, so finished copies that kept their due-index keys would be overdue too.
  const full = await store.listOverdue(Date.now() + 10, 100);
  expect(new Set(full.jobs.map((j) => j.id))).toEqual(overdue);
  expect(full.jobs.every((j) => j.status === "running")).toBe(true);
  expect(Math.abs(full.scanned - empty.scanned)).toBeLessThanOrEqual(Math.ceil(empty.scanned * 0.1));
  expect(full.scanned).toBe(10);
});

test("10,000 progress reports in 2 s with a 500 ms heartbeat cause at most 6 DynamoDB writes for progress", async () => {
  const store = env.store();
  const { job } = await store.create({ owner: "o", type: "demo.sleep", queue: "default", input: {}, maxAttempts: 3, timeoutMs: 3_600_000 });
  const c = await store.claim(job.id, "w", 1500);
  if (!c.ok) throw new Error("claim failed");
  const buffer = new ReportBuffer();
  let cancelled = false;
  let lost = false;
  const keeper = new LeaseKeeper(store, c.lease, buffer, { onCancel: () => (cancelled = true), onLost: () => (lost = true) }, 500);
  const writesBefore = env.calls.get("UpdateItemCommand") ?? 0;
  keeper.start();
  // The handler: 10,000 progress reports spread over 2 s of real work.
  const start = Date.now();
  for (let i = 1; i <= 10_000; i++) {
    buffer.progress(i, 10_000, `item ${i}`);
    if (i % 100 === 0) {
      buffer.checkpoint({ item: i });
      const due = start + (i / 10_000) * 2000;
      await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
    }
  }
  await keeper.stop();
  await store.succeed(c.lease, { items: 10_000 }, buffer.all());
  const writes = (env.calls.get("UpdateItemCommand") ?? 0) - writesBefore;
  expect(writes).toBeGreaterThanOrEqual(3); // heartbeats did happen…
  expect(writes).toBeLessThanOrEqual(6); // …and at most one per interval, plus the final write
  expect(cancelled || lost).toBe(false);
  const end = (await store.get(job.id)) as unknown as RunningJob;
  expect(end).toMatchObject({ status: "succeeded", progress: { done: 10_000, percent: 100 }, checkpoint: { item: 10_000 } });
});
