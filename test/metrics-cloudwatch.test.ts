/**
 * The Fargate sink's PutMetricData batching. No CloudWatch emulator exists, so a loopback HTTP
 * server stands where CloudWatch would and records what the real SDK client sends (AWS JSON 1.0:
 * `X-Amz-Target: GraniteServiceVersion20100801.PutMetricData`, a JSON body). It answers as
 * CloudWatch does; nothing about the sink's behaviour is mocked.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { afterAll, beforeAll, beforeEach, expect, test } from "vitest";
import { cloudWatchMetrics, MAX_DATUMS_PER_CALL } from "../core/metrics-cloudwatch.js";
import { METRIC_NAMESPACE, METRICS, type MetricName } from "../core/metrics.js";
import { waitFor } from "./support/emulators.js";

interface Datum {
  MetricName: string;
  Unit: string;
  Timestamp: number;
  Dimensions: { Name: string; Value: string }[];
  StatisticValues: { SampleCount: number; Sum: number; Minimum: number; Maximum: number };
}
interface Call {
  at: number;
  target: string;
  /** The SDK gzips bodies over 10 KB (CloudWatch's request compression). */
  encoding: string;
  body: { Namespace: string; MetricData: Datum[] };
}

let server: Server;
let endpoint = "";
let calls: Call[] = [];
/** When set, the next requests are refused as CloudWatch does when throttling. */
let failNext = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (failNext > 0) {
        failNext--;
        res.writeHead(400, { "content-type": "application/x-amz-json-1.0" });
        res.end(JSON.stringify({ __type: "com.amazonaws.cloudwatch#LimitExceededFault", message: "Rate exceeded" }));
        return;
      }
      try {
        const raw = Buffer.concat(chunks);
        const encoding = String(req.headers["content-encoding"] ?? "identity");
        const text = (encoding === "gzip" ? gunzipSync(raw) : raw).toString("utf8");
        calls.push({ at: Date.now(), target: String(req.headers["x-amz-target"]), encoding, body: JSON.parse(text) });
        res.writeHead(200, { "content-type": "application/x-amz-json-1.0" });
        res.end("{}");
      } catch (e) {
        res.writeHead(500, { "content-type": "application/x-amz-json-1.0" });
        res.end(JSON.stringify({ __type: "InternalServiceFault", message: String(e) }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  calls = [];
  failNext = 0;
});

const client = () =>
  new CloudWatchClient({ endpoint, region: "us-east-1", credentials: { accessKeyId: "local", secretAccessKey: "local" }, maxAttempts: 1 });

const dims = (d: Datum) => Object.fromEntries(d.Dimensions.map((x) => [x.Name, x.Value]));

test("a burst of points becomes one PutMetricData call of statistic sets, with the defined names, units and dimensions", async () => {
  const cw = client();
  const m = cloudWatchMetrics(cw, "prod", { flushEveryMs: 60_000 });
  for (let i = 0; i < 5_000; i++) m.emit("JobsStarted", 1, { Queue: "large", JobType: "junit.import" });
  for (const v of [10, 70, 40]) m.emit("WorkerMemoryPercent", v, { Queue: "large" });
  m.emit("JobDuration", 1500, { Queue: "large", JobType: "junit.import", State: "stray" } as never);
  await m.stop();
  expect(calls).toHaveLength(1);
  const [call] = calls;
  expect(call!.target).toBe("GraniteServiceVersion20100801.PutMetricData");
  expect(call!.body.Namespace).toBe(METRIC_NAMESPACE);
  const data = call!.body.MetricData;
  expect(data).toHaveLength(3);
  for (const d of data) {
    const def = METRICS[d.MetricName as MetricName];
    expect(def).toBeDefined();
    expect(d.Unit).toBe(def.unit);
    expect(d.Dimensions[0]).toEqual({ Name: "Stage", Value: "prod" });
    expect(d.Dimensions.slice(1).map((x) => x.Name)).toEqual(def.dimensions.filter((n) => n in dims(d)));
  }
  const by = (n: string) => data.find((d) => d.MetricName === n)!;
  expect(by("JobsStarted").StatisticValues).toEqual({ SampleCount: 5000, Sum: 5000, Minimum: 1, Maximum: 1 });
  expect(dims(by("JobsStarted"))).toEqual({ Stage: "prod", Queue: "large", JobType: "junit.import" });
  expect(by("WorkerMemoryPercent").StatisticValues).toEqual({ SampleCount: 3, Sum: 120, Minimum: 10, Maximum: 70 });
  expect(dims(by("JobDuration"))).toEqual({ Stage: "prod", Queue: "large", JobType: "junit.import" }); // the stray dimension is dropped
  cw.destroy();
});

test("more than 1,000 datums are split into calls of at most 1,000", async () => {
  const cw = client();
  const m = cloudWatchMetrics(cw, "prod", { flushEveryMs: 60_000 });
  for (let i = 0; i < 2_500; i++) m.emit("JobsSubmitted", 1, { Queue: "default", JobType: `type.${i}` });
  await m.flush();
  expect(calls.map((c) => c.body.MetricData.length)).toEqual([MAX_DATUMS_PER_CALL, MAX_DATUMS_PER_CALL, 500]);
  expect(calls[0]!.encoding).toBe("gzip"); // a full call is large enough for the SDK to compress it
  expect(new Set(calls.flatMap((c) => c.body.MetricData.map((d) => dims(d).JobType))).size).toBe(2_500);
  await m.stop();
  expect(calls).toHaveLength(3); // nothing left to send
  cw.destroy();
});

test("a steady stream of points is sent at most once per interval", async () => {
  const cw = client();
  const every = 250;
  const m = cloudWatchMetrics(cw, "prod", { flushEveryMs: every });
  const start = Date.now();
  let emitted = 0;
  // A worker emitting all the time for 1.5 s: a point every few milliseconds.
  while (Date.now() - start < 1_500) {
    m.emit("ClaimConflicts", 1, { Queue: "default" });
    emitted++;
    await new Promise((r) => setTimeout(r, 2));
  }
  await waitFor(() => calls.length >= 1, 5_000, "the first timed flush");
  await m.stop();
  const elapsed = Date.now() - start;
  expect(calls.length).toBeGreaterThanOrEqual(3);
  expect(calls.length).toBeLessThanOrEqual(Math.ceil(elapsed / every) + 1);
  const gaps = calls.slice(1).map((c, i) => c.at - calls[i]!.at);
  // The last call is stop()'s own flush, which may come at any time; the timed ones are spaced.
  expect(gaps.slice(0, -1).every((g) => g >= every * 0.8)).toBe(true);
  const sent = calls.flatMap((c) => c.body.MetricData).reduce((n, d) => n + d.StatisticValues.Sum, 0);
  expect(sent).toBe(emitted);
  cw.destroy();
});

test("a refused call keeps its data for the next flush", async () => {
  const cw = client();
  const errors: unknown[] = [];
  // One minute's points: on the wall clock a run across a minute boundary would make two datums.
  const m = cloudWatchMetrics(cw, "prod", { flushEveryMs: 60_000, onError: (e) => errors.push(e), now: () => 1_800_000_000_000 });
  m.emit("StoreThrottled", 3);
  failNext = 1;
  await m.flush();
  expect(calls).toHaveLength(0);
  expect(errors).toHaveLength(1);
  m.emit("StoreThrottled", 4);
  await m.flush();
  expect(calls).toHaveLength(1);
  expect(calls[0]!.body.MetricData).toHaveLength(1);
  expect(calls[0]!.body.MetricData[0]!.StatisticValues).toEqual({ SampleCount: 2, Sum: 7, Minimum: 3, Maximum: 4 });
  expect(calls[0]!.body.MetricData[0]!.Dimensions).toEqual([{ Name: "Stage", Value: "prod" }]);
  await m.stop();
  cw.destroy();
});
