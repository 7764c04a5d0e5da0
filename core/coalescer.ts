/**
 * Holds a handler's progress and checkpoints in memory so they ride on the next heartbeat
 * (invariant 6): however often a handler reports, at most one write per heartbeat interval.
 * A progress callback that wrote on every tick once starved a database of its write lock.
 */
import { LIMITS } from "./config.js";
import { ValidationError } from "./errors.js";
import type { Progress } from "./job.js";
import { checkSize, type Report } from "./store.js";

export class ReportBuffer {
  private latestProgress?: Progress;
  private latestCheckpoint?: unknown;
  private progressDirty = false;
  private checkpointDirty = false;
  /** How many checkpoints the handler made this attempt: a hand-back without any made no progress. */
  checkpoints = 0;

  progress(done: number, total?: number, message?: string): void {
    if (!Number.isFinite(done) || done < 0) throw new ValidationError("progress: done must be a finite number >= 0");
    if (total !== undefined && (!Number.isFinite(total) || total < 0)) throw new ValidationError("progress: total must be a finite number >= 0");
    const p: Progress = { done };
    if (total !== undefined) {
      p.total = total;
      p.percent = total > 0 ? Math.round(Math.min(100, (done / total) * 100) * 10) / 10 : 100;
    }
    if (message !== undefined) p.message = String(message).slice(0, LIMITS.maxMessageChars);
    this.latestProgress = p;
    this.progressDirty = true;
  }

  /** Validated now, so an oversized checkpoint fails in the handler that made it, not later. */
  checkpoint(value: unknown): void {
    checkSize("the checkpoint", value, LIMITS.maxCheckpointBytes);
    this.latestCheckpoint = structuredClone(value);
    this.checkpointDirty = true;
    this.checkpoints++;
  }

  get dirty(): boolean {
    return this.progressDirty || this.checkpointDirty;
  }

  /** What changed since the last take; the caller writes it or gives it back with `restore`. */
  take(): Report {
    const r: Report = {};
    if (this.progressDirty) r.progress = this.latestProgress;
    if (this.checkpointDirty) r.checkpoint = this.latestCheckpoint;
    this.progressDirty = this.checkpointDirty = false;
    return r;
  }

  /** A write that failed: mark its fields dirty again unless newer values arrived meanwhile. */
  restore(r: Report): void {
    if (r.progress !== undefined) this.progressDirty = true;
    if (r.checkpoint !== undefined) this.checkpointDirty = true;
  }

  /** Everything known, for a final write that must carry the last state whether or not it changed. */
  all(): Report {
    return {
      ...(this.latestProgress !== undefined ? { progress: this.latestProgress } : {}),
      ...(this.latestCheckpoint !== undefined ? { checkpoint: this.latestCheckpoint } : {}),
    };
  }
}
