/**
 * The sweeper's share of the gates (rules in core/gates.ts): a held job whose deadline passed is
 * looked at again (woken if what held it has freed up, a wake that was lost; else held on with a
 * later look), and each sweep recounts the concurrency limits that have jobs waiting on them, so
 * a slot a crashed worker never gave back is found and handed on. A limit with no held jobs is
 * not read further: a slot that blocks nobody costs nothing to leave until someone waits.
 *
 * Inputs: the store's controls, gatekeeper, records and version-guarded writes. Outputs: holds,
 * unholds, freed slots and doorbells, each a conditional write; a lost race is a ConflictError
 * the sweeper counts as skipped.
 */
import { eachBounded } from "./bounded.js";
import type { Controls } from "./controls.js";
import { ConflictError } from "./errors.js";
import type { Gatekeeper } from "./gatekeeper.js";
import { longestPauseSeconds, slotPartition, slotVerdict, stillHeld, type LimitKey } from "./gates.js";
import type { Job, QueuedJob } from "./job.js";
import * as life from "./lifecycle.js";
import type { Change, Clock } from "./lifecycle.js";
import type { Recognize, WriteResult } from "./store-write.js";

export interface LimitsSweepDeps {
  controls: Controls;
  gates: Gatekeeper;
  clock: () => Clock;
  write: <J extends Job>(change: Change<J>, recognize: Recognize) => Promise<WriteResult<J>>;
  records: (ids: string[], consistent: boolean) => Promise<Job[]>;
  /** A queued job's deadline pushed and its doorbell rung (the sweeper's resend). */
  resend: (job: QueuedJob) => Promise<void>;
  /** The job with the values that would expire while it waits (a held job may wait for days), so a write copies them on. */
  refreshed: (job: QueuedJob) => Promise<QueuedJob>;
}

export interface LimitsReport {
  /** Slots given back whose holders no longer ran. */
  freed: string[];
  /** Held jobs woken by the recount or a tombstone (a resume, a removed limit): wakes that were lost. */
  woken: string[];
  pausedSeconds: number;
}

/** Tombstoned partitions woken per sweep: the rest are the next sweep's. */
const TOMBSTONE_WAKE_BATCH = 100;
/** Slot holders a recount reads per limit and sweep. */
const RECOUNT_MAX = 100;
/** Wall-clock time the pass may take; what it leaves is the next sweep's. */
const PASS_BUDGET_MS = 5_000;

const rotate = <T>(xs: T[], seed: number): T[] => {
  if (!xs.length) return xs;
  const k = Math.floor(seed / 1000) % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
};

export class LimitsSweep {
  constructor(private readonly d: LimitsSweepDeps) {}

  /** A held job's backstop look: "unheld" if its gate has opened, "held" if it is still shut. */
  async look(job: QueuedJob): Promise<"unheld" | "held"> {
    const h = job.hold;
    if (!h) throw new ConflictError("the job is no longer held");
    // The cached settings: a second old at most, and a sweep of many held jobs reads the item once.
    const s = await this.d.controls.settings();
    const c = this.d.clock();
    const limit = h.by === "concurrency" ? s.limits[h.key]?.concurrency : undefined;
    if (h.by === "concurrency" && limit !== undefined) {
      // The hand-off a release would have made: a slot for this job, then the wake.
      const given = await this.d.gates.giveSlot(job, h.key, limit);
      if (given === "woken") return "unheld";
      if (given === "moved") throw new ConflictError("the held job changed during the sweep");
    } else if (!stillHeld(h, s, c.now)) {
      if (await this.d.gates.unhold(job)) return "unheld";
      throw new ConflictError("the held job changed during the sweep");
    }
    const w = await this.d.write(life.hold(await this.d.refreshed(job), h, c), "write");
    if (!w.applied) throw new ConflictError("the held job changed during the sweep");
    return "held";
  }

  /** The per-sweep pass: limits with held jobs recounted and handed on, tombstones woken; it stops starting work at `deadline` (wall clock). */
  async sweep(deadline = Date.now() + PASS_BUDGET_MS): Promise<LimitsReport> {
    const s = await this.d.controls.settings({ fresh: true });
    const report: LimitsReport = { freed: [], woken: [], pausedSeconds: longestPauseSeconds(s, this.d.clock().now) };
    // A different start each sweep, so limits past the budget are not always the ones left out.
    const limits = rotate(Object.entries(s.limits) as [LimitKey, (typeof s.limits)[string]][], this.d.clock().now);
    for (const [key, def] of limits) {
      if (Date.now() >= deadline) break;
      if (def.concurrency === undefined) continue;
      if (!(await this.d.controls.held(slotPartition(key), 1)).length) continue;
      report.freed.push(...(await this.recount(key)));
      const taken = Object.keys(await this.d.controls.holders(key)).length;
      if (taken < def.concurrency) report.woken.push(...(await this.d.gates.handOff(key, s, def.concurrency - taken)));
    }
    for (const partition of Object.keys(s.woken)) {
      if (Date.now() >= deadline) break;
      report.woken.push(...(await this.d.gates.wake(partition, TOMBSTONE_WAKE_BATCH)));
    }
    if (Object.keys(s.woken).length) await this.d.controls.forgetWoken(this.d.clock().now);
    return report;
  }

  /** Gives back the key's slots whose holders no longer run; answers their job ids. */
  private async recount(key: LimitKey): Promise<string[]> {
    const holders = Object.entries(await this.d.controls.holders(key));
    const now = this.d.clock().now;
    // Only slots past their grace can be given back; their holders' records decide. The oldest
    // first, a bounded number a sweep: a leak is an old slot, and a limit of thousands is not read whole.
    const old = holders
      .filter(([, slot]) => slotVerdict(undefined, key, slot, now) !== "keep")
      .sort((a, b) => a[1].at - b[1].at)
      .slice(0, RECOUNT_MAX);
    if (!old.length) return [];
    const records = new Map((await this.d.records(old.map(([id]) => id), true)).map((j) => [j.id, j]));
    const freed: string[] = [];
    await eachBounded(old, 8, async ([id, slot]) => {
      const job = records.get(id);
      const verdict = slotVerdict(job, key, slot, now);
      if (verdict === "keep") return;
      if (verdict === "requeue") {
        const moved = await this.d.resend(job as QueuedJob).then(() => true, () => false);
        if (!moved) return; // it moved on its own (claimed, cancelled): the next sweep looks again
      }
      await this.d.controls.releaseSlot(key, id, slot.by);
      freed.push(id);
    });
    return freed;
  }
}

