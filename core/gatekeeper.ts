/**
 * The gates' I/O around a claim (the rules are core/gates.ts, the items core/controls.ts):
 *
 * - `pass`: before a queued job's claim, in order: its queue's and type's pauses, a slot of each
 *   of its concurrency limits, then a start of each of its rate limits. Answers the slots taken
 *   (stamped with a nonce of this claim's: another claim of the job racing it cannot take the
 *   same slot, so neither can give back the other's) and the start's time, or the hold to
 *   write. What it took is given back, and handed on, when the claim does not land (`undo`).
 * - `passRunning`: a takeover of an expired lease is an attempt's start too: paused or over its
 *   rate, it is refused and left for the sweeper's reclaim (its slots it holds already).
 * - `released`: after a write that took a job out of running: its slots go back and each is
 *   handed straight to the longest-held job of its key, which is woken (its slot already taken
 *   for it, so a fresh arrival cannot take it first).
 * - `wake`: unholds held jobs of a partition whose gate is open and rings their doorbells (a
 *   resume, a removed limit, the sweeper's look).
 *
 * Everything here is best effort after the job's own write: a slot that is not given back, or a
 * wake that is lost, is found by the sweeper (core/limits-sweep.ts), and a held job's own deadline
 * is the backstop for the rest.
 */
import { eachBounded } from "./bounded.js";
import { laneOf, TIMINGS } from "./config.js";
import type { Controls, SlotTake } from "./controls.js";
import {
  concurrencyLimitsOf,
  pauseOf,
  rateLimitsOf,
  slotPartition,
  type ControlSettings,
  type Hold,
  GATE_LIMITS,
  type LimitKey,
  type SlotStamp,
} from "./gates.js";
import type { HeldSlots, Job, QueuedJob, RunningJob } from "./job.js";
import * as life from "./lifecycle.js";
import type { Change, Clock } from "./lifecycle.js";
import type { Doorbell } from "./queue.js";
import { newNonce, type Recognize, type WriteResult } from "./store-write.js";

/**
 * `startAt`: the attempt's start, as its rate logs recorded it (never before now, and never
 * before a start already logged, so no log's window is read out of order).
 * `early`: a rate hold whose time has not come, refused without touching its log.
 */
export type GatePass = { ok: true; slots: HeldSlots; startAt: number } | { ok: false; hold: Hold; early?: true } | Contended;

/**
 * Another claim of the job holds its slot, taken a moment ago: that claim may be about to land,
 * or to lose and give the slot back. Not a hold (a hold written now could leave the job held on a
 * key with room, or send it to the back of the line): the claim is refused as contended and the
 * job's doorbell rung again shortly, when the other claim has settled.
 */
export type Contended = { ok: false; contended: true };

export interface GatekeeperDeps {
  controls: Controls;
  clock: () => Clock;
  doorbell?: Doorbell | undefined;
  write: <J extends Job>(change: Change<J>, recognize: Recognize) => Promise<WriteResult<J>>;
  getRecord: (id: string) => Promise<Job | undefined>;
}

/** Wakes in flight at once (a resume of a long pause wakes many). */
const WAKE_CONCURRENCY = 16;
/** How many held jobs one look at a partition reads beyond the ones it means to wake (some were woken already). */
const WAKE_SLACK = 4;
/** Rounds that bring a job's rate logs to one start time (a job has at most two limit keys). */
const RATE_ROUNDS = 3;

type RateHold = Extract<Hold, { by: "rate" }>;

export class Gatekeeper {
  constructor(private readonly d: GatekeeperDeps) {}

  /** The gates a queued job must pass before it is claimed at `now`. */
  async pass(job: QueuedJob, now: number): Promise<GatePass> {
    const s = await this.d.controls.settings();
    // An early doorbell of a rate hold (a duplicate, a delay SQS could not make as long): no log is read.
    if (job.hold?.by === "rate" && job.hold.until > now && s.limits[job.hold.key]?.rate) return { ok: false, hold: job.hold, early: true };
    const paused = pauseOf(job, s);
    if (paused) return { ok: false, hold: { by: "pause", key: paused.key, since: now } };
    const slots: ({ key: LimitKey } & SlotStamp)[] = [];
    const limits = concurrencyLimitsOf(job, s);
    const stamp: SlotStamp = { at: now, by: newNonce() };
    for (const [i, { key, limit }] of limits.entries()) {
      let take: SlotTake;
      try {
        take = await this.d.controls.acquireSlot(key, limit, job.id, stamp);
      } catch (e) {
        await this.undo(job.id, slots);
        throw e;
      }
      if (take.taken) {
        slots.push({ key, ...stamp });
        continue;
      }
      if (take.held && now - take.held.at < GATE_LIMITS.slotGraceMs) {
        // Another claim's of this job, and it may still land: only what this claim took goes back.
        await this.undo(job.id, slots);
        return { ok: false, contended: true };
      }
      // Full, or the job holds a slot older than any claim in flight (its claimer crashed, or its
      // give-back was lost): held either way, and the sweeper's recount gives that slot back.
      // A slot of a later key may have been handed to this job while it waited: it goes on too.
      await this.undo(job.id, [...slots, ...(await this.handedTo(job.id, limits.slice(i + 1).map((l) => l.key)))]);
      return { ok: false, hold: { by: "concurrency", key, limit, since: now } };
    }
    let rated: { ok: true; at: number } | { ok: false; hold: RateHold };
    try {
      rated = await this.rate(job, s, now);
    } catch (e) {
      await this.undo(job.id, slots);
      throw e;
    }
    if (!rated.ok) {
      await this.undo(job.id, slots);
      return { ok: false, hold: rated.hold };
    }
    return { ok: true, slots, startAt: rated.at };
  }

  /**
   * A start in each of the job's rate logs, all at one time (the start's), or the hold it must
   * wait under. A log that has a later start than `now` moves the start to it: the claim's
   * clock may be behind another claimer's, and a start logged out of order would let a later
   * look drop a start still inside its window.
   */
  private async rate(job: Job, s: ControlSettings, now: number): Promise<{ ok: true; at: number } | { ok: false; hold: RateHold }> {
    const limits = rateLimitsOf(job, s);
    let at = now;
    for (let round = 0; round < RATE_ROUNDS; round++) {
      let moved = false;
      for (const { key, rate } of limits) {
        const taken = await this.d.controls.takeStart(key, rate, job.id, at);
        if (!taken.ok) return { ok: false, hold: { by: "rate", key, starts: rate.starts, perMs: rate.perMs, since: now, until: taken.until } };
        if (taken.at > at) {
          at = taken.at;
          moved = true;
        }
      }
      if (!moved) return { ok: true, at };
    }
    return { ok: true, at };
  }

  /** A takeover of an expired lease: undefined when it may start (at the answered time), else why not. */
  async passRunning(job: RunningJob, now: number): Promise<{ ok: true; at: number } | { ok: false; hold: Hold }> {
    const s = await this.d.controls.settings();
    const paused = pauseOf(job, s);
    if (paused) return { ok: false, hold: { by: "pause", key: paused.key, since: now } };
    return this.rate(job, s, now);
  }

  /** The slots of `keys` a waker handed the job (not another claim's of it), with their stamps. */
  private async handedTo(jobId: string, keys: readonly LimitKey[]): Promise<({ key: LimitKey } & SlotStamp)[]> {
    const found = await Promise.all(keys.map(async (key) => ({ key, entry: (await this.d.controls.holders(key))[jobId] })));
    return found.flatMap(({ key, entry }) => (entry?.handed ? [{ key, at: entry.at, by: entry.by }] : []));
  }

  /**
   * Gives back the slots a claim took and did not use (each only if its own: another claim's,
   * or a later take, stays), and hands each on to the longest-held job of its key.
   */
  async undo(jobId: string, slots: HeldSlots): Promise<void> {
    if (!slots.length) return;
    const s = await this.d.controls.settings();
    await Promise.all(
      slots.map(async ({ key, by }) => {
        await this.d.controls.releaseSlot(key, jobId, by);
        await this.handOff(key, s, 1);
      }),
    ).catch(() => undefined);
  }

  /**
   * Writes the hold a gate decided and, for a rate hold, rings the doorbell for when its window
   * has room (one SQS can delay: a later one is the sweeper's, at `until`). An early doorbell of a
   * rate hold writes nothing and is rung again for the rest of its wait. Answers the job as stored.
   */
  async hold(job: QueuedJob, gate: Exclude<GatePass, { ok: true } | Contended>): Promise<Job> {
    const h = gate.hold;
    if (gate.early) {
      if (h.by === "rate") await this.ring(job, h.until - this.d.clock().now);
      return job;
    }
    const w = await this.d.write(life.hold(job, h, this.d.clock()), "write");
    if (!w.applied) return w.found ?? job;
    if (h.by === "rate") await this.ring(w.job as QueuedJob, h.until - this.d.clock().now);
    return w.job;
  }

  /** After `prev` left running: its slots go back, each handed to the longest-held job of its key. */
  async released(prev: RunningJob): Promise<void> {
    if (prev.slots?.length) await this.undo(prev.id, prev.slots);
  }

  /**
   * Up to `n` of the key's held jobs, longest held first, each given a slot before it is woken.
   * Stops at the first slot it cannot take (the limit is full again). Answers the jobs it woke.
   */
  async handOff(key: LimitKey, s: ControlSettings, n: number): Promise<string[]> {
    const limit = s.limits[key]?.concurrency;
    if (limit === undefined) return this.wake(slotPartition(key), n);
    const woken: string[] = [];
    for (const id of await this.d.controls.held(slotPartition(key), n + WAKE_SLACK)) {
      if (woken.length >= n) break;
      const job = await this.d.getRecord(id);
      if (job?.status !== "queued" || job.hold?.by !== "concurrency" || job.hold.key !== key) continue;
      const given = await this.giveSlot(job, key, limit);
      if (given === "full") break;
      if (given === "woken") woken.push(id);
    }
    return woken;
  }

  /**
   * A slot of `key` taken for a held job, then the job woken: "full" when the limit has no slot
   * free, "moved" when someone moved the job first (a cancel, another waker or a claim of it that
   * holds its slot already; what this took goes back).
   */
  async giveSlot(job: QueuedJob, key: LimitKey, limit: number): Promise<"woken" | "full" | "moved"> {
    const stamp: SlotStamp = { at: this.d.clock().now, by: newNonce() };
    const take = await this.d.controls.acquireSlot(key, limit, job.id, stamp, { handed: true });
    // Refused: the job has a slot already (another waker's, a claim's), or the limit is full.
    if (!take.taken) return take.held ? "moved" : "full";
    if (await this.unhold(job)) return "woken";
    // Not woken: the slot goes back, unless a claim of the job adopted it already (then it is that claim's).
    await this.d.controls.releaseSlot(key, job.id, stamp.by);
    return "moved";
  }

  /**
   * Wakes up to `n` jobs held on `partition` (a pause's resume, a removed limit), each only if
   * what held it is open now: a pause made again, or a limit set again, keeps its jobs held.
   */
  async wake(partition: string, n: number): Promise<string[]> {
    const s = await this.d.controls.settings();
    const ids = await this.d.controls.held(partition, n);
    const woken: string[] = [];
    await eachBounded(ids, WAKE_CONCURRENCY, async (id) => {
      const job = await this.d.getRecord(id);
      if (job?.status !== "queued" || !job.hold) return;
      if (job.hold.by === "pause" && s.pauses[job.hold.key]) return;
      if (job.hold.by === "concurrency" && s.limits[job.hold.key]?.concurrency !== undefined) return; // the hand-off's, with a slot
      if (await this.unhold(job)) woken.push(id);
    });
    return woken;
  }

  /** Unholds a held job and rings its doorbell; false when someone moved it first. */
  async unhold(job: QueuedJob): Promise<boolean> {
    const w = await this.d.write(life.unhold(job, this.d.clock()), "write");
    if (!w.applied) return false;
    await this.ring(w.job as QueuedJob, 0);
    return true;
  }

  /** A contended claim's job, rung again once the other claim has settled (if that claim loses, this doorbell claims it). */
  async ringAgain(job: QueuedJob): Promise<void> {
    await this.ring(job, GATE_LIMITS.contendedRetryMs);
  }

  private async ring(job: QueuedJob, delayMs: number): Promise<void> {
    // Past what SQS can delay, the sweeper rings it at its deadline (lifecycle.hold's `until`).
    if (delayMs > TIMINGS.maxMessageDelaySeconds * 1000) return;
    // A doorbell that is not sent is rung by the sweeper at the job's deadline.
    await this.d.doorbell?.send(laneOf(job), [job.id], Math.max(0, delayMs)).catch(() => undefined);
  }
}
