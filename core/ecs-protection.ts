/**
 * ECS task scale-in protection for the Fargate worker. The worker deletes a job's message as soon
 * as it claims the job, so the queue depth the service scales on does not count running jobs: when
 * the queue has been empty long enough, a scale-in could stop a task in the middle of a long job.
 * While the worker holds at least one job it keeps its task protected through the ECS agent's
 * endpoint (`PUT ${ECS_AGENT_URI}/task-protection/v1/state`), renewing before the protection
 * expires, and turns it off once it holds none.
 *
 * Protection is an optimisation: leases keep jobs correct (a stopped task's jobs are released on
 * SIGTERM, or reclaimed by the sweeper), so every failure here is logged and retried, never thrown.
 * Without an agent URI (locally, in tests) the class does nothing.
 */
import { errorMessage } from "./errors.js";
import type { JobLogger } from "./registry.js";

export const SCALE_IN_PROTECTION = {
  /** How long one PUT protects the task (ECS allows 1 to 2,880 minutes). */
  expiresInMinutes: 15,
  /** Renewed this often while jobs run: two renewals could fail before a protection lapses. */
  renewEveryMs: 5 * 60_000,
  /** After a failed PUT, the next try. */
  retryMs: 30_000,
  /** A PUT the agent has not answered by then counts as failed. */
  requestTimeoutMs: 5_000,
} as const;

export const PROTECTION_PATH = "/task-protection/v1/state";

export interface ScaleInProtectionOptions {
  /** The container's `ECS_AGENT_URI`; without it every call is a no-op. */
  agentUri?: string | undefined;
  fetch?: typeof fetch;
  now?: () => number;
  log?: JobLogger;
  expiresInMinutes?: number;
  renewEveryMs?: number;
  retryMs?: number;
  requestTimeoutMs?: number;
}

/** What this process last learned from the agent; `unknown` after a failed PUT, so it is sent again. */
type State = { kind: "off" } | { kind: "on"; renewAt: number } | { kind: "unknown" };

/** The agent's answer: `protection` on success; `failure` (still HTTP 200) or `error` otherwise. */
interface AgentResponse {
  protection?: { ProtectionEnabled?: boolean; ExpirationDate?: string; TaskArn?: string };
  failure?: { Arn?: string; Reason?: string; Detail?: string };
  error?: { Code?: string; Message?: string };
}

const silent: JobLogger = { info() {}, warn() {}, error() {} };

export class ScaleInProtection {
  private readonly url: string | undefined;
  private readonly fetch: typeof fetch;
  private readonly now: () => number;
  private readonly log: JobLogger;
  private readonly expiresInMinutes: number;
  private readonly renewEveryMs: number;
  private readonly retryMs: number;
  private readonly timeoutMs: number;
  private jobs = 0;
  private state: State = { kind: "off" };
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(o: ScaleInProtectionOptions = {}) {
    this.url = o.agentUri ? `${o.agentUri.replace(/\/+$/, "")}${PROTECTION_PATH}` : undefined;
    this.fetch = o.fetch ?? globalThis.fetch;
    this.now = o.now ?? Date.now;
    this.log = o.log ?? silent;
    this.expiresInMinutes = Math.min(2880, Math.max(1, Math.round(o.expiresInMinutes ?? SCALE_IN_PROTECTION.expiresInMinutes)));
    // Never renew later than the protection lasts.
    this.renewEveryMs = Math.min(o.renewEveryMs ?? SCALE_IN_PROTECTION.renewEveryMs, this.expiresInMinutes * 60_000 / 2);
    this.retryMs = o.retryMs ?? SCALE_IN_PROTECTION.retryMs;
    this.timeoutMs = o.requestTimeoutMs ?? SCALE_IN_PROTECTION.requestTimeoutMs;
  }

  /** False when there is no agent to talk to (not on ECS). */
  get enabled(): boolean {
    return this.url !== undefined;
  }

  /** Tells it how many jobs the worker holds now; protection follows (on while any, off at none). Never throws. */
  hold(jobCount: number): void {
    if (!this.url || this.stopped) return;
    this.jobs = Math.max(0, jobCount);
    this.sync(false);
  }

  /** Resolves once every PUT asked for so far has been answered (or has failed). */
  settled(): Promise<void> {
    return this.chain;
  }

  /** Turns protection off if it may be on, and stops renewing. */
  async stop(): Promise<void> {
    if (!this.url || this.stopped) return this.chain;
    this.jobs = 0;
    this.sync(false);
    this.stopped = true;
    this.clearTimer();
    await this.chain;
  }

  /** Queued so PUTs never overtake each other; what to send is decided when its turn comes. */
  private sync(renew: boolean): void {
    this.chain = this.chain.then(() => this.apply(renew));
  }

  private async apply(renew: boolean): Promise<void> {
    const want = this.jobs > 0;
    if (want) {
      const fresh = this.state.kind === "on" && this.now() < this.state.renewAt;
      if (fresh && !renew) return;
    } else if (this.state.kind === "off") {
      this.clearTimer();
      return;
    }
    const wasOn = this.state.kind === "on";
    const sentAt = this.now();
    const ok = await this.put(want);
    if (!ok) {
      this.state = { kind: "unknown" };
      this.schedule(this.retryMs);
      return;
    }
    if (want) {
      this.state = { kind: "on", renewAt: sentAt + this.renewEveryMs };
      if (!wasOn) this.log.info("scale-in protection on", { expiresInMinutes: this.expiresInMinutes, jobs: this.jobs });
      this.schedule(this.renewEveryMs);
    } else {
      this.state = { kind: "off" };
      this.log.info("scale-in protection off");
      this.clearTimer();
    }
  }

  /** One PUT to the agent; true when it confirmed the state asked for. */
  private async put(enabled: boolean): Promise<boolean> {
    const body = enabled ? { ProtectionEnabled: true, ExpiresInMinutes: this.expiresInMinutes } : { ProtectionEnabled: false };
    try {
      const res = await this.fetch(this.url!, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      const text = await res.text();
      const parsed = parse(text);
      const confirmed = res.ok && parsed?.protection?.ProtectionEnabled === enabled;
      if (!confirmed) {
        const why = parsed?.failure ? `${parsed.failure.Reason ?? "failure"}: ${parsed.failure.Detail ?? ""}` : parsed?.error ? `${parsed.error.Code ?? "error"}: ${parsed.error.Message ?? ""}` : text.slice(0, 200);
        this.log.warn("the ECS agent did not set scale-in protection; retrying", { enabled, status: res.status, why, retryMs: this.retryMs });
      }
      return confirmed;
    } catch (e) {
      this.log.warn("could not reach the ECS agent to set scale-in protection; retrying", { enabled, error: errorMessage(e), retryMs: this.retryMs });
      return false;
    }
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.clearTimer();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.sync(true);
    }, ms);
    // A pending renewal must not keep a finished process alive.
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

function parse(text: string): AgentResponse | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return v && typeof v === "object" ? (v as AgentResponse) : undefined;
  } catch {
    return undefined;
  }
}
