/**
 * The controls a queued job passes before it starts, as pure rules: a pause of its queue or its
 * type, a concurrency limit and a rate limit on its type or its concurrency key. Nothing here does
 * I/O; core/controls.ts reads and writes the items these rules decide over, and the store's claim
 * (core/store.ts) asks them in this order: pause, then concurrency, then rate (a start token is
 * taken last, so a job that cannot get a slot spends none).
 *
 * A job a gate refuses is held (`QueuedJob.hold`): it stays queued, spends no attempt, holds no
 * doorbell, and is woken by what frees it (a slot's release, a resume, its rate window) or, if
 * that wake is lost, by the sweeper.
 */
import { priorityRank, type Priority, type QueueName } from "./config.js";

/** What a pause names: a queue or a job type. */
export type PauseTarget = `queue:${string}` | `type:${string}`;
/** What a limit names: a job type, or a concurrency key jobs carry (a tenant, a downstream API). */
export type LimitKey = `type:${string}` | `key:${string}`;

export interface PauseEntry {
  since: number;
  by: string;
}

export interface RateLimit {
  /** At most this many starts … */
  starts: number;
  /** … in any window of this many milliseconds. */
  perMs: number;
}

export interface LimitDef {
  /** At most this many jobs with the key run at once. */
  concurrency?: number;
  rate?: RateLimit;
  updatedAt: number;
  by: string;
}

/**
 * Every pause and limit, in one small item read by every claim (cached for CONTROLS_CACHE_MS).
 * `woken` keeps, for GATE_LIMITS.wakeTombstoneMs, the held-index partitions nothing frees any
 * more (a pause resumed, a concurrency limit removed), so the sweeper wakes what a cut-short
 * resume left held.
 */
export interface ControlSettings {
  pauses: Record<string, PauseEntry>;
  limits: Record<string, LimitDef>;
  woken: Record<string, number>;
  version: number;
}

export const EMPTY_SETTINGS: ControlSettings = { pauses: {}, limits: {}, woken: {}, version: 0 };

/** Why a job is held, and from when; `until` for a rate limit: when its window has room for it. */
export type Hold =
  | { by: "pause"; key: PauseTarget; since: number }
  | { by: "concurrency"; key: LimitKey; limit: number; since: number }
  | { by: "rate"; key: LimitKey; starts: number; perMs: number; since: number; until: number };

/**
 * One slot as a limit's item holds it for a job: when it was taken, and by whom, a nonce of the
 * claim that took it, so only that claim (or the run it became) gives it back. Two claims of one
 * job never share a slot: the second finds the first's and is held like one over the limit,
 * since the first may still land. A slot a waker took for a held job is `handed` until the
 * job's claim adopts it.
 */
export interface SlotStamp {
  at: number;
  by: string;
}
export type SlotEntry = SlotStamp & { handed?: true };

export const GATE_LIMITS = {
  /** A claim reads the settings at most this stale: a pause or a new limit holds claims within a second. */
  settingsCacheMs: 1_000,
  /** A limit's holders are one item, rewritten by every start and end of its key (about 70 bytes each). */
  maxConcurrency: 1_000,
  /** The rate log keeps one entry per start in its window: this bounds its item (about 45 bytes each). */
  maxRateStarts: 500,
  minRatePerMs: 100,
  maxRatePerMs: 24 * 3600_000,
  maxKeyChars: 200,
  /** Settings keep this many pauses and limits at most (the item is read by every claim). */
  maxEntries: 1_000,
  /** A held job's first backstop look by the sweeper, doubling to holdRecheckMaxMs. */
  holdRecheckMs: 60_000,
  holdRecheckMaxMs: 3_600_000,
  /** A slot whose holder is not running is given back only after this long (its claim may be in flight). */
  slotGraceMs: 30_000,
  /** A claim refused because another claim of its job holds the job's slot rings the job again after this (that claim has settled by then). */
  contendedRetryMs: 2_000,
  /** How long a resumed pause or a removed limit stays in `woken` for the sweeper's wake pass. */
  wakeTombstoneMs: 3_600_000,
} as const;

const KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._:@/-]*$/;

/** A concurrency key as a job carries it: short, printable, no spaces. */
export function checkConcurrencyKey(key: string): string | undefined {
  if (!key.length || key.length > GATE_LIMITS.maxKeyChars) return `a concurrency key is 1 to ${GATE_LIMITS.maxKeyChars} characters`;
  if (!KEY_RE.test(key)) return "a concurrency key is letters, digits and . _ : @ / - (for example tenant:acme)";
  return undefined;
}

/** Parses `type:x` or `key:x` into a limit key; a message when it is neither. */
export function parseLimitKey(s: string): { ok: true; key: LimitKey } | { ok: false; message: string } {
  const m = /^(type|key):(.+)$/.exec(s);
  if (!m) return { ok: false, message: `a limit names type:<job type> or key:<concurrency key>, not ${JSON.stringify(s.slice(0, 60))}` };
  const bad = checkConcurrencyKey(m[2]!);
  return bad ? { ok: false, message: bad } : { ok: true, key: s as LimitKey };
}

export function parsePauseTarget(s: string, queues: readonly QueueName[]): { ok: true; target: PauseTarget } | { ok: false; message: string } {
  const m = /^(queue|type):(.+)$/.exec(s);
  if (!m) return { ok: false, message: `a pause names queue:<queue> or type:<job type>, not ${JSON.stringify(s.slice(0, 60))}` };
  if (m[1] === "queue" && !queues.includes(m[2] as QueueName)) return { ok: false, message: `unknown queue ${JSON.stringify(m[2]!.slice(0, 60))}; the queues are ${queues.join(", ")}` };
  const bad = checkConcurrencyKey(m[2]!);
  return bad ? { ok: false, message: bad.replace("a concurrency key", "a job type") } : { ok: true, target: s as PauseTarget };
}

/** What a job is subject to: its queue's and type's pauses, its type's and key's limits. */
export interface Gated {
  id: string;
  type: string;
  queue: QueueName;
  concurrencyKey?: string;
}

export const limitKeysOf = (job: Gated): LimitKey[] => [`type:${job.type}` as LimitKey, ...(job.concurrencyKey ? [`key:${job.concurrencyKey}` as LimitKey] : [])];

/** The pause that holds `job`, if any (its queue's first). */
export function pauseOf(job: Gated, s: ControlSettings): { key: PauseTarget; entry: PauseEntry } | undefined {
  for (const key of [`queue:${job.queue}`, `type:${job.type}`] as PauseTarget[]) {
    const entry = s.pauses[key];
    if (entry) return { key, entry };
  }
  return undefined;
}

/** The job's limit keys that carry a concurrency limit, with it. */
export const concurrencyLimitsOf = (job: Gated, s: ControlSettings): { key: LimitKey; limit: number }[] =>
  limitKeysOf(job).flatMap((key) => (s.limits[key]?.concurrency !== undefined ? [{ key, limit: s.limits[key]!.concurrency! }] : []));

export const rateLimitsOf = (job: Gated, s: ControlSettings): { key: LimitKey; rate: RateLimit }[] =>
  limitKeysOf(job).flatMap((key) => (s.limits[key]?.rate ? [{ key, rate: s.limits[key]!.rate! }] : []));

// ─── the rate log ───────────────────────────────────────────────────────────────────────────

/** One start the rate log remembers: when (the claim's own clock, its attempt's startedAt) and which job. */
export interface LoggedStart {
  at: number;
  job: string;
}

/**
 * The rate log's next state for a start of `job` at `now`, or when it must wait. The log is the
 * starts of the last window, so "fewer than `starts` of them since now − perMs" holds for every
 * window, not only aligned ones: no window of perMs ever holds more than `starts` starts. A
 * claimer that lost its race still counts (the log is a superset of the real starts: safe).
 * `wakeAt` spreads the wakes of the jobs it refuses one start interval apart, so a backlog is
 * woken at the pace it can start, not all at once.
 */
export type RateDecision =
  | { ok: true; log: LoggedStart[] }
  | { ok: false; until: number; nextWake: number };

export function rateDecision(log: readonly LoggedStart[], nextWake: number, rate: RateLimit, job: string, now: number): RateDecision {
  const window = log.filter((s) => s.at > now - rate.perMs);
  if (window.length < rate.starts) return { ok: true, log: [...window, { at: now, job }] };
  const frees = Math.min(...window.map((s) => s.at)) + rate.perMs;
  const until = Math.max(frees, nextWake);
  return { ok: false, until, nextWake: until + Math.ceil(rate.perMs / rate.starts) };
}


// ─── holds ──────────────────────────────────────────────────────────────────────────────────

/**
 * The held index's partition for a hold a waker looks for (a pause's resume, a slot's release).
 * A rate hold has none: it is woken by its own delayed doorbell.
 */
export const holdPartition = (h: Hold): string | undefined => (h.by === "rate" ? undefined : `${h.by}#${h.key}`);
/**
 * The held index's sort key: the job's priority first, then how long it has been held, so a
 * resume or a freed slot wakes the high jobs first and, within a level, the longest-held. Epoch
 * milliseconds stay under the span until the year 33658.
 */
export const holdRank = (h: Hold, priority: Priority | undefined): number => priorityRank(priority) * HOLD_RANK_SPAN + h.since;
const HOLD_RANK_SPAN = 1e15;
export const pausePartition = (target: PauseTarget): string => `pause#${target}`;
export const slotPartition = (key: LimitKey): string => `concurrency#${key}`;

/** The sweeper's backstop look at a held job: doubling from holdRecheckMs while it stays held, at most hourly. */
export function holdRecheckMs(heldForMs: number): number {
  return Math.min(GATE_LIMITS.holdRecheckMaxMs, Math.max(GATE_LIMITS.holdRecheckMs, heldForMs));
}

/**
 * Whether a pause or rate hold still holds, decided from fresh settings. A concurrency hold is
 * not decided here: only taking a slot can tell (core/limits-sweep.ts), and one whose limit is
 * gone holds no more.
 */
export function stillHeld(h: Hold, s: ControlSettings, now: number): boolean {
  if (h.by === "pause") return s.pauses[h.key] !== undefined;
  if (h.by === "concurrency") return false;
  return s.limits[h.key]?.rate !== undefined && h.until > now;
}

/** A person's sentence for a hold (the why view, the stuck report). */
export function holdMessage(h: Hold): string {
  const since = new Date(h.since).toISOString();
  if (h.by === "pause") return `${h.key.replace(":", " ")} is paused; held since ${since}, it starts when it is resumed`;
  if (h.by === "concurrency") return `${h.limit} jobs with ${h.key} run already (its concurrency limit); held since ${since}, it starts when one ends`;
  return `${h.key} may start ${h.starts} jobs per ${h.perMs / 1000} s (its rate limit); it starts at ${new Date(h.until).toISOString()}`;
}

// ─── the sweeper's recount of a limit's slots ──────────────────────────────────────────────

/**
 * What to do with one slot holder the sweeper read, given the holder's record: keep it (its run
 * holds it, taken by the same claim, or it was taken a moment ago and its claim may still land), give it back, or, for a
 * queued holder, first move the job's version on (so a claim still in flight from a frozen
 * worker cannot land on this slot) and then give it back.
 */
export type SlotVerdict = "keep" | "release" | "requeue";

export function slotVerdict(holder: { status: string; slots?: readonly ({ key: string } & SlotStamp)[] } | undefined, key: LimitKey, slot: SlotStamp, now: number): SlotVerdict {
  if (now - slot.at < GATE_LIMITS.slotGraceMs) return "keep";
  if (!holder) return "release";
  if (holder.status === "running") return holder.slots?.some((x) => x.key === key && x.by === slot.by) ? "keep" : "release";
  return holder.status === "queued" ? "requeue" : "release";
}

/** The longest pause now in seconds, 0 when nothing is paused: what the PausedSeconds alarm watches. */
export const longestPauseSeconds = (s: ControlSettings, now: number): number =>
  Object.values(s.pauses).reduce((max, p) => Math.max(max, now - p.since), 0) / 1000;
