/**
 * The Lambda sink's output, read from stdout as CloudWatch Logs would: EMF records in the Warden
 * namespace, every metric with its defined unit and exactly Stage plus its defined dimensions,
 * for what a sweep and a worker really emit.
 */
import { afterEach, beforeEach, expect, test, vi } from "vitest";
import { emfMetrics } from "../core/metrics-emf.js";
import { METRIC_NAMESPACE, METRICS, type MetricName, type Metrics } from "../core/metrics.js";
import { loadRuntime } from "../core/runtime.js";
import { Runner } from "../core/runner.js";
import { buildServices } from "../core/services.js";
import { Sweeper } from "../core/sweeper.js";
import { manualClock, useEmulators } from "./support/emulators.js";

const env = useEmulators("emf");

interface EmfRecord {
  _aws: { Timestamp: number; CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[] };
  [key: string]: unknown;
}

let lines: string[] = [];
beforeEach(() => {
  lines = [];
  const write = process.stdout.write.bind(process.stdout);
  vi.spyOn(process.stdout, "write").mockImplementation(((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    if (text.includes('"_aws"')) {
      lines.push(...text.split("\n").filter((l) => l.trim()));
      return true;
    }
    return write(chunk as string, ...(rest as []));
  }) as typeof process.stdout.write);
});
afterEach(() => vi.restoreAllMocks());

const records = (): EmfRecord[] => lines.map((l) => JSON.parse(l) as EmfRecord);

/** Every (metric, value, dimensions) the records carry, checked against the one definition. */
function points(recs: EmfRecord[]): { name: MetricName; values: number[]; dims: Record<string, string> }[] {
  return recs.flatMap((r) => {
    const [directive] = r._aws.CloudWatchMetrics;
    expect(r._aws.CloudWatchMetrics).toHaveLength(1);
    expect(directive!.Namespace).toBe(METRIC_NAMESPACE);
    expect(directive!.Dimensions).toHaveLength(1);
    const dimNames = directive!.Dimensions[0]!;
    expect(dimNames[0]).toBe("Stage");
    const dims = Object.fromEntries(dimNames.map((d) => [d, r[d] as string]));
    return directive!.Metrics.map((m) => {
      const def = METRICS[m.Name as MetricName];
      expect(def, `${m.Name} is a defined metric`).toBeDefined();
      expect(m.Unit).toBe(def.unit);
      for (const d of dimNames.slice(1)) expect(def.dimensions).toContain(d);
      const raw = r[m.Name];
      return { name: m.Name as MetricName, values: Array.isArray(raw) ? (raw as number[]) : [raw as number], dims };
    });
  });
}

test("emit and flush print EMF records with the defined names, units and dimensions", async () => {
  const m = emfMetrics("prod");
  m.emit("JobsFailed", 1, { Queue: "default", JobType: "demo.fail", ErrorCode: "handler_error" });
  m.emit("JobsFailed", 1, { Queue: "default", JobType: "demo.fail", ErrorCode: "handler_error" });
  m.emit("JobDuration", 1234, { Queue: "large", JobType: "junit.import" });
  m.emit("WorkerMemoryPercent", 91.5, { Queue: "large" });
  m.emit("StoreThrottled", 2);
  // A dimension the definition does not name would put the point where no alarm looks: dropped.
  m.emit("SweeperHeartbeat", 1, { Queue: "default" });
  expect(lines).toEqual([]); // buffered until flush
  await m.flush();
  const pts = points(records());
  expect(pts).toEqual(
    expect.arrayContaining([
      { name: "JobsFailed", values: [1, 1], dims: { Stage: "prod", Queue: "default", JobType: "demo.fail", ErrorCode: "handler_error" } },
      { name: "JobDuration", values: [1234], dims: { Stage: "prod", Queue: "large", JobType: "junit.import" } },
      { name: "WorkerMemoryPercent", values: [91.5], dims: { Stage: "prod", Queue: "large" } },
      { name: "StoreThrottled", values: [2], dims: { Stage: "prod" } },
      { name: "SweeperHeartbeat", values: [1], dims: { Stage: "prod" } },
    ]),
  );
  expect(pts).toHaveLength(5);
  // No `service` dimension from Powertools' defaults: alarms match exact dimension sets.
  for (const r of records()) expect(r).not.toHaveProperty("service");

  lines = [];
  await m.flush();
  expect(lines).toEqual([]); // nothing buffered, nothing printed
});

test("hundreds of points keep their dimensions across Powertools' 100-value records", async () => {
  const m = emfMetrics("prod");
  for (let i = 0; i < 250; i++) m.emit("ClaimConflicts", 1, { Queue: "default" });
  await m.flush();
  const pts = points(records());
  expect(pts.every((p) => p.name === "ClaimConflicts" && p.dims.Queue === "default" && p.dims.Stage === "prod")).toBe(true);
  expect(pts.reduce((n, p) => n + p.values.length, 0)).toBe(250);
});

test("what a sweep and a worker emit is all defined, with the defined dimensions", async () => {
  const clock = manualClock(Date.now());
  const metrics: Metrics = emfMetrics("test", { now: clock.now });
  const s = buildServices(loadRuntime({ ...env.emu.env, WARDEN_START_DEADLINE_SECONDS: "60" }), { doc: env.doc, sqs: env.sqs, now: clock.now, metrics });
  // A stuck job for the sweep, and a job for the worker.
  const { job: dead } = await s.store.create({ owner: "t", type: "demo.sleep", queue: "default", input: {}, maxAttempts: 1, timeoutMs: 3_600_000 });
  expect((await s.store.claim(dead.id, "gone", 1_000)).ok).toBe(true);
  clock.advance(2_000);
  const r = await new Sweeper(s).sweep();
  expect(r.counts.failedExhausted).toBe(1);
  await metrics.flush();
  const sweep = points(records());
  const byName = (name: MetricName) => sweep.filter((p) => p.name === name);
  expect(byName("StuckJobs").map((p) => [p.dims.State, p.values])).toEqual(
    expect.arrayContaining([
      ["running", [1]],
      ["cancelling", [0]],
    ]),
  );
  expect(byName("SweeperHeartbeat")).toEqual([{ name: "SweeperHeartbeat", values: [1], dims: { Stage: "test" } }]);
  expect(byName("SweepDuration")).toHaveLength(1);
  expect(byName("JobsFailed")).toEqual([
    { name: "JobsFailed", values: [1], dims: { Stage: "test", Queue: "default", JobType: "demo.sleep", ErrorCode: "attempts_exhausted" } },
  ]);

  lines = [];
  const realClock = buildServices(loadRuntime(env.emu.env), { doc: env.doc, sqs: env.sqs, metrics });
  const { job } = await realClock.store.create({ owner: "t", type: "demo.sleep", queue: "default", input: { items: 1, msPerItem: 1 }, maxAttempts: 3, timeoutMs: 60_000 });
  const runner = new Runner(realClock, { workerId: "emf-test", kind: "lambda", leaseMs: 10_000, log: { info() {}, warn() {}, error() {} } });
  expect(await runner.run(job.id, "default")).toMatchObject({ claimed: true, outcome: "succeeded" });
  await metrics.flush();
  const worker = points(records());
  const names = new Set(worker.map((p) => p.name));
  expect(names).toContain("JobsStarted");
  expect(names).toContain("JobsSucceeded");
  for (const p of worker.filter((x) => ["JobsStarted", "JobsSucceeded", "JobDuration"].includes(x.name))) {
    expect(p.dims).toEqual({ Stage: "test", Queue: "default", JobType: "demo.sleep" });
  }
});
