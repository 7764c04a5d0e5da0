/**
 * A sweep's cost follows the overdue jobs, not the table (invariant 4): with 20,000 finished
 * jobs and 10 overdue it reads about as many items as with none, because finished jobs are not
 * in the sparse `due` index. (`npm run bench` prints the same at 0, 2,000 and 20,000.)
 */
import { expect, test } from "vitest";
import { loadRuntime } from "../core/runtime.js";
import { buildServices } from "../core/services.js";
import { Sweeper, type SweepReport } from "../core/sweeper.js";
import { manualClock, useEmulators } from "./support/emulators.js";
import { writeFinishedLike } from "./support/finished.js";

const env = useEmulators("sweep-scale");

test("with 20,000 finished jobs and 10 overdue, a sweep reads as much as with none", async () => {
  const clock = manualClock(Date.now());
  const cfg = loadRuntime({ ...env.emu.env, WARDEN_START_DEADLINE_SECONDS: "60" });
  const s = buildServices(cfg, { doc: env.doc, sqs: env.sqs, now: clock.now });
  const sweeper = new Sweeper(s);
  const ids: string[] = [];
  for (let i = 0; i < 10; i++) {
    const { job } = await s.store.create({ owner: "t", type: "demo.sleep", queue: i % 2 ? "large" : "default", input: {}, maxAttempts: 3, timeoutMs: 3_600_000 });
    ids.push(job.id);
  }

  // Each measured sweep finds the same 10 jobs overdue: their re-sent messages led to no claim.
  const measure = async (): Promise<SweepReport> => {
    clock.advance(61_000);
    const r = await sweeper.sweep();
    expect(new Set(r.touched.resent)).toEqual(new Set(ids));
    return r;
  };
  await measure(); // warm the connections and the JIT
  const empty = await measure();

  const t = Date.now();
  await writeFinishedLike(env, 20_000);
  const loadMs = Date.now() - t;
  const full = await measure();

  console.log(
    `sweep with 0 finished jobs: read ${empty.read} items in ${empty.durationMs} ms; ` +
      `with 20,000 finished jobs: read ${full.read} items in ${full.durationMs} ms (loading them took ${loadMs} ms)`,
  );
  expect(empty.read).toBe(10);
  expect(Math.abs(full.read - empty.read)).toBeLessThanOrEqual(Math.ceil(empty.read * 0.1));
  expect(full.counts.resent).toBe(10);
  expect(full.more).toBe(false);
  // Loose on purpose (a shared CI machine is noisy): a sweep that read the table would take seconds here.
  expect(full.durationMs).toBeLessThan(empty.durationMs * 5 + 250);
});
