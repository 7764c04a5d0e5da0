/**
 * The memory guard: samples the worker's memory every few seconds and, above the critical
 * threshold, has the runner abort one job with `memory` before the kernel (or Lambda) kills the
 * whole process and every job in it (memory exhaustion on large inputs). Above the warning threshold it logs; every sample
 * is published as WorkerMemoryPercent, which the WorkerMemory alarm watches.
 *
 * What it measures: inside a cgroup v2 container with a limit (Fargate, Docker) the cgroup's
 * working set (memory.current less inactive file cache, as the kubelet counts it) against
 * memory.max; elsewhere the process's RSS against a configured limit (on Lambda the function's
 * memory size). With neither, there is nothing to compare against and the guard stays off.
 */
import { readFileSync } from "node:fs";
import { MEMORY, type QueueName } from "./config.js";
import type { Metrics } from "./metrics.js";
import type { JobLogger } from "./registry.js";

export interface MemorySample {
  usedBytes: number;
  limitBytes: number;
}

/** One reading; undefined when memory cannot be read now. Tests inject their own. */
export type MemorySampler = () => MemorySample | undefined;

export interface MemoryGuardOptions {
  sampler: MemorySampler;
  intervalMs?: number;
  warnPercent?: number;
  criticalPercent?: number;
  metrics?: Metrics;
  /** The queue this worker serves, as the metric's dimension. */
  queue?: QueueName;
  log?: JobLogger;
  /** Minimum time between two warning log lines. */
  warnLogEveryMs?: number;
}

const MB = 1024 * 1024;

export class MemoryGuard {
  private timer?: NodeJS.Timeout;
  private critical: ((percent: number) => void)[] = [];
  private lastWarnLog = 0;
  readonly warnPercent: number;
  readonly criticalPercent: number;
  readonly intervalMs: number;

  constructor(private readonly o: MemoryGuardOptions) {
    this.warnPercent = o.warnPercent ?? MEMORY.warnPercent;
    this.criticalPercent = o.criticalPercent ?? MEMORY.criticalPercent;
    this.intervalMs = o.intervalMs ?? MEMORY.sampleIntervalMs;
  }

  /** Called on every sample above the critical threshold (the runner aborts a job). */
  onCritical(fn: (percent: number) => void): void {
    this.critical.push(fn);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.check(), this.intervalMs);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * After a job was aborted for memory: a full collection, when the process allows it (node
   * --expose-gc, as the Dockerfile runs it), returns the job's memory now rather than whenever
   * V8 next feels the pressure, so the next job is not aborted for the last one's garbage.
   */
  reclaim(): void {
    (globalThis as { gc?: () => void }).gc?.();
  }

  /** Takes one sample and acts on it; answers the percentage used, when it could be read. */
  check(): number | undefined {
    let sample: MemorySample | undefined;
    try {
      sample = this.o.sampler();
    } catch {
      return undefined;
    }
    if (!sample || !(sample.limitBytes > 0)) return undefined;
    const percent = Math.round((sample.usedBytes / sample.limitBytes) * 1000) / 10;
    this.o.metrics?.emit("WorkerMemoryPercent", percent, this.o.queue ? { Queue: this.o.queue } : {});
    if (percent >= this.warnPercent) {
      const now = Date.now();
      if (now - this.lastWarnLog >= (this.o.warnLogEveryMs ?? 30_000) || percent >= this.criticalPercent) {
        this.lastWarnLog = now;
        this.o.log?.warn("worker memory high", {
          percent,
          usedMb: Math.round(sample.usedBytes / MB),
          limitMb: Math.round(sample.limitBytes / MB),
          critical: percent >= this.criticalPercent,
        });
      }
    }
    if (percent >= this.criticalPercent) for (const fn of this.critical) fn(percent);
    return percent;
  }
}

const readText = (path: string): string | undefined => {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
};

/** The cgroup v2 sampler, when this process runs in a cgroup with a memory limit. */
export function cgroupSampler(root = "/sys/fs/cgroup"): MemorySampler | undefined {
  const max = readText(`${root}/memory.max`);
  if (!max || max === "max" || !Number.isFinite(Number(max))) return undefined;
  const limitBytes = Number(max);
  return () => {
    const current = Number(readText(`${root}/memory.current`));
    if (!Number.isFinite(current)) return undefined;
    const inactive = Number(/^inactive_file (\d+)$/m.exec(readText(`${root}/memory.stat`) ?? "")?.[1] ?? 0);
    return { usedBytes: Math.max(0, current - inactive), limitBytes };
  };
}

/** The process's resident set against a limit given in megabytes. */
export function rssSampler(limitMb: number): MemorySampler {
  return () => ({ usedBytes: process.memoryUsage.rss(), limitBytes: limitMb * MB });
}

const positive = (v: string | undefined): number | undefined => {
  const n = Number(v);
  return v !== undefined && v !== "" && Number.isFinite(n) && n > 0 ? n : undefined;
};

/**
 * The guard a worker process builds from its environment: WARDEN_MEMORY_LIMIT_MB (an explicit
 * limit, which wins), else the cgroup's limit, else Lambda's AWS_LAMBDA_FUNCTION_MEMORY_SIZE.
 * Thresholds: WARDEN_MEMORY_WARN_PERCENT, WARDEN_MEMORY_CRITICAL_PERCENT, WARDEN_MEMORY_SAMPLE_MS.
 * Undefined when no limit is known.
 */
export function memoryGuardFromEnv(
  env: Record<string, string | undefined>,
  extra: Omit<MemoryGuardOptions, "sampler" | "warnPercent" | "criticalPercent" | "intervalMs"> = {},
): MemoryGuard | undefined {
  const explicit = positive(env.WARDEN_MEMORY_LIMIT_MB);
  const lambda = positive(env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE);
  const sampler = explicit ? rssSampler(explicit) : (cgroupSampler() ?? (lambda ? rssSampler(lambda) : undefined));
  if (!sampler) return undefined;
  const warn = positive(env.WARDEN_MEMORY_WARN_PERCENT);
  const critical = positive(env.WARDEN_MEMORY_CRITICAL_PERCENT);
  const interval = positive(env.WARDEN_MEMORY_SAMPLE_MS);
  return new MemoryGuard({
    sampler,
    ...extra,
    ...(warn ? { warnPercent: warn } : {}),
    ...(critical ? { criticalPercent: critical } : {}),
    ...(interval ? { intervalMs: interval } : {}),
  });
}
