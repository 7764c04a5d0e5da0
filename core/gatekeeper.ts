/**
 * The gates' I/O around a claim (the rules are core/gates.ts, the items core/controls.ts):
 *
 * - `pass`: before a queued job's claim, in order: its queue's and type's pauses, a slot of each
 *   of its concurrency limits, then a start of each of its rate limits. Answers the slots taken,
 *   or the hold to write. What it took is given back when the claim does not land (`undo`).
 * - `released`: after a write that took a job out of running: its slots go back and each is
 *   handed straight to the longest-held job of its key, which is woken (its slot already taken
 *   for it, so a fresh arrival cannot take it first).
 * - `wake`: unholds held jobs of a partition and rings their doorbells (a resume, a removed or
 *   raised limit, the sweeper's look).
 *
 * Everything here is best effort after the job's own write: a slot that is not given back, or a
 * wake that is lost, is found by the sweeper (core/limits-sweep.ts), and a held job's own deadline
 * is the backstop for the rest.
 */
import { eachBounded } from "./bounded.js";
import type { Controls } from "./controls.js";
import {
  concurrencyLimitsOf,
  pauseOf,
  rateLimitsOf,
  slotPartition,
  type ControlSettings,
  type Hold,
  type LimitKey,
} from "./gates.js";
import type { HeldSlots, Job, QueuedJob, RunningJob } from "./job.js";
import * as life from "./lifecycle.js";
import type { Change, Clock } from "./lifecycle.js";
import type { Doorbell } from "./queue.js";
import type { Recognize, WriteResult } from "./store-write.js";

export type GatePass = { ok: true; slots: HeldSlots } | { ok: false; hold: Hold };

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

export class Gatekeeper {
  constructor(private readonly d: GatekeeperDeps) {}

  /** The gates a queued job must pass before it is claimed at `now`. */
  async pass(job: QueuedJob, now: number): Promise<GatePass> {
    const s = await this.d.controls.settings();
    const paused = pauseOf(job, s);
    if (paused) return { ok: false, hold: { by: "pause", key: paused.key, since: now } };
    const slots: LimitKey[] = [];
    for (const { key, limit } of concurrencyLimitsOf(job, s)) {
      if (await this.d.controls.acquireSlot(key, limit, job.id, now)) {
        slots.push(key);
        continue;
      }
      await this.undo(job.id, slots, now);
      return { ok: false, hold: { by: "concurrency", key, limit, since: now } };
    }
    const rated = await this.rate(job, s, now).catch(async (e: unknown) => {
      await this.undo(job.id, slots, now);
      throw e;
    });
    if (rated) {
      await this.undo(job.id, slots, now);
      return { ok: false, hold: rated };
    }
    return { ok: true, slots: { keys: slots, at: now } };
  }

  /**
   * A start of each of the job's rate limits, or the hold it must wait under. Every attempt's
   * start counts, a run taken over from a lost worker's expired lease too (it holds its slots).
   */
  async rate(job: Job, s: ControlSettings, now: number): Promise<Extract<Hold, { by: "rate" }> | undefined> {
    for (const { key, rate } of rateLimitsOf(job, s)) {
      const taken = await this.d.controls.takeStart(key, rate, job.id, now);
      if (!taken.ok) return { by: "rate", key, starts: rate.starts, perMs: rate.perMs, since: now, until: taken.until };
    }
    return undefined;
  }

  /** A run taken over from an expired lease passes its rate limits only (it holds its slots, and a pause lets running jobs finish). */
  async passRunning(job: Job, now: number): Promise<Extract<Hold, { by: "rate" }> | undefined> {
    return this.rate(job, await this.d.controls.settings(), now);
  }

  /** Gives back the slots a claim took at `takenAt` and did not use (only those: a later taker's stay). */
  async undo(jobId: string, slots: readonly LimitKey[], takenAt: number): Promise<void> {
    await Promise.all(slots.map((k) => this.d.controls.releaseSlot(k, jobId, takenAt).catch(() => undefined)));
  }

  /**
   * Writes the hold a gate decided and, for a rate hold, rings the doorbell for when its window
   * has room. Answers the job as stored (held, or whatever it had become).
   */
  async hold(job: QueuedJob, h: Hold): Promise<Job> {
    const w = await this.d.write(life.hold(job, h, this.d.clock()), "write");
    if (!w.applied) return w.found ?? job;
    if (h.by === "rate") await this.ring(w.job as QueuedJob, h.until - this.d.clock().now);
    return w.job;
  }

  /** After `prev` left running: its slots go back, each handed to the longest-held job of its key. */
  async released(prev: RunningJob): Promise<void> {
    const s = await this.d.controls.settings();
    const slots = prev.slots;
    if (!slots) return;
    await Promise.all(
      slots.keys.map(async (key) => {
        await this.d.controls.releaseSlot(key, prev.id, slots.at);
        await this.handOff(key, s, 1);
      }),
    );
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
      const at = this.d.clock().now;
      if (!(await this.d.controls.acquireSlot(key, limit, id, at))) break;
      if (await this.unhold(job)) woken.push(id);
      else await this.d.controls.releaseSlot(key, id, at); // someone else moved it (a cancel, another waker)
    }
    return woken;
  }

  /** Wakes up to `n` jobs held on `partition` (a pause's resume, a removed limit). */
  async wake(partition: string, n: number): Promise<string[]> {
    const ids = await this.d.controls.held(partition, n);
    const woken: string[] = [];
    await eachBounded(ids, WAKE_CONCURRENCY, async (id) => {
      const job = await this.d.getRecord(id);
      if (job?.status === "queued" && job.hold && (await this.unhold(job))) woken.push(id);
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

  private async ring(job: QueuedJob, delayMs: number): Promise<void> {
    // A doorbell that is not sent is rung by the sweeper at the job's deadline.
    await this.d.doorbell?.send(job.queue, [job.id], Math.max(0, delayMs)).catch(() => undefined);
  }
}
