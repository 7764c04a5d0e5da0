/**
 * The admin routes for pauses and limits (docs/jobs.md "Controls"), free of HTTP: pause or resume
 * a queue or a job type, set or remove a limit on a type or a concurrency key, and list them with
 * how many jobs each holds back. A resume wakes the held jobs itself (the sweeper wakes what a
 * cut-short request left); a removed limit's held jobs are woken the same way.
 */
import { QUEUE_NAMES } from "../config.js";
import { pausePartition, parseLimitKey, parsePauseTarget, slotPartition, type ControlSettings, type LimitKey, type PauseTarget } from "../gates.js";
import type { Services } from "../services.js";
import { ApiError } from "./errors.js";
import { requireAdmin, type Caller } from "./identity.js";
import type { ApiLog } from "./jobs.js";
import type { LimitRequest } from "./requests.js";

/** Held jobs a resume wakes within its own request; a longer pause's rest are the sweeper's (core/limits-sweep.ts). */
export const RESUME_WAKE_MAX = 1_000;
/** Slots a raised limit hands on within its request (one at a time); the sweeper's recount hands on the rest. */
const RAISE_WAKE_MAX = 50;

export interface ApiPause {
  target: PauseTarget;
  since: string;
  by: string;
  /** Jobs held by it now (a count of the held index, at most 10,000 counted). */
  held: number;
}

export interface ApiLimit {
  key: LimitKey;
  concurrency: number | null;
  rate: { starts: number; perSeconds: number } | null;
  /** Jobs holding one of its slots now. */
  running: number | null;
  held: number;
  updatedAt: string;
  by: string;
}

export interface ApiControls {
  pauses: ApiPause[];
  limits: ApiLimit[];
}

export class ControlsApi {
  constructor(
    private readonly s: Services,
    private readonly log: ApiLog,
  ) {}

  async list(caller: Caller): Promise<ApiControls> {
    requireAdmin(caller);
    return this.view(await this.s.store.controls.settings({ fresh: true }));
  }

  async pause(caller: Caller, what: string): Promise<ApiControls> {
    requireAdmin(caller);
    const target = this.target(what);
    const s = await this.s.store.controls.pause(target, caller.id, this.s.now());
    this.log.info("paused", { target, caller: caller.id });
    return this.view(s);
  }

  async resume(caller: Caller, what: string): Promise<ApiControls & { woken: number }> {
    requireAdmin(caller);
    const target = this.target(what);
    const s = await this.s.store.controls.resume(target, this.s.now());
    const woken = await this.s.store.gates.wake(pausePartition(target), RESUME_WAKE_MAX);
    this.log.info("resumed", { target, caller: caller.id, woken: woken.length });
    return { ...(await this.view(s)), woken: woken.length };
  }

  async setLimit(caller: Caller, what: string, req: LimitRequest): Promise<ApiControls> {
    requireAdmin(caller);
    const key = this.limitKey(what);
    const def = {
      ...(req.concurrency !== undefined ? { concurrency: req.concurrency } : {}),
      ...(req.rate ? { rate: { starts: req.rate.starts, perMs: Math.round(req.rate.perSeconds * 1000) } } : {}),
    };
    const s = await this.s.store.controls.setLimit(key, def, caller.id, this.s.now());
    // A raised limit frees held jobs at once: each is handed a slot and woken.
    if (def.concurrency !== undefined) {
      const taken = Object.keys(await this.s.store.controls.holders(key)).length;
      if (taken < def.concurrency) await this.s.store.gates.handOff(key, s, Math.min(RAISE_WAKE_MAX, def.concurrency - taken));
    }
    this.log.info("limit set", { key, caller: caller.id, ...def });
    return this.view(s);
  }

  async removeLimit(caller: Caller, what: string): Promise<ApiControls & { woken: number }> {
    requireAdmin(caller);
    const key = this.limitKey(what);
    const s = await this.s.store.controls.setLimit(key, undefined, caller.id, this.s.now());
    const woken = await this.s.store.gates.wake(slotPartition(key), RESUME_WAKE_MAX);
    this.log.info("limit removed", { key, caller: caller.id, woken: woken.length });
    return { ...(await this.view(s)), woken: woken.length };
  }

  private target(what: string): PauseTarget {
    const t = parsePauseTarget(what, QUEUE_NAMES);
    if (!t.ok) throw new ApiError("invalid_request", t.message);
    return t.target;
  }

  private limitKey(what: string): LimitKey {
    const k = parseLimitKey(what);
    if (!k.ok) throw new ApiError("invalid_request", k.message);
    return k.key;
  }

  private async view(s: ControlSettings): Promise<ApiControls> {
    const pauses = await Promise.all(
      Object.entries(s.pauses).map(async ([target, p]) => ({ target: target as PauseTarget, since: new Date(p.since).toISOString(), by: p.by, held: await this.s.store.controls.heldCount(pausePartition(target as PauseTarget)) })),
    );
    const limits = await Promise.all(
      Object.entries(s.limits).map(async ([key, l]) => ({
        key: key as LimitKey,
        concurrency: l.concurrency ?? null,
        rate: l.rate ? { starts: l.rate.starts, perSeconds: l.rate.perMs / 1000 } : null,
        running: l.concurrency !== undefined ? Object.keys(await this.s.store.controls.holders(key as LimitKey)).length : null,
        held: await this.s.store.controls.heldCount(slotPartition(key as LimitKey)),
        updatedAt: new Date(l.updatedAt).toISOString(),
        by: l.by,
      })),
    );
    return { pauses: pauses.sort((a, b) => a.target.localeCompare(b.target)), limits: limits.sort((a, b) => a.key.localeCompare(b.key)) };
  }
}
