/**
 * The Lambda sink: CloudWatch Embedded Metric Format through the Powertools metrics library.
 * Flushing prints EMF JSON lines to stdout; CloudWatch Logs turns them into metrics, with no
 * API call on the function's path. One Powertools record carries one dimension set, so points
 * are grouped by their dimensions (and minute) and each group is printed as its own record.
 */
import { Metrics as Powertools, type MetricUnit } from "@aws-lambda-powertools/metrics";
import { METRIC_NAMESPACE, METRICS, type Dimension, type Dims, type MetricName, type MetricPoint, type Metrics } from "./metrics.js";

export interface EmfOptions {
  namespace?: string;
  now?: () => number;
  /** Points held before a flush is forced, so a long invocation cannot grow without bound. */
  maxBuffered?: number;
}

/** Powertools flushes on its own at 100 values; staying under it keeps our dimensions on every record. */
const RECORD_POINTS = 99;

export function emfMetrics(stage: string, opts: EmfOptions = {}): Metrics {
  const now = opts.now ?? Date.now;
  const maxBuffered = opts.maxBuffered ?? 5_000;
  const pt = new Powertools({ namespace: opts.namespace ?? METRIC_NAMESPACE });
  // Powertools adds a `service` dimension by default; the alarms match exact dimension sets, so
  // every metric carries Stage and only the dimensions its definition names.
  pt.clearDefaultDimensions();
  pt.setDefaultDimensions({ Stage: stage });
  let buffer: MetricPoint[] = [];

  const flushNow = (): void => {
    const points = buffer;
    buffer = [];
    for (const group of groupByDims(points)) {
      for (let i = 0; i < group.length; i += RECORD_POINTS) {
        const chunk = group.slice(i, i + RECORD_POINTS);
        const first = chunk[0]!;
        for (const [k, v] of Object.entries(first.dims)) pt.addDimension(k, v);
        pt.setTimestamp(first.at);
        for (const p of chunk) pt.addMetric(p.name, METRICS[p.name].unit as (typeof MetricUnit)[keyof typeof MetricUnit], p.value);
        pt.publishStoredMetrics();
      }
    }
  };

  return {
    emit(name: MetricName, value: number, dims: Dims = {}): void {
      buffer.push({ name, value, dims: definedDims(name, dims), at: now() });
      if (buffer.length >= maxBuffered) flushNow();
    },
    async flush(): Promise<void> {
      flushNow();
    },
  };
}

/**
 * Keeps only the dimensions the metric's definition names, in its order: a stray dimension would
 * put the point in a dimension set no alarm watches.
 */
export function definedDims(name: MetricName, dims: Dims): Dims {
  const out: Dims = {};
  for (const d of METRICS[name].dimensions as readonly Dimension[]) {
    if (d === "Stage") continue;
    const v = dims[d];
    if (typeof v === "string" && v !== "") out[d] = v;
  }
  return out;
}

function groupByDims(points: MetricPoint[]): MetricPoint[][] {
  const groups = new Map<string, MetricPoint[]>();
  for (const p of points) {
    const key = `${Math.floor(p.at / 60_000)}|${JSON.stringify(p.dims)}`;
    const g = groups.get(key);
    if (g) g.push(p);
    else groups.set(key, [p]);
  }
  return [...groups.values()];
}
