/**
 * Why a job is not running now, in one answer a person can act on (`warden why`, `GET
 * /jobs/{id}/why`, the dashboard's detail view). Decided from the job's record and its worker's
 * presence alone, with no I/O, so the three places cannot disagree. A later state (waiting for
 * children, parked behind a limit) is a new reason here.
 */
import type { ChildCounts } from "./flow.js";
import { readyAtOf, ringsOf, type Job, type Status } from "./job.js";
import { holdMessage } from "./gates.js";
import { runtimeDeadline } from "./lifecycle.js";
import { presenceState, silentSince, type WorkerInfo } from "./workers.js";

export const WHY_REASONS = [
  /** queued: its runAt has not come. */
  "run_at",
  /** queued: an attempt failed and the retry waits out its backoff. */
  "backoff",
  /** queued: ready, its doorbell rang, no worker has claimed it yet (within its start deadline). */
  "waiting",
  /** queued: the sweeper re-rang its doorbell and still no worker claimed it. */
  "not_claimed",
  /** running: a worker holds its lease and heartbeats. */
  "running",
  /** running: its lease is held, but the worker holding it has stopped reporting (frozen, or cut off). */
  "worker_unresponsive",
  /** running: no heartbeat within the lease; the sweeper takes it back on its next sweep. */
  "lease_expired",
  /** running: a cancel was asked for; the worker stops on its next heartbeat, or the sweeper cancels it. */
  "cancel_requested",
  /** waiting: a parent whose children have not all ended; it holds no worker. */
  "children",
  /** queued: its queue or type is paused; it starts when resumed (core/gates.ts). */
  "paused",
  /** queued: its type or key has as many jobs running as its concurrency limit allows; it starts when one ends. */
  "concurrency_limit",
  /** queued: its type or key started as many jobs as its rate limit allows in the window; it starts when the window has room. */
  "rate_limit",
  "succeeded",
  "failed",
  "attempts_exhausted",
  "timeout",
  "cancelled",
] as const;
export type WhyReason = (typeof WHY_REASONS)[number];

export interface Why {
  state: Status;
  reason: WhyReason;
  message: string;
  /** Epoch ms the reason has held since, when known. */
  since: number | null;
  /** Epoch ms it holds until (a runAt, a lease's end, a cancel's grace), when known. */
  until: number | null;
  worker: string | null;
  /** Doorbells the sweeper re-rang while it waited (queued only). */
  rings: number | null;
}

export interface WhyContext {
  now: number;
  cancelGraceMs: number;
  /** The presence entry of the worker the job names, if it is listed. */
  worker?: WorkerInfo;
  /** How often a worker reports its presence: past this unseen it is unresponsive. */
  reportEveryMs: number;
  /** A waiting parent's children, counted by status. */
  children?: ChildCounts;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export function whyNotRunning(job: Job, c: WhyContext): Why {
  const base = { state: job.status, since: null, until: null, worker: null, rings: null };
  switch (job.status) {
    case "queued": {
      const rings = ringsOf(job);
      const readyAt = readyAtOf(job);
      if (job.hold) {
        const reason: WhyReason = job.hold.by === "pause" ? "paused" : job.hold.by === "concurrency" ? "concurrency_limit" : "rate_limit";
        return { ...base, reason, since: job.hold.since, until: job.hold.by === "rate" ? job.hold.until : null, rings, message: holdMessage(job.hold) };
      }
      if (job.runAt !== undefined && job.runAt > c.now) {
        const last = job.history.at(-1);
        if (last?.outcome === "retried") {
          const code = last.error ?? job.error?.code ?? "an error";
          return { ...base, reason: "backoff", since: last.endedAt, until: job.runAt, rings, message: `attempt ${last.attempt} failed (${code}); the retry waits out its backoff until ${iso(job.runAt)}` };
        }
        return { ...base, reason: "run_at", since: job.createdAt, until: job.runAt, rings, message: `scheduled: it may start at ${iso(job.runAt)}` };
      }
      if (rings > 0) {
        return {
          ...base,
          reason: "not_claimed",
          since: readyAt,
          until: null,
          rings,
          message: `ready since ${iso(readyAt)}; the sweeper rang its doorbell again ${rings} time${rings === 1 ? "" : "s"} and no worker claimed it: check that ${job.queue} workers are running (warden workers)`,
        };
      }
      return { ...base, reason: "waiting", since: readyAt, until: job.dueAt, rings, message: `ready since ${iso(readyAt)}, waiting for a ${job.queue} worker; if none claims it by ${iso(job.dueAt)} the sweeper rings again` };
    }
    case "running": {
      const worker = job.workerId;
      if (job.cancelRequested) {
        const at = job.cancelRequestedAt ?? job.updatedAt;
        return { ...base, worker, reason: "cancel_requested", since: at, until: at + c.cancelGraceMs, message: `cancel requested at ${iso(at)}; ${worker} stops on its next heartbeat, or the sweeper cancels it at ${iso(at + c.cancelGraceMs)}` };
      }
      if (job.leaseExpiresAt < c.now) {
        return { ...base, worker, reason: "lease_expired", since: job.heartbeatAt, until: null, message: `no heartbeat from ${worker} since ${iso(job.heartbeatAt)}; its lease ran out at ${iso(job.leaseExpiresAt)} and the sweeper takes the job back on its next sweep` };
      }
      // A recent heartbeat is the worker's own word that it is alive, whatever its presence says.
      const seen = c.worker ? presenceState(c.worker, c.now, c.reportEveryMs) : undefined;
      if (silentSince(job.heartbeatAt, c.now, c.reportEveryMs) && (seen === "unresponsive" || seen === "dead")) {
        const last = c.worker!.lastSeenAt;
        return {
          ...base,
          worker,
          reason: "worker_unresponsive",
          since: last,
          until: job.leaseExpiresAt,
          message: `${worker} holds its lease until ${iso(job.leaseExpiresAt)} but has not reported since ${iso(last)}; if it stays silent the job is taken back when the lease ends`,
        };
      }
      const limit = runtimeDeadline(job, c.now);
      return { ...base, worker, reason: "running", since: job.startedAt, until: job.leaseExpiresAt, message: `running on ${worker} (attempt ${job.attempts}), lease held until ${iso(job.leaseExpiresAt)}; runtime limit ${iso(limit)}` };
    }
    case "waiting": {
      const k = c.children;
      const left = k ? `${k.total - k.succeeded - k.failed - k.cancelled} of its ${k.total} children have not ended (${k.queued} queued, ${k.running} running, ${k.waiting} waiting)` : `its ${job.flow.total} children have not all ended`;
      return { ...base, reason: "children", since: job.waitingSince, until: job.dueAt, message: `waiting for its children${job.flow.round > 0 ? ` (round ${job.flow.round + 1})` : ""}, ${job.flow.policy}: ${left}; it resumes when the last one ends, and the sweeper checks the flow at ${iso(job.dueAt)}` };
    }
    default: {
      const finishedAt = (job as { finishedAt?: number }).finishedAt ?? job.updatedAt;
      if (job.status === "succeeded") return { ...base, reason: "succeeded", since: finishedAt, message: `succeeded at ${iso(finishedAt)}` };
      if (job.status === "cancelled") return { ...base, reason: "cancelled", since: finishedAt, message: job.error.message };
      const code = job.error.code;
      const reason: WhyReason = code === "attempts_exhausted" ? "attempts_exhausted" : code === "timeout" ? "timeout" : "failed";
      return { ...base, reason, since: finishedAt, message: `${code}: ${job.error.message}` };
    }
  }
}
