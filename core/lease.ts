/**
 * Keeps a claimed job's lease alive: a heartbeat every interval (a third of the lease by
 * default) carrying whatever the ReportBuffer holds. It tells its owner when a cancel was
 * requested and when the lease is lost: refused by its fencing token, or simply run out because
 * heartbeats kept failing (another worker may own the job by then).
 */
import { LeaseLostError, errorMessage } from "./errors.js";
import type { Lease } from "./job.js";
import type { ReportBuffer } from "./coalescer.js";
import type { JobStore } from "./store.js";

export interface LeaseKeeperEvents {
  onCancel(): void;
  onLost(reason: string): void;
  onHeartbeatError?(error: unknown): void;
}

export class LeaseKeeper {
  private timer?: NodeJS.Timeout;
  private inFlight: Promise<void> = Promise.resolve();
  private stopped = false;
  private expiresAt: number;

  constructor(
    private readonly store: JobStore,
    readonly lease: Lease,
    private readonly buffer: ReportBuffer,
    private readonly events: LeaseKeeperEvents,
    private readonly intervalMs = Math.max(50, Math.floor(lease.leaseMs / 3)),
    private readonly now: () => number = Date.now,
  ) {
    this.expiresAt = lease.job.leaseExpiresAt;
  }

  start(): void {
    this.timer = setInterval(() => {
      this.inFlight = this.inFlight.then(() => this.beat());
    }, this.intervalMs);
    this.timer.unref?.();
  }

  /** Stops beating and waits for a heartbeat in flight, so a final write never races one. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.inFlight;
  }

  private async beat(): Promise<void> {
    if (this.stopped) return;
    const report = this.buffer.take();
    const sentAt = this.now();
    try {
      const r = await this.store.heartbeat(this.lease, report);
      this.expiresAt = sentAt + this.lease.leaseMs;
      if (r.cancelRequested) this.events.onCancel();
    } catch (e) {
      if (e instanceof LeaseLostError) {
        this.stopped = true;
        if (this.timer) clearInterval(this.timer);
        this.events.onLost(e.reason);
        return;
      }
      this.buffer.restore(report);
      this.events.onHeartbeatError?.(e);
      // Past our own lease we cannot know we still own the job: stop as if it was lost.
      if (this.now() >= this.expiresAt) {
        this.stopped = true;
        if (this.timer) clearInterval(this.timer);
        this.events.onLost(`heartbeats failed until the lease ran out (${errorMessage(e)})`);
      }
    }
  }
}
