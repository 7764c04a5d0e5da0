/**
 * An attempt's full error: the message its history entry cuts short, and the stack trace of what
 * the handler threw. It is written once, by the worker whose attempt failed, as an item of its
 * own beside the job's record (`<jobId>#attempt#<n>#<startedAt>`), before the record write that
 * marks the entry `detail: true`, for the reason core/values.ts gives: the record is rewritten on
 * every heartbeat, and 4 KB of stack in it would cost 4 units on each one, for ever.
 *
 * The key is the attempt's (its number and start time), not a write's: an attempt fails once, so
 * a resend or a completer's retry of the same write finds its own item. A worker that lost its
 * lease may still write the item for its attempt, but the record, fenced, never marks it: the
 * reader follows only entries the record marks.
 */
import { LIMITS } from "./config.js";
import type { AttemptRecord, Job } from "./job.js";
import type { AttemptDetail } from "./lifecycle.js";
import type { ValueItem, ValueStore } from "./values.js";

const DAY_MS = 24 * 3600_000;

export const detailKey = (jobId: string, attempt: number, startedAt: number): string => [jobId, "attempt", attempt, startedAt].join("#");

/** A stack trace bounded in lines and characters; the top frames are the ones that say where. */
export function boundedStack(stack: string | undefined): string | undefined {
  if (!stack) return undefined;
  const lines = stack.split("\n");
  const kept = lines.slice(0, LIMITS.stackLines).join("\n");
  const cut = kept.length > LIMITS.stackChars ? `${kept.slice(0, LIMITS.stackChars - 1)}…` : kept;
  return lines.length > LIMITS.stackLines ? `${cut}\n    … ${lines.length - LIMITS.stackLines} more lines` : cut;
}

/**
 * The detail's item. It lives as long as the job may be retried with this attempt in its history:
 * the record's own expiry when the job has ended, else its runtime limit plus the retention.
 */
export function detailItem(job: Job, d: AttemptDetail, nowMs: number, retentionDays: number): ValueItem {
  const kept = "expiresAt" in job && typeof job.expiresAt === "number" ? job.expiresAt * 1000 : undefined;
  const exp = kept ?? nowMs + job.timeoutMs + retentionDays * DAY_MS;
  const stack = boundedStack(d.stack);
  return {
    id: detailKey(job.id, d.attempt, d.startedAt),
    json: JSON.stringify({ message: d.message.slice(0, LIMITS.maxErrorMessageChars), ...(stack ? { stack } : {}) }),
    expiresAt: Math.ceil(exp / 1000),
  };
}

/** Each kept attempt with its error, the marked ones with their full message and stack (one batched read). */
export async function attemptsWithDetail(values: ValueStore, job: Job): Promise<(AttemptRecord & { stack: string | null; fullMessage: string | null })[]> {
  const keys = job.history.filter((h) => h.detail).map((h) => detailKey(job.id, h.attempt, h.startedAt));
  const found = keys.length ? await values.readJson(keys) : new Map<string, string>();
  return job.history.map((h) => {
    const json = h.detail ? found.get(detailKey(job.id, h.attempt, h.startedAt)) : undefined;
    const d = json ? (JSON.parse(json) as { message?: string; stack?: string }) : undefined;
    return { ...h, stack: d?.stack ?? null, fullMessage: d?.message ?? null };
  });
}
