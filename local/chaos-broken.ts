/**
 * TEST-ONLY, DELIBERATELY UNSAFE: a broken fan-in for test/chaos-guard.test.ts, so it can show
 * the chaos checks catching a parent resumed twice. With WARDEN_CHAOS_UNSAFE_UNCONDITIONAL_RESUME=1
 * in a chaos process's environment, that process writes a parent's `resume` (core/lifecycle.ts,
 * waiting → queued) with no condition at all, instead of conditional on the version it read: of
 * the last child and the sweeper's recount, or a resume delivered late, every one lands.
 *
 * Done here, in the chaos processes only (chaos-jobs.ts `setup` and chaos-sweeper.ts call
 * `breakIfAsked`), by wrapping the store writer's condition the way core's own test-only switch
 * for `succeed` (WARDEN_UNSAFE_UNFENCED_SUCCEED, core/store.ts) skips it, so core carries no
 * second switch. Never set it anywhere else.
 */
import { ChangeWriter } from "../core/store-write.js";
import type { Change } from "../core/lifecycle.js";

export const UNSAFE_RESUME_ENV = "WARDEN_CHAOS_UNSAFE_UNCONDITIONAL_RESUME";

let broken = false;

/** Breaks this process's resume writes when the environment asks for it; a no-op otherwise. */
export function breakIfAsked(env: NodeJS.ProcessEnv = process.env): void {
  if (env[UNSAFE_RESUME_ENV] !== "1" || broken) return;
  broken = true;
  const proto = ChangeWriter.prototype as unknown as { condition(c: Change, x: unknown): void };
  const condition = proto.condition;
  if (typeof condition !== "function") throw new Error("chaos: ChangeWriter has no condition() to break; update local/chaos-broken.ts");
  proto.condition = function (this: unknown, c: Change, x: unknown): void {
    if (c.transition === "resume") return;
    condition.call(this, c, x);
  };
}
