/**
 * The scheduled sweeper Lambda: one invocation sweeps every interval until the stop margin before
 * its deadline, so a dead worker's job is repaired within its lease plus one interval; metrics are
 * flushed after every sweep and at the end.
 */
import type { Context, ScheduledEvent } from "aws-lambda";
import { afterEach, expect, test, vi } from "vitest";
import { TIMINGS } from "../core/config.js";
import { MemoryMetrics } from "../core/metrics.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices } from "../core/services.js";
import { handler, makeHandler } from "../functions/sweeper.js";
import { useEmulators } from "./support/emulators.js";

const env = useEmulators("sweep-fn");

const contextUntil = (deadline: number): Context =>
  ({ getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()) }) as unknown as Context;
const event = {} as ScheduledEvent;

afterEach(() => vi.restoreAllMocks());

test("sweeps every interval until the stop margin, and repairs a dead worker's job within its lease plus one interval", async () => {
  const metrics = new MemoryMetrics();
  let flushes = 0;
  const counted = { emit: metrics.emit.bind(metrics), flush: async () => void flushes++ };
  const interval = 200;
  const cfg = loadRuntime({ ...env.emu.env, WARDEN_SWEEP_INTERVAL_SECONDS: String(interval / 1000) });
  const s = buildServices(cfg, { doc: env.doc, sqs: env.sqs, metrics: counted });
  const { job } = await s.store.create({ owner: "t", type: "demo.sleep", queue: "default", input: {}, maxAttempts: 3, timeoutMs: 60_000 });
  const claimed = await s.store.claim(job.id, "doomed", 300);
  if (!claimed.ok) throw new Error("claim refused");

  const started = Date.now();
  const run = makeHandler(s);
  const result = await run(event, contextUntil(started + TIMINGS.sweeperStopMarginMs + 1_000));
  const took = Date.now() - started;

  // Stopped at the margin, not at the deadline (which is 8 s further).
  expect(took).toBeLessThan(1_000 + TIMINGS.sweeperStopMarginMs / 2);
  expect(result.sweeps).toBeGreaterThanOrEqual(2);
  expect(result.sweeps).toBeLessThanOrEqual(Math.ceil(1_000 / interval) + 1);
  expect(metrics.sum("SweeperHeartbeat")).toBe(result.sweeps);
  expect(flushes).toBe(result.sweeps + 1);
  expect(result.counts.reclaimed).toBe(1);
  const after = await s.store.mustGet(job.id);
  expect(after.status).toBe("queued");

  // Found by the first sweep that started after the lease expired: when the sweeps run on time,
  // that is within the lease plus one interval. (Measured on the sweeps themselves, not on the
  // wall clock, so a loaded CI machine cannot make this flaky.)
  const expiry = claimed.lease.job.leaseExpiresAt;
  const starts = metrics.points.filter((p) => p.name === "SweepDuration").map((p) => p.at - p.value);
  const reclaimedAt = metrics.points.find((p) => p.name === "Reclaimed")!.at;
  const repairing = starts.filter((t) => t <= reclaimedAt).at(-1)!;
  expect(starts.filter((t) => t >= expiry && t < repairing)).toEqual([]);
});

test("with no time left it still sweeps once, so the heartbeat never goes silent", async () => {
  const metrics = new MemoryMetrics();
  const s = buildServices(loadRuntime(env.emu.env), { doc: env.doc, sqs: env.sqs, metrics });
  const result = await makeHandler(s)(event, contextUntil(Date.now() + 1_000));
  expect(result.sweeps).toBe(1);
  expect(metrics.sum("SweeperHeartbeat")).toBe(1);
});

test("the deployed handler builds its services from the environment and prints EMF", async () => {
  for (const [k, v] of Object.entries({ ...env.emu.env, WARDEN_SWEEP_INTERVAL_SECONDS: "0.2" })) vi.stubEnv(k, v);
  const lines: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  vi.spyOn(process.stdout, "write").mockImplementation(((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const text = String(chunk);
    if (text.includes('"_aws"')) return lines.push(text) > 0;
    return write(chunk as string, ...(rest as []));
  }) as typeof process.stdout.write);
  const result = await handler(event, contextUntil(Date.now() + TIMINGS.sweeperStopMarginMs + 500));
  vi.unstubAllEnvs();
  expect(result.sweeps).toBeGreaterThanOrEqual(2);
  const heartbeats = lines
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => "SweeperHeartbeat" in r)
    .flatMap((r) => [r.SweeperHeartbeat].flat());
  expect(heartbeats).toHaveLength(result.sweeps);
  expect(lines.every((l) => (JSON.parse(l) as { Stage?: string }).Stage === env.emu.stage)).toBe(true);
});
