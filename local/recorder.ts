/**
 * What the local runtime records for the alarms and the dashboard, standing in for CloudWatch:
 * Warden's own metrics (in memory from the in-process parts, parsed from the worker processes'
 * EMF lines), the queues' attributes sampled every few seconds, and the Lambda stand-ins' own
 * error and throttle counts.
 */
import type { AlarmSource } from "../core/alarms.js";
import { MemoryMetrics, METRICS, type Dims, type MetricName } from "../core/metrics.js";
import type { QueueName } from "../core/config.js";
import type { Sample } from "./alarms.js";

export type LambdaFn = "worker" | "api" | "sweeper";
type QueueMetric = "ApproximateNumberOfMessagesVisible" | "ApproximateAgeOfOldestMessage";

const KEEP_MS = 60 * 60_000;

export class Recorder {
  readonly metrics: MemoryMetrics;
  private readonly queueSamples = new Map<string, Sample[]>();
  private readonly lambdaSamples = new Map<string, Sample[]>();

  constructor(private readonly now: () => number = Date.now) {
    this.metrics = new MemoryMetrics(now);
  }

  lambda(fn: LambdaFn, metric: "Errors" | "Throttles" | "Invocations", value = 1): void {
    push(this.lambdaSamples, `${fn}:${metric}`, { at: this.now(), value }, this.now());
  }

  queue(queue: QueueName, dlq: boolean, metric: QueueMetric, value: number): void {
    push(this.queueSamples, `${queue}:${dlq}:${metric}`, { at: this.now(), value }, this.now());
  }

  /** Accepts one stdout line from a worker process; true when it was an EMF record (and recorded). */
  emfLine(line: string): boolean {
    const t = line.trimStart();
    if (!t.startsWith("{") || !t.includes('"_aws"')) return false;
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(t) as Record<string, unknown>;
    } catch {
      return false;
    }
    const aws = doc._aws as { CloudWatchMetrics?: { Metrics?: { Name?: string }[] }[]; Timestamp?: number } | undefined;
    if (!aws?.CloudWatchMetrics) return false;
    const dims: Dims = {};
    for (const key of ["Queue", "JobType", "ErrorCode", "State"] as const) {
      if (typeof doc[key] === "string") dims[key] = doc[key] as string;
    }
    for (const directive of aws.CloudWatchMetrics) {
      for (const m of directive.Metrics ?? []) {
        const name = m.Name as MetricName | undefined;
        if (!name || !(name in METRICS)) continue;
        const raw = doc[name];
        for (const v of Array.isArray(raw) ? raw : [raw]) {
          if (typeof v === "number") this.metrics.emit(name, v, dims);
        }
      }
    }
    return true;
  }

  /** The samples an alarm source reads, from `since` on. */
  read(source: AlarmSource, since: number): Sample[] {
    if (source.kind === "metric") {
      const want = Object.entries(source.dims ?? {});
      return this.metrics.points
        .filter((p) => p.name === source.metric && p.at >= since && want.every(([k, v]) => p.dims[k as keyof Dims] === v))
        .map((p) => ({ at: p.at, value: p.value, dims: p.dims }));
    }
    const key = source.kind === "queue" ? `${source.queue}:${source.dlq}:${source.metric}` : `${source.fn}:${source.metric}`;
    const map = source.kind === "queue" ? this.queueSamples : this.lambdaSamples;
    return (map.get(key) ?? []).filter((s) => s.at >= since);
  }

  /** Drops what no alarm period or chart looks back to. */
  prune(): void {
    const cutoff = this.now() - KEEP_MS;
    const i = this.metrics.points.findIndex((p) => p.at >= cutoff);
    this.metrics.points.splice(0, i === -1 ? this.metrics.points.length : i);
  }
}

function push(map: Map<string, Sample[]>, key: string, s: Sample, now: number): void {
  const list = map.get(key) ?? [];
  list.push(s);
  const cutoff = now - KEEP_MS;
  while (list.length && list[0]!.at < cutoff) list.shift();
  map.set(key, list);
}
