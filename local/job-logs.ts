/**
 * The local JobLogSource ("local"): the job lines (core/job-log.ts) every local worker writes,
 * kept in memory by job, for `GET /jobs/{id}/logs` as Logs Insights answers it in the cloud. The
 * system hands it every line its worker processes print (`take`) and every line its in-process
 * Lambda workers log (`tee`).
 *
 * In memory, bounded, and not a file under the data directory, on purpose: these are a developer's
 * logs, as ephemeral as the terminal they also go to; a file would need rotating and a scan per
 * query, and `--memory` runs have no directory. The bounds are per job (its latest PER_JOB lines)
 * and in all (MAX_LINES: the jobs written to least recently go first). An answer that may lack
 * lines says so with complete:false: a job older than this run (its earlier lines died with the
 * last one), a job that lost lines to a bound, and an answer cut at its limit.
 */
import { jobLogLineOf, parseJobLogLine } from "../core/job-log.js";
import type { JobLogLine, JobLogQuery, JobLogSource } from "../core/logs.js";
import type { JobLogger } from "../core/registry.js";

export const PER_JOB = 1_000;
export const MAX_LINES = 100_000;
/** Ids of the jobs evicted whole that are remembered, so their answers can say they are incomplete. */
const MAX_EVICTED_IDS = 10_000;

interface Kept {
  lines: JobLogLine[];
  /** Lines this job lost to PER_JOB. */
  dropped: number;
}

export interface LocalJobLogOptions {
  perJob?: number;
  maxLines?: number;
  /** Epoch ms this run started: a job created before then has lines this log never saw. */
  startedAt?: number;
  /**
   * When a job was created (its record's `createdAt`), to tell a job of an earlier run from a new
   * one: the query's `since` is widened by a margin (core/api/jobs.ts), so it cannot tell. Without
   * it, `since` is taken as the creation.
   */
  createdAt?: (jobId: string) => Promise<number | undefined>;
}

export class LocalJobLogs implements JobLogSource {
  readonly name = "local" as const;
  /** In order of last write: the first entry is the one to evict. */
  private readonly jobs = new Map<string, Kept>();
  private readonly evicted = new Set<string>();
  /** More jobs were evicted than `evicted` remembers: an unknown job may be one of them. */
  private forgotten = false;
  private total = 0;
  private readonly perJob: number;
  private readonly maxLines: number;
  private readonly startedAt: number;
  private readonly createdAt: ((jobId: string) => Promise<number | undefined>) | undefined;

  constructor(o: LocalJobLogOptions = {}) {
    this.createdAt = o.createdAt;
    this.perJob = Math.max(1, o.perJob ?? PER_JOB);
    this.maxLines = Math.max(this.perJob, o.maxLines ?? MAX_LINES);
    this.startedAt = o.startedAt ?? Date.now();
  }

  /** A line a worker process printed (possibly after a `[worker] ` prefix); true if it was a job line. */
  take(text: string): boolean {
    const line = parseJobLogLine(text, Date.now());
    if (line) this.add(line);
    return line !== undefined;
  }

  /**
   * `next` that also keeps each job line it is given: the in-process Lambda workers' logger,
   * whose lines reach no pipe this log could read.
   */
  tee(next: JobLogger): JobLogger {
    const keep = (level: string, message: string, extra: Record<string, unknown> | undefined) => {
      const line = jobLogLineOf({ ...plain(extra), level, message, timestamp: new Date().toISOString() });
      if (line) this.add(line);
    };
    return {
      info: (m, e) => (keep("info", m, e), next.info(m, e)),
      warn: (m, e) => (keep("warn", m, e), next.warn(m, e)),
      error: (m, e) => (keep("error", m, e), next.error(m, e)),
    };
  }

  add(line: JobLogLine): void {
    let kept = this.jobs.get(line.jobId);
    if (kept) this.jobs.delete(line.jobId); // re-inserted below: now the most recently written
    else kept = { lines: [], dropped: 0 };
    this.jobs.set(line.jobId, kept);
    kept.lines.push(line);
    this.total++;
    if (kept.lines.length > this.perJob) {
      kept.lines.shift();
      kept.dropped++;
      this.total--;
    }
    while (this.total > this.maxLines) {
      const [oldest, gone] = this.jobs.entries().next().value as [string, Kept];
      this.jobs.delete(oldest);
      this.total -= gone.lines.length;
      if (this.evicted.size < MAX_EVICTED_IDS) this.evicted.add(oldest);
      else this.forgotten = true;
    }
  }

  async lines(q: JobLogQuery): Promise<{ lines: JobLogLine[]; complete: boolean }> {
    const kept = this.jobs.get(q.jobId);
    const inWindow = (kept?.lines ?? [])
      .filter((l) => {
        const at = Date.parse(l.at);
        return at >= q.since && at <= q.until;
      })
      // Arrival order across processes is not writing order; a line's own timestamp is.
      .sort((a, b) => a.at.localeCompare(b.at));
    const limit = Math.max(0, Math.floor(q.limit));
    const created = (this.createdAt ? await this.createdAt(q.jobId).catch(() => undefined) : undefined) ?? q.since;
    const complete =
      inWindow.length <= limit &&
      created >= this.startedAt &&
      (kept?.dropped ?? 0) === 0 &&
      !this.evicted.has(q.jobId) &&
      !(kept === undefined && this.forgotten);
    return { lines: inWindow.slice(0, limit), complete };
  }
}

/** The fields as they would print: an Error as its name, message and stack rather than `{}`. */
function plain(extra: Record<string, unknown> | undefined): Record<string, unknown> {
  if (!extra) return {};
  return JSON.parse(JSON.stringify(extra, (_k, v: unknown) => (v instanceof Error ? { name: v.name, message: v.message, stack: v.stack } : v))) as Record<string, unknown>;
}
