/**
 * Schedules as pure rules: a cadence (a cron expression in a time zone, or a fixed rate), the
 * ticks it makes, and what a sweep does with the ticks that have come since it last looked
 * (catch-up), before the I/O in core/schedules.ts applies the overlap policy to each.
 *
 * A tick's job id derives from the schedule and the tick (its idempotency key), so however many
 * sweeps fire the same tick, and however often a killed sweep fires it again, one job exists.
 */
import { Cron } from "croner";
import type { Priority, QueueName } from "./config.js";

export const OVERLAP_POLICIES = ["skip", "allow", "cancelPrevious"] as const;
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];
export const CATCH_UP_POLICIES = ["none", "one", "all"] as const;
export type CatchUpPolicy = (typeof CATCH_UP_POLICIES)[number];

export type Cadence = { cron: string; timeZone: string } | { everyMs: number };

export const SCHEDULE_LIMITS = {
  maxSchedules: 1_000,
  idChars: 100,
  /** A tick at least a minute after the one before: the sweeper looks every 10 s, so a faster cadence would be fired late or recorded missed while it is healthy. */
  minEveryMs: 60_000,
  maxEveryMs: 366 * 24 * 3600_000,
  /** `all` fires at most this many missed ticks (the newest), by default and at most. */
  defaultCatchUpMax: 100,
  maxCatchUpMax: 1_000,
  /** Runs a schedule keeps (fired, skipped, missed), newest last. */
  runsKept: 20,
  /** `none` still fires a tick this late (the sweeper looks every few seconds); an older one is missed. */
  onTimeMs: 60_000,
  /**
   * A cron's ticks walked per look at most (each step is croner's nextRun, a fraction of a
   * millisecond): past these the newest tick is found by probing back from now, and the ones
   * between are missed, their count estimated.
   */
  scanMax: 2_000,
  /** Ticks one look fires at most: a longer catch-up goes on at the next sweep, from where this one stopped. */
  firePerLook: 100,
  /** The next runs a view lists. */
  nextShown: 5,
} as const;

/** What each tick's job is: resolved from the schedule's request once, as a submit resolves it. */
export interface ScheduledJob {
  type: string;
  queue: QueueName;
  input: unknown;
  maxAttempts: number;
  timeoutMs: number;
  concurrencyKey?: string;
  /** Absent: normal. */
  priority?: Exclude<Priority, "normal">;
}

export type RunOutcome = "fired" | "skipped" | "missed" | "cancelledPrevious";

export interface ScheduleRun {
  tick: number;
  outcome: RunOutcome;
  /** The job the tick made (fired, cancelledPrevious), or the live one it was skipped for. */
  jobId?: string;
  /** A `missed` entry stands for this many ticks, up to `tick`. */
  count?: number;
}

export interface Schedule {
  id: string;
  owner: string;
  cadence: Cadence;
  overlap: OverlapPolicy;
  catchUp: CatchUpPolicy;
  catchUpMax: number;
  job: ScheduledJob;
  paused: boolean;
  /** The first tick not yet handled (fired, skipped or missed). */
  nextAt: number;
  /** A fixed rate's ticks are counted from here. */
  anchor: number;
  lastJobId?: string;
  /**
   * Ticks decided and written but whose jobs may not all be made yet: the next look makes them
   * (idempotently) and records them before it plans anything new. A sweep killed mid-tick leaves
   * exactly these, so no later look re-decides them with another clock.
   */
  pending?: PendingTick[];
  /** The last look that failed (not a lost race), and how many in a row: its next look backs off. */
  lastError?: { at: number; message: string; count: number };
  runs: ScheduleRun[];
  counts: { fired: number; skipped: number; missed: number };
  createdAt: number;
  updatedAt: number;
  version: number;
  /** The nonce of the write this was read from (store-only): every later write is guarded on it. */
  writeId?: string;
}

/** A tick decided by a look: fired (or fired after cancelling the run before) or skipped; its job's id is derived. */
export interface PendingTick {
  tick: number;
  outcome: "fired" | "skipped" | "cancelledPrevious";
  /** The tick's own job (fired), or the live run it was skipped for. */
  jobId: string;
  /** cancelledPrevious: the run it cancels. */
  cancels?: string;
}

/** The id a schedule's tick gives its job, as an idempotency key of the schedule's owner. */
export const SCHEDULE_KEY_PREFIX = "schedule:";
export const tickKey = (scheduleId: string, tick: number): string => `${SCHEDULE_KEY_PREFIX}${scheduleId}:${tick}`;

/** A message when the cadence cannot be used (a bad cron field, an unknown time zone), else undefined. */
export function checkCadence(c: Cadence): string | undefined {
  if ("everyMs" in c) {
    if (!Number.isInteger(c.everyMs) || c.everyMs < SCHEDULE_LIMITS.minEveryMs || c.everyMs > SCHEDULE_LIMITS.maxEveryMs) {
      return `every must be a whole number of seconds from ${SCHEDULE_LIMITS.minEveryMs / 1000} to ${SCHEDULE_LIMITS.maxEveryMs / 1000}`;
    }
    return undefined;
  }
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: c.timeZone });
  } catch {
    return `unknown time zone ${JSON.stringify(c.timeZone.slice(0, 60))}; use an IANA name such as Europe/Paris or UTC`;
  }
  try {
    const cron = new Cron(c.cron, { timezone: c.timeZone, paused: true });
    const next = cron.nextRuns(10, new Date());
    if (!next.length) return `the cron expression ${JSON.stringify(c.cron.slice(0, 60))} never fires`;
    const gap = Math.min(...next.slice(1).map((d, i) => d.getTime() - next[i]!.getTime()));
    if (gap < SCHEDULE_LIMITS.minEveryMs) return `the cron expression ${JSON.stringify(c.cron.slice(0, 60))} fires ${gap / 1000} s apart; a schedule fires at most once a minute`;
  } catch (e) {
    return `invalid cron expression ${JSON.stringify(c.cron.slice(0, 60))}: ${(e as Error).message.replace(/^CronPattern: /, "")}`;
  }
  return undefined;
}

/** The first tick strictly after `after`, or undefined when there is none (a cron that ended). */
export function tickAfter(c: Cadence, anchor: number, after: number): number | undefined {
  if ("everyMs" in c) return after < anchor ? anchor : anchor + (Math.floor((after - anchor) / c.everyMs) + 1) * c.everyMs;
  const next = new Cron(c.cron, { timezone: c.timeZone, paused: true }).nextRun(new Date(after));
  return next ? next.getTime() : undefined;
}

/** Where a resumed schedule goes on: its first tick after now (the ticks it slept through are not fired). */
export const resumedAt = (s: Pick<Schedule, "cadence" | "anchor">, now: number): number => tickAfter(s.cadence, s.anchor, now) ?? Number.MAX_SAFE_INTEGER;

/** The next `n` ticks after `after`. */
export function nextTicks(c: Cadence, anchor: number, after: number, n: number): number[] {
  const out: number[] = [];
  for (let t = tickAfter(c, anchor, after); t !== undefined && out.length < n; t = tickAfter(c, anchor, t)) out.push(t);
  return out;
}

/**
 * What a look at `now` does with the ticks from `nextAt` on: which it tries to fire (oldest
 * first; each then meets the overlap policy), which it records as missed, and the next tick.
 * `none`: only a tick at most onTimeMs late fires; `one`: the newest fires, however late; `all`:
 * every tick fires, at most `catchUpMax` of them (the newest), the older ones missed.
 */
export interface TickPlan {
  fire: number[];
  missed: { count: number; last: number } | undefined;
  nextAt: number | undefined;
}

export function planTicks(s: Pick<Schedule, "cadence" | "anchor" | "nextAt" | "catchUp" | "catchUpMax">, now: number): TickPlan {
  if (s.nextAt > now) return { fire: [], missed: undefined, nextAt: s.nextAt };
  const window = s.catchUp === "all" ? s.catchUpMax : 1;
  const due: number[] = []; // the newest `window` + 1 ticks that have come (the one before those it fires is the last missed)
  let total = 0;
  let nextAt: number | undefined;
  if ("everyMs" in s.cadence) {
    // A fixed rate's ticks are arithmetic (nextAt is on its grid): no walk through a week of seconds.
    const every = s.cadence.everyMs;
    total = Math.floor((now - s.nextAt) / every) + 1;
    for (let i = Math.max(0, total - window - 1); i < total; i++) due.push(s.nextAt + i * every);
    nextAt = s.nextAt + total * every;
  } else {
    let t: number | undefined = s.nextAt;
    for (; t !== undefined && t <= now && total < SCHEDULE_LIMITS.scanMax; t = tickAfter(s.cadence, s.anchor, t)) {
      total++;
      due.push(t);
      if (due.length > window + 1) due.shift();
    }
    if (t !== undefined && t <= now) {
      // Past the scan: the newest tick by probing back from now; the ones between are missed, estimated.
      const newest = newestTick(s.cadence, s.anchor, t, now);
      const spacing = (t - s.nextAt) / Math.max(1, total);
      total += Math.max(1, Math.round((newest - t) / Math.max(1, spacing)));
      due.push(newest);
      due.splice(0, Math.max(0, due.length - 2)); // the newest fires at most; the one before it stands for the missed
      t = tickAfter(s.cadence, s.anchor, newest);
    }
    nextAt = t;
  }
  const newest = due[due.length - 1]!;
  const keep = s.catchUp === "none" && now - newest > SCHEDULE_LIMITS.onTimeMs ? 0 : Math.min(window, due.length);
  const fire = due.slice(due.length - keep);
  const missedCount = total - fire.length;
  const lastMissed = due[due.length - keep - 1];
  return { fire, missed: missedCount > 0 && lastMissed !== undefined ? { count: missedCount, last: lastMissed } : undefined, nextAt };
}

/** The newest tick at or before `now`, at or after `from` (itself a tick): found probing back from now, doubling the step. */
function newestTick(c: Cadence, anchor: number, from: number, now: number): number {
  for (let back = SCHEDULE_LIMITS.minEveryMs; ; back *= 2) {
    const start = Math.max(from - 1, now - back);
    let t = tickAfter(c, anchor, start);
    if (t === undefined || t > now) {
      if (start === from - 1) return from;
      continue;
    }
    for (let next = tickAfter(c, anchor, t); next !== undefined && next <= now; next = tickAfter(c, anchor, t)) t = next;
    return t;
  }
}

/** The runs a schedule keeps after these: the newest SCHEDULE_LIMITS.runsKept. */
export const keptRuns = (runs: readonly ScheduleRun[], added: readonly ScheduleRun[]): ScheduleRun[] => [...runs, ...added].slice(-SCHEDULE_LIMITS.runsKept);
