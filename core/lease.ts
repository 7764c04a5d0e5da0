/**
 * Keeps a claimed job's lease alive: a heartbeat every interval (a third of the lease by
 * default) carrying whatever the ReportBuffer holds, each bounded to a third of the lease so a
 * hung connection cannot stall it. The lease is enforced by its own timer, not by a heartbeat
 * finishing (invariant 10): when the lease runs out without a renewal the owner is told it is
 * lost, whatever a pending heartbeat is doing, because another worker may own the job by then.
 */
import { LeaseLostError, StoreRejectedError, TooLargeError, errorMessage } from "./errors.js";
import type { Lease } from "./job.js";
import type { ReportBuffer } from "./coalescer.js";
import type { WorkerStore } from "./store-ports.js";

export interface LeaseKeeperEvents {
  onCancel(): void;
  onLost(reason: string): void;
  onHeartbeatError?(error: unknown): void;
}

export class LeaseKeeper {
  private timer?: NodeJS.Timeout;
  private expiryTimer?: NodeJS.Timeout;
  private inFlight: Promise<void> = Promise.resolve();
  private stopped = false;
  private lost = false;
  private lastError: unknown;
  /** Epoch ms (this worker's clock) until which the lease is surely ours: a renewal's send time plus the lease. */
  expiresAt: number;

  constructor(
    private readonly store: Pick<WorkerStore, "heartbeat">,
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
    this.armExpiry();
  }

  /** True once the lease was lost (refused, or run out): nothing more may be written under it. */
  get isLost(): boolean {
    return this.lost;
  }

  /**
   * Stops beating and waits for a heartbeat in flight, so a final write never races one. The
   * wait is bounded by the heartbeat's own time bound, so a hung call cannot hold a settle.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.inFlight;
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
  }

  private armExpiry(): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = setTimeout(() => {
      const why = this.lastError !== undefined ? ` (the last heartbeat failed: ${errorMessage(this.lastError)})` : "";
      this.loseLease(`the lease ran out without a renewal${why}`);
    }, Math.max(0, this.expiresAt - this.now()));
    this.expiryTimer.unref?.();
  }

  private loseLease(reason: string): void {
    if (this.lost) return;
    this.lost = true;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.events.onLost(reason);
  }

  private async beat(): Promise<void> {
    if (this.stopped) return;
    const report = this.buffer.take();
    const sentAt = this.now();
    try {
      // At most a third of the lease, so two failed beats still leave time for a third.
      const r = await this.store.heartbeat(this.lease, report, { timeoutMs: Math.max(this.intervalMs, Math.floor(this.lease.leaseMs / 3)) });
      if (this.lost) return;
      this.lastError = undefined;
      this.expiresAt = sentAt + this.lease.leaseMs;
      this.armExpiry();
      if (r.cancelRequested) this.events.onCancel();
    } catch (e) {
      if (e instanceof LeaseLostError) return this.loseLease(e.reason);
      // A report DynamoDB refuses for good would be refused on every beat: drop it, keep the lease.
      if (!(e instanceof StoreRejectedError || e instanceof TooLargeError)) this.buffer.restore(report);
      this.lastError = e;
      this.events.onHeartbeatError?.(e);
    }
  }
}
