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

/** What one call may do before it hands out a cursor. */
export const BULK_LIMITS = { jobs: 1000, budgetMs: 20_000, pageSize: 100 } as const;

/** The statuses each action applies to, and the default when the request names none. */
export const BULK_STATUSES: Record<"cancel" | "retry", { allowed: readonly Status[]; default: readonly Status[] }> = {
  retry: { allowed: ["failed", "cancelled"], default: ["failed"] },
  cancel: { allowed: ["queued", "running"], default: ["queued", "running"] },
};

interface Position {
  /** Index into the statuses being walked. */
  s: number;
  /** The listing cursor within that status; null at its start. */
  c: string | null;
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
  let pos: Position | null = req.cursor ? decodePosition(req.cursor, statuses.length) : { s: 0, c: null };
  const out = { matched: 0, acted: 0, skipped: 0 };
  const rings = new Map<QueueName, string[]>();
  while (pos && out.matched < BULK_LIMITS.jobs && Date.now() - started < BULK_LIMITS.budgetMs) {
    const status = statuses[pos.s]!;
    const page = await listJobKeys(s.doc, s.cfg.tableName, { status, ...(req.type ? { type: req.type } : {}) }, pos.c, BULK_LIMITS.pageSize);
    const jobs = (await s.store.recordsOf(page.ids)).filter((j) => j.status === status && (req.queue === undefined || j.queue === req.queue));
    out.matched += jobs.length;
    if (!dryRun) await actOn(s, caller, action, jobs, out, rings);
    pos = page.nextCursor ? { s: pos.s, c: page.nextCursor } : pos.s + 1 < statuses.length ? { s: pos.s + 1, c: null } : null;
  }
  // A retried job's doorbell: without it the job would wait for the sweeper's resend.
  for (const [queue, ids] of rings) await s.queue.send(queue, ids, 0).catch(() => undefined);
  return { ...out, dryRun, nextCursor: pos ? encodePosition(pos) : null };
}

async function actOn(s: Services, caller: Caller, action: "cancel" | "retry", jobs: Job[], out: { acted: number; skipped: number }, rings: Map<QueueName, string[]>): Promise<void> {
  for (const job of jobs) {
    try {
      if (action === "retry") {
        const q = await s.store.retry(job.id, caller.id);
        rings.set(q.queue, [...(rings.get(q.queue) ?? []), q.id]);
      } else {
        await s.store.requestCancel(job.id, caller.id);
      }
      out.acted++;
    } catch (e) {
      // It moved since the page was read (finished, retried by someone else): not ours to force.
      if (!(e instanceof ConflictError)) throw e;
      out.skipped++;
    }
  }
}

const encodePosition = (p: Position): string => Buffer.from(JSON.stringify(p), "utf8").toString("base64url");

function decodePosition(cursor: string, statuses: number): Position {
  const bad = new ValidationError("cursor is not one this route gave out; pass nextCursor from the previous answer unchanged, with the same filter");
  try {
    const p = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as Partial<Position>;
    if (!Number.isInteger(p.s) || p.s! < 0 || p.s! >= statuses || (p.c !== null && typeof p.c !== "string")) throw bad;
    return { s: p.s!, c: p.c ?? null };
  } catch {
    throw bad;
  }
}
