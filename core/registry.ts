/**
 * Job types: what a job is, where it runs and what limits it has. A type is a module that calls
 * `defineJob`; the registry is how the API validates a submission and the runner finds a handler.
 */
import type { Fence } from "./fence.js";
import type { z } from "zod";
import { TIMINGS, type QueueName, type RunsOn } from "./config.js";
import { ValidationError } from "./errors.js";
import type { ChildRequest } from "./child-specs.js";
import type { ChildCounts, ChildOutcome, FlowPolicy } from "./flow.js";

export type AbortReason = "cancelled" | "lease_lost" | "shutdown" | "deadline" | "soft_limit" | "memory";

export interface JobLogger {
  info(message: string, extra?: Record<string, unknown>): void;
  warn(message: string, extra?: Record<string, unknown>): void;
  error(message: string, extra?: Record<string, unknown>): void;
}

/** What a handler gets besides its input. */
export interface JobContext<C = unknown> {
  jobId: string;
  attempt: number;
  /**
   * This attempt's fence (core/fence.ts): the job and its fencing token, higher in every later
   * attempt. Carry it into writes made elsewhere with `fencedUpdate` / `fencedPut`, so a write of
   * an attempt that lost its lease (frozen past it) is refused once a later attempt has written.
   */
  fence: Fence;
  /**
   * A logical step's key, the same in every attempt of this job (`<jobId>:<step>`): an external
   * API's idempotency key, or the key of the row the step writes, so a step re-run after a crash
   * has its effect at most once.
   */
  effectKey(step: string): string;
  /** Reported as often as the handler likes; written at most once per heartbeat interval. */
  progress(done: number, total?: number, message?: string): void;
  /** Saves where to resume; rides on the next heartbeat and on every hand-back. */
  checkpoint(value: C): void;
  /** The last checkpoint saved by an earlier attempt, when this attempt resumes one. */
  resumeFrom: C | undefined;
  /** Fires on cancel, lost lease, shutdown, deadline, soft limit or critical memory; `signal.reason` says which. */
  signal: AbortSignal;
  /** Milliseconds until this attempt must stop (the earliest of soft limit, deadline and runtime limit). */
  remainingMs(): number;
  log: JobLogger;
  /**
   * Adds children to this attempt's round, checked now (a type unknown, an input invalid for its
   * type, more than MAX_CHILDREN throw a ValidationError). Nothing is written until the handler
   * returns `ctx.wait()`. A child's id derives from this job's, the round and its key (or its
   * place), so a run repeated after a crash spawns the same children, never a second set.
   */
  spawn(children: ChildRequest[]): void;
  /**
   * What the handler returns after `spawn`: the job waits, holding no worker, until every child
   * has ended, then runs again (same input, its checkpoint kept), and `children()` answers.
   */
  wait(o?: { policy?: FlowPolicy }): WaitRequest;
  /**
   * The outcomes of this job's last round of children, once it resumed from waiting on them
   * (undefined for a job that never waited): counts by status and up to CHILD_OUTCOMES_PAGE
   * children from `from`, with their results; `next` is where the next page starts.
   */
  children(o?: { from?: number }): Promise<ChildrenView | undefined>;
}

/** A parent's view of its last round of children (ctx.children). */
export interface ChildrenView {
  round: number;
  counts: ChildCounts;
  children: ChildOutcome[];
  next: number | null;
}

/** The handler's request to wait on the children it spawned; only `ctx.wait()` makes one. */
export class WaitRequest {
  constructor(readonly policy: FlowPolicy) {}
}

export interface JobLimits {
  /** Per attempt: the signal fires with `soft_limit` and the handler should checkpoint and stop. */
  softLimitMs: number;
  /** After the signal fires, how long the runner waits before it settles the job without the handler. */
  abortGraceMs: number;
  /** Total runtime from the first start; the job's own `timeoutSeconds` may lower it. */
  timeoutMs: number;
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

export interface JobType<I = unknown, R = unknown, C = unknown> {
  name: string;
  input: z.ZodType<I>;
  /** `auto` picks a queue from `estimateMb` before the job is enqueued, so a large input never lands on a Lambda it cannot fit. */
  runsOn: RunsOn | "auto";
  /** Estimated peak memory for an input; with `runsOn: auto`, above `lambdaMaxMb` it runs on Fargate. */
  estimateMb?: (input: I) => number;
  lambdaMaxMb?: number;
  /** May this type move from Lambda to Fargate when it outgrows Lambda (deadline, memory)? */
  canMoveToLarge: boolean;
  limits: JobLimits;
  /** An error this returns true for fails the job at once instead of being retried. */
  isPermanent?: (error: unknown) => boolean;
  /** Returns its result, or `ctx.wait()` after spawning children: it runs again once they have ended. */
  handler: (input: I, ctx: JobContext<C>) => Promise<R | WaitRequest>;
}

export const DEFAULT_LIMITS: JobLimits = {
  softLimitMs: 15 * 60_000,
  abortGraceMs: TIMINGS.abortGraceMs,
  timeoutMs: TIMINGS.defaultTimeoutMs,
  maxAttempts: 3,
  backoffBaseMs: TIMINGS.backoffBaseMs,
  backoffMaxMs: TIMINGS.backoffMaxMs,
};

export function defineJob<I, R, C = unknown>(
  t: Omit<JobType<I, R, C>, "limits" | "canMoveToLarge"> & { limits?: Partial<JobLimits>; canMoveToLarge?: boolean },
): JobType<I, R, C> {
  return { canMoveToLarge: t.runsOn !== "lambda", ...t, limits: { ...DEFAULT_LIMITS, ...t.limits } };
}

export class Registry {
  private readonly types = new Map<string, JobType<any, any, any>>();

  register(...types: JobType<any, any, any>[]): this {
    for (const t of types) this.types.set(t.name, t);
    return this;
  }

  get(name: string): JobType | undefined {
    return this.types.get(name);
  }

  names(): string[] {
    return [...this.types.keys()].sort();
  }

  /** Validates a submission's input against its type, throwing a ValidationError a person can act on. */
  parseInput(name: string, input: unknown): { type: JobType; input: unknown } {
    const type = this.get(name);
    if (!type) throw new ValidationError(`unknown job type "${name}"; known types: ${this.names().join(", ")}`);
    const parsed = type.input.safeParse(input ?? {});
    if (!parsed.success) {
      throw new ValidationError(`input does not match job type "${name}"`, parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })));
    }
    return { type, input: parsed.data };
  }

  /** Where a submission goes: the type's own queue, or for `auto` the one its size estimate picks. */
  queueFor(type: JobType, input: unknown): QueueName {
    if (type.runsOn === "lambda") return "default";
    if (type.runsOn === "fargate") return "large";
    const mb = type.estimateMb?.(input) ?? 0;
    return mb > (type.lambdaMaxMb ?? 1024) ? "large" : "default";
  }
}

/** Exponential backoff with "equal jitter" (half fixed, half random): retries spread out, yet never come back at once. */
export function backoffMs(limits: JobLimits, attempt: number, random: () => number = Math.random): number {
  const cap = Math.min(limits.backoffMaxMs, limits.backoffBaseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(cap / 2 + (random() * cap) / 2);
}
