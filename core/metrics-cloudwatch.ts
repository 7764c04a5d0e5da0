/**
 * The Fargate sink: points are aggregated in memory and sent with PutMetricData at most once
 * every `flushEveryMs` (a few seconds), as statistic sets (count, sum, min, max) per metric and
 * dimension set, at most 1,000 datums per call (the API's limit). A busy worker therefore costs
 * one small call per interval whatever it emits, and a failed call keeps its data for the next.
 */
import { PutMetricDataCommand, type CloudWatchClient, type MetricDatum } from "@aws-sdk/client-cloudwatch";
import { definedDims } from "./metrics-emf.js";
import { METRIC_NAMESPACE, METRICS, type Dims, type MetricName, type Metrics } from "./metrics.js";

export interface CloudWatchMetricsOptions {
  flushEveryMs?: number;
  now?: () => number;
  namespace?: string;
  /** Called when a PutMetricData call fails; the data stays buffered for the next flush. */
  onError?: (e: unknown) => void;
}

/** PutMetricData accepts at most this many datums per call. */
export const MAX_DATUMS_PER_CALL = 1000;
/** Aggregates kept when CloudWatch keeps failing: the oldest go first. */
const MAX_PENDING = 20_000;

interface Aggregate {
  name: MetricName;
  dims: Dims;
  /** Start of the minute the points fall in: CloudWatch's finest standard resolution. */
  minute: number;
  count: number;
  sum: number;
  min: number;
  max: number;
}

export function cloudWatchMetrics(
  client: CloudWatchClient,
  stage: string,
  opts: CloudWatchMetricsOptions = {},
): Metrics & { stop(): Promise<void> } {
  const now = opts.now ?? Date.now;
  const namespace = opts.namespace ?? METRIC_NAMESPACE;
  const pending = new Map<string, Aggregate>();
  let inFlight: Promise<void> = Promise.resolve();
  let stopped = false;

  const send = async (): Promise<void> => {
    const batch = [...pending.values()];
    pending.clear();
    for (let i = 0; i < batch.length; i += MAX_DATUMS_PER_CALL) {
      const chunk = batch.slice(i, i + MAX_DATUMS_PER_CALL);
      try {
        await client.send(new PutMetricDataCommand({ Namespace: namespace, MetricData: chunk.map((a) => datum(a, stage)) }));
      } catch (e) {
        // What did not go out goes back, merged with whatever arrived meanwhile.
        for (const a of batch.slice(i)) merge(pending, a);
        trim(pending);
        opts.onError?.(e);
        return;
      }
    }
  };

  // One flush at a time: the interval and an explicit flush never overlap.
  const flush = (): Promise<void> => (inFlight = inFlight.then(send, send));

  const timer = setInterval(() => {
    if (pending.size) void flush();
  }, opts.flushEveryMs ?? 5_000);
  timer.unref?.();

  return {
    emit(name: MetricName, value: number, dims: Dims = {}): void {
      if (stopped || !Number.isFinite(value)) return;
      const d = definedDims(name, dims);
      const minute = Math.floor(now() / 60_000) * 60_000;
      merge(pending, { name, dims: d, minute, count: 1, sum: value, min: value, max: value });
    },
    flush,
    async stop(): Promise<void> {
      stopped = true;
      clearInterval(timer);
      await flush();
    },
  };
}

const keyOf = (a: Pick<Aggregate, "name" | "dims" | "minute">): string => `${a.name}|${a.minute}|${JSON.stringify(a.dims)}`;

function merge(into: Map<string, Aggregate>, a: Aggregate): void {
  const key = keyOf(a);
  const have = into.get(key);
  if (!have) {
    into.set(key, { ...a });
    return;
  }
  have.count += a.count;
  have.sum += a.sum;
  have.min = Math.min(have.min, a.min);
  have.max = Math.max(have.max, a.max);
}

function trim(pending: Map<string, Aggregate>): void {
  for (const key of pending.keys()) {
    if (pending.size <= MAX_PENDING) break;
    pending.delete(key);
  }
}

function datum(a: Aggregate, stage: string): MetricDatum {
  return {
    MetricName: a.name,
    Unit: METRICS[a.name].unit,
    Timestamp: new Date(a.minute),
    Dimensions: [{ Name: "Stage", Value: stage }, ...Object.entries(a.dims).map(([Name, Value]) => ({ Name, Value: Value as string }))],
    StatisticValues: { SampleCount: a.count, Sum: a.sum, Minimum: a.min, Maximum: a.max },
  };
}
