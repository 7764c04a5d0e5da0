/**
 * Cancel or retry every job that matches, as the admin: "retry all failed jobs of type X" after
 * a bad deploy is fixed, "cancel everything queued on large" in an incident. Each job goes
 * through the same guarded write as a single cancel or retry (recorded with who asked); a job
 * that moved meanwhile is skipped, not forced. One call is bounded in time and in jobs, so it
 * fits API Gateway's 30 s, and hands out a cursor to continue; a dry run counts the same jobs.
 *
 * Inputs: the filter (type and/or queue, a status), dryRun, a cursor from the previous call.
 * Output: how many matched, were acted on and were skipped, and the cursor (null when done).
 */
import { QUEUE_NAMES, type QueueName } from "../config.js";
import { byLane } from "../queue.js";
import { ConflictError, ValidationError } from "../errors.js";
import type { Job, Status } from "../job.js";
import { listJobKeys } from "../listing.js";
import type { Services } from "../services.js";
import type { Caller } from "./identity.js";

export interface BulkRequest {
  type?: string | undefined;
  queue?: QueueName | undefined;
  status?: Status | undefined;
  dryRun?: boolean | undefined;
  cursor?: string | undefined;
}

export interface BulkAnswer {
  matched: number;
  acted: number;
  skipped: number;
  dryRun: boolean;
  nextCursor: string | null;
}

/**
 * What one call may do before it hands out a cursor; and how many passes a cancel makes. A job
 * can move between the statuses a cancel walks while it walks them (a running job that fails and
 * is requeued after the queued pass went by), so a cancel walks them again while its last pass
 * still found something to cancel, up to `cancelPasses`: a queue still being fed would never end.
 */
export const BULK_LIMITS = { jobs: 1000, budgetMs: 20_000, pageSize: 100, cancelPasses: 3 } as const;

/** The statuses each action applies to, and the default when the request names none. */
export const BULK_STATUSES: Record<"cancel" | "retry", { allowed: readonly Status[]; default: readonly Status[] }> = {
  retry: { allowed: ["failed", "cancelled"], default: ["failed"] },
  // A waiting parent too: cancelling it cancels its live children (core/flows.ts).
  cancel: { allowed: ["queued", "running", "waiting"], default: ["queued", "running", "waiting"] },
};

export interface Position {
  /** Index into the statuses being walked. */
  s: number;
  /** The listing cursor within that status; null at its start. */
  c: string | null;
  /** The pass (a cancel's; a retry makes one). */
  p: number;
  /** Jobs acted on in this pass so far. */
  a: number;
}

export async function bulkAct(s: Services, caller: Caller, action: "cancel" | "retry", req: BulkRequest): Promise<BulkAnswer> {
  if (req.type === undefined && req.queue === undefined) throw new ValidationError(`name a type or a queue: a bulk ${action} of every job is not offered`);
  const rule = BULK_STATUSES[action];
  if (req.status !== undefined && !rule.allowed.includes(req.status)) {
    throw new ValidationError(`a bulk ${action} applies to ${rule.allowed.join(" or ")} jobs, not ${req.status}`);
  }
  if (req.queue !== undefined && !QUEUE_NAMES.includes(req.queue)) throw new ValidationError(`unknown queue "${req.queue}"`);
  const statuses = req.status ? [req.status] : rule.default;
  const dryRun = req.dryRun === true;
  const started = Date.now();
  const passes = action === "cancel" && !dryRun ? BULK_LIMITS.cancelPasses : 1;
  let pos: Position | null = req.cursor ? decodePosition(req.cursor, statuses.length, passes) : { s: 0, c: null, p: 0, a: 0 };
  const out = { matched: 0, acted: 0, skipped: 0 };
  while (pos && out.matched < BULK_LIMITS.jobs && Date.now() - started < BULK_LIMITS.budgetMs) {
    const status = statuses[pos.s]!;
    const page = await listJobKeys(s.doc, s.cfg.tableName, { status, ...(req.type ? { type: req.type } : {}) }, pos.c, BULK_LIMITS.pageSize);
    const jobs = (await s.store.recordsOf(page.ids)).filter((j) => j.status === status && (req.queue === undefined || j.queue === req.queue) && !alreadyCancelling(j));
    out.matched += jobs.length;
    const acted = dryRun ? 0 : await actOn(s, caller, action, jobs, out);
    pos = next(pos, page.nextCursor, acted, statuses.length, passes);
  }
  return { ...out, dryRun, nextCursor: pos ? encodePosition(pos) : null };
}

/** A running job whose cancel was asked for already (by this walk's earlier pass, or anyone): nothing left to ask. */
const alreadyCancelling = (j: Job): boolean => j.status === "running" && j.cancelRequested === true;

/** Where the walk goes after a page: on in this status, the next status, another pass, or done. */
export function next(pos: Position, cursor: string | null, acted: number, statuses: number, passes: number): Position | null {
  const a = pos.a + acted;
  if (cursor) return { ...pos, c: cursor, a };
  if (pos.s + 1 < statuses) return { ...pos, s: pos.s + 1, c: null, a };
  return a > 0 && pos.p + 1 < passes ? { s: 0, c: null, p: pos.p + 1, a: 0 } : null;
}

/** Acts on one page's jobs; a retried job's doorbell rings with its page, so no job waits for the sweeper's resend. */
async function actOn(s: Services, caller: Caller, action: "cancel" | "retry", jobs: Job[], out: { acted: number; skipped: number }): Promise<number> {
  const rings: Job[] = [];
  let acted = 0;
  for (const job of jobs) {
    try {
      if (action === "retry") {
        rings.push(await s.store.retry(job.id, caller.id));
      } else {
        await s.store.requestCancel(job.id, caller.id);
      }
      acted++;
    } catch (e) {
      // It moved since the page was read (finished, retried by someone else): not ours to force.
      if (!(e instanceof ConflictError)) throw e;
      out.skipped++;
    }
  }
  out.acted += acted;
  // A failed send loses nothing: the job is queued with a start deadline, and the sweeper sends it.
  await Promise.all(byLane(rings).map(({ lane, ids }) => s.queue.send(lane, ids, 0).catch(() => undefined)));
  return acted;
}

const encodePosition = (p: Position): string => Buffer.from(JSON.stringify(p), "utf8").toString("base64url");

function decodePosition(cursor: string, statuses: number, passes: number): Position {
  const bad = new ValidationError("cursor is not one this route gave out; pass nextCursor from the previous answer unchanged, with the same filter");
  const within = (v: unknown, below: number): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) < below;
  try {
    const p = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as Partial<Position>;
    if (!within(p.s, statuses) || !within(p.p, passes) || !within(p.a, Number.MAX_SAFE_INTEGER) || (p.c !== null && typeof p.c !== "string")) throw bad;
    return { s: p.s, c: p.c ?? null, p: p.p, a: p.a };
  } catch {
    throw bad;
  }
}
