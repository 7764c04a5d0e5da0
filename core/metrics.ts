/**
 * The metrics Warden emits, defined once: names, units and dimensions. The alarms, the stacks'
 * dashboard and the local runtime read these; the sinks (EMF in Lambda, PutMetricData from
 * Fargate, in memory locally) implement `Metrics`.
 */
export const METRIC_NAMESPACE = "Warden";

export type Unit = "Count" | "Milliseconds" | "Seconds" | "Percent";
export type Dimension = "Stage" | "Queue" | "JobType" | "ErrorCode" | "State";

export interface MetricDefinition {
  name: string;
  unit: Unit;
  /** Dimensions the metric is emitted with, besides Stage, which every metric carries. */
  dimensions: readonly Dimension[];
  description: string;
}

const def = (name: string, unit: Unit, dimensions: readonly Dimension[], description: string): MetricDefinition => ({
  name,
  unit,
  dimensions,
  description,
});

export const METRICS = {
  JobsSubmitted: def("JobsSubmitted", "Count", ["Queue", "JobType"], "jobs written by the API"),
  JobsStarted: def("JobsStarted", "Count", ["Queue", "JobType"], "successful claims"),
  JobsSucceeded: def("JobsSucceeded", "Count", ["Queue", "JobType"], "jobs that ended succeeded"),
  JobsFailed: def("JobsFailed", "Count", ["Queue", "JobType", "ErrorCode"], "failed attempts and failed jobs, by error code"),
  JobDuration: def("JobDuration", "Milliseconds", ["Queue", "JobType"], "time one attempt ran"),
  ClaimConflicts: def("ClaimConflicts", "Count", ["Queue"], "claims refused because another worker holds the lease: lock contention (lost leases are LeaseLost)"),
  LeaseLost: def("LeaseLost", "Count", ["Queue"], "workers that found their lease gone and stopped"),
  StoreThrottled: def("StoreThrottled", "Count", [], "DynamoDB calls that failed throttled after the SDK's retries"),
  StuckJobs: def("StuckJobs", "Count", ["State"], "overdue running and cancelling jobs a sweep found, by state (published every sweep, zeros too)"),
  OldestUnclaimedSeconds: def(
    "OldestUnclaimedSeconds",
    "Seconds",
    ["Queue"],
    "how long the oldest claimable queued job has waited without a claim, counted from when it became claimable (published every sweep, 0 when none waits)",
  ),
  UnhelpedRepairs: def("UnhelpedRepairs", "Count", ["Queue"], "queued jobs a sweep rang again although its earlier re-ring had brought no claim"),
  Reclaimed: def("Reclaimed", "Count", ["Queue"], "running jobs whose worker died, taken back by the sweeper"),
  WorkerDeaths: def("WorkerDeaths", "Count", [], "death events (an ECS task stopped, a Lambda runtime crash or timeout, a local process exit) of workers that held jobs"),
  DeadWorkerJobs: def("DeadWorkerJobs", "Count", ["Queue"], "running jobs of a dead worker reclaimed (or ended) at its death event, before their lease ran out"),
  Requeued: def("Requeued", "Count", ["Queue"], "queued jobs whose message the sweeper sent again"),
  PausedSeconds: def("PausedSeconds", "Seconds", [], "how long the longest pause of a queue or a job type has lasted (published every sweep, 0 when nothing is paused)"),
  ScheduleLagSeconds: def("ScheduleLagSeconds", "Seconds", [], "how late the latest schedule a sweep fired was past its tick (published every sweep, 0 when none was due)"),
  SweepDuration: def("SweepDuration", "Milliseconds", [], "time one sweep took"),
  SweeperHeartbeat: def("SweeperHeartbeat", "Count", [], "one per sweep: its absence means the sweeper is dead"),
  WorkerMemoryPercent: def("WorkerMemoryPercent", "Percent", ["Queue"], "worker memory in use, of its limit"),
  MemoryAborts: def("MemoryAborts", "Count", ["Queue"], "jobs aborted by the memory guard"),
} as const;

export type MetricName = keyof typeof METRICS;

export type Dims = Partial<Record<Exclude<Dimension, "Stage">, string>>;

/** The one interface every part emits through; it hides which sink is behind it. */
export interface Metrics {
  emit(name: MetricName, value: number, dims?: Dims): void;
  /** Sends what is buffered (EMF prints, PutMetricData posts); a no-op for sinks that do not buffer. */
  flush(): Promise<void>;
}

export interface MetricPoint {
  name: MetricName;
  value: number;
  dims: Dims;
  at: number;
}

/** Keeps every point in memory: the local runtime's dashboard and the tests read it. */
export class MemoryMetrics implements Metrics {
  readonly points: MetricPoint[] = [];
  constructor(
    private readonly now: () => number = Date.now,
    private readonly max = 100_000,
  ) {}
  emit(name: MetricName, value: number, dims: Dims = {}): void {
    this.points.push({ name, value, dims, at: this.now() });
    if (this.points.length > this.max) this.points.splice(0, this.points.length - this.max);
  }
  async flush(): Promise<void> {}
  sum(name: MetricName, since = 0, match: Dims = {}): number {
    return this.points
      .filter((p) => p.name === name && p.at >= since && Object.entries(match).every(([k, v]) => p.dims[k as keyof Dims] === v))
      .reduce((n, p) => n + p.value, 0);
  }
}

export const noMetrics: Metrics = { emit() {}, async flush() {} };
