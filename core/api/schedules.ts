/**
 * The schedules' routes, free of HTTP (docs/jobs.md "Schedules"): create, list, read (with its
 * next runs and its last ones), update, pause, resume and delete. A schedule belongs to its
 * creator, as a job does; the admin sees and manages every one. What each tick fires is checked
 * and resolved once, here, as a submit is (type, input, queue, attempts, runtime limit), so a
 * schedule that was accepted fires jobs that are.
 */
import { DEFAULT_PRIORITY, LIMITS, storedPriority, type Priority } from "../config.js";
import { checkSize } from "../store.js";
import { keptRuns, nextTicks, planTicks, resumedAt, SCHEDULE_LIMITS, tickAfter, type Cadence, type Schedule, type ScheduledJob } from "../schedule.js";
import type { Services } from "../services.js";
import { ApiError } from "./errors.js";
import type { Caller } from "./identity.js";
import type { ApiLog } from "./jobs.js";
import { scheduleId, type ScheduleUpdate } from "./requests.js";

export interface ApiSchedule {
  id: string;
  type: string;
  queue: string;
  input: unknown;
  concurrencyKey: string | null;
  priority: Priority;
  maxAttempts: number;
  timeoutSeconds: number;
  cron: string | null;
  timeZone: string | null;
  everySeconds: number | null;
  overlap: Schedule["overlap"];
  catchUp: Schedule["catchUp"];
  catchUpMax: number;
  paused: boolean;
  /** The next ticks (none while paused). */
  nextRuns: string[];
  /** The last ticks handled, oldest first: fired (its job), skipped (the live run it was skipped for), missed (how many). */
  lastRuns: { at: string; outcome: string; jobId: string | null; count: number | null }[];
  counts: { fired: number; skipped: number; missed: number };
  lastJobId: string | null;
  createdAt: string;
  updatedAt: string;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export class SchedulesApi {
  constructor(
    private readonly s: Services,
    private readonly log: ApiLog,
  ) {}

  async create(caller: Caller, req: ScheduleUpdate & { id: string }): Promise<ApiSchedule> {
    const now = this.s.now();
    const cadence = cadenceOf(req);
    const first = firstTick(cadence, now);
    const schedule = await this.s.store.schedules.create({
      id: req.id,
      owner: caller.id,
      cadence,
      overlap: req.overlap ?? "skip",
      catchUp: req.catchUp ?? "one",
      catchUpMax: req.catchUpMax ?? SCHEDULE_LIMITS.defaultCatchUpMax,
      job: this.jobOf(req),
      paused: req.paused ?? false,
      nextAt: first,
      anchor: now,
      runs: [],
      counts: { fired: 0, skipped: 0, missed: 0 },
      createdAt: now,
      updatedAt: now,
    });
    this.log.info("schedule created", { schedule: schedule.id, caller: caller.id });
    return view(schedule);
  }

  async list(caller: Caller): Promise<{ schedules: ApiSchedule[] }> {
    const all = await this.s.store.schedules.list();
    return { schedules: all.filter((x) => caller.admin || x.owner === caller.id).map((x) => view(x)) };
  }

  async get(caller: Caller, id: string): Promise<ApiSchedule> {
    return view(await this.readable(caller, id));
  }

  /** Replaces what it fires and when; its runs and counts stay. A new cadence counts from now. */
  async update(caller: Caller, id: string, req: ScheduleUpdate): Promise<ApiSchedule> {
    const prev = await this.readable(caller, id);
    const now = this.s.now();
    const cadence = cadenceOf(req);
    const same = sameCadence(cadence, prev.cadence);
    const paused = req.paused ?? prev.paused;
    // A new cadence drops the old one's ticks that came and were not fired yet: recorded as missed, not lost silently.
    const dropped = same ? 0 : dueTicks(prev, now);
    const next: Schedule = {
      ...prev,
      cadence,
      overlap: req.overlap ?? "skip",
      catchUp: req.catchUp ?? "one",
      catchUpMax: req.catchUpMax ?? SCHEDULE_LIMITS.defaultCatchUpMax,
      job: this.jobOf(req),
      paused,
      // A new cadence counts from now; a resume (here as by POST …/resume) goes on from the next tick after now.
      ...(!same ? { nextAt: firstTick(cadence, now), anchor: now } : prev.paused && !paused ? { nextAt: resumedAt(prev, now) } : {}),
      ...(dropped ? { runs: keptRuns(prev.runs, [{ tick: now, outcome: "missed", count: dropped }]), counts: { ...prev.counts, missed: prev.counts.missed + dropped } } : {}),
      updatedAt: now,
    };
    const written = await this.s.store.schedules.replace(prev, next);
    this.log.info("schedule updated", { schedule: id, caller: caller.id });
    return view(written);
  }

  async setPaused(caller: Caller, id: string, paused: boolean): Promise<ApiSchedule> {
    const written = await this.s.store.schedules.setPaused(await this.readable(caller, id), paused);
    this.log.info(paused ? "schedule paused" : "schedule resumed", { schedule: id, caller: caller.id });
    return view(written);
  }

  async delete(caller: Caller, id: string): Promise<{ deleted: string }> {
    await this.readable(caller, id);
    await this.s.store.schedules.delete(id);
    this.log.info("schedule deleted", { schedule: id, caller: caller.id });
    return { deleted: id };
  }

  private async readable(caller: Caller, id: string): Promise<Schedule> {
    const s = scheduleId.safeParse(id).success ? await this.s.store.schedules.get(id) : undefined;
    if (!s || (s.owner !== caller.id && !caller.admin)) throw new ApiError("not_found", `no schedule ${JSON.stringify(id.slice(0, 100))}`);
    return s;
  }

  /** What each tick fires, checked and resolved as a submit is. */
  private jobOf(req: ScheduleUpdate): ScheduledJob {
    const { type, input } = this.s.registry.parseInput(req.type, req.input);
    if (req.timeoutSeconds !== undefined && req.timeoutSeconds * 1000 > type.limits.timeoutMs) {
      throw new ApiError("invalid_request", `timeoutSeconds may be at most ${Math.floor(type.limits.timeoutMs / 1000)} for job type "${type.name}"`);
    }
    checkSize("the input", input, LIMITS.maxInputBytes);
    return {
      type: type.name,
      queue: req.queue ?? this.s.registry.queueFor(type, input),
      input: input ?? null,
      maxAttempts: req.maxAttempts ?? Math.min(type.limits.maxAttempts, LIMITS.maxAttempts),
      timeoutMs: req.timeoutSeconds !== undefined ? req.timeoutSeconds * 1000 : type.limits.timeoutMs,
      ...(req.concurrencyKey !== undefined ? { concurrencyKey: req.concurrencyKey } : {}),
      ...storedPriority(req.priority),
    };
  }
}

const sameCadence = (a: Cadence, b: Cadence): boolean =>
  "everyMs" in a ? "everyMs" in b && a.everyMs === b.everyMs : "cron" in b && a.cron === b.cron && a.timeZone === b.timeZone;

/** How many of the schedule's ticks have come and not been fired (an update replacing its cadence drops them). */
const dueTicks = (s: Schedule, now: number): number => {
  if (s.paused || s.nextAt > now) return 0;
  const plan = planTicks({ ...s, catchUp: "all", catchUpMax: SCHEDULE_LIMITS.maxCatchUpMax }, now);
  return plan.fire.length + (plan.missed?.count ?? 0);
};

const cadenceOf = (req: ScheduleUpdate): Cadence => (req.cron !== undefined ? { cron: req.cron, timeZone: req.timeZone ?? "UTC" } : { everyMs: req.everySeconds! * 1000 });

/** A fixed rate's first tick is one interval after it is made; a cron's, its next match. */
const firstTick = (c: Cadence, now: number): number => ("everyMs" in c ? now + c.everyMs : (tickAfter(c, now, now) ?? Number.MAX_SAFE_INTEGER));

export function view(s: Schedule): ApiSchedule {
  const cron = "cron" in s.cadence ? s.cadence : undefined;
  const every = "everyMs" in s.cadence ? s.cadence.everyMs : undefined;
  const upcoming = s.paused ? [] : [s.nextAt, ...nextTicks(s.cadence, s.anchor, s.nextAt, SCHEDULE_LIMITS.nextShown - 1)].filter((t) => t < Number.MAX_SAFE_INTEGER);
  return {
    id: s.id,
    type: s.job.type,
    queue: s.job.queue,
    input: s.job.input,
    concurrencyKey: s.job.concurrencyKey ?? null,
    priority: s.job.priority ?? DEFAULT_PRIORITY,
    maxAttempts: s.job.maxAttempts,
    timeoutSeconds: Math.round(s.job.timeoutMs / 1000),
    cron: cron?.cron ?? null,
    timeZone: cron?.timeZone ?? null,
    everySeconds: every !== undefined ? every / 1000 : null,
    overlap: s.overlap,
    catchUp: s.catchUp,
    catchUpMax: s.catchUpMax,
    paused: s.paused,
    nextRuns: upcoming.map(iso),
    lastRuns: s.runs.map((r) => ({ at: iso(r.tick), outcome: r.outcome, jobId: r.jobId ?? null, count: r.count ?? null })),
    counts: s.counts,
    lastJobId: s.lastJobId ?? null,
    createdAt: iso(s.createdAt),
    updatedAt: iso(s.updatedAt),
  };
}
