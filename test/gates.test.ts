/**
 * The gates' pure rules (core/gates.ts): the rate log keeps every window of its length to its
 * limit, however the starts arrive; a slot's verdict; names a person types.
 */
import { describe, expect, test } from "vitest";
import { parseLimitKey, parsePauseTarget, rateDecision, slotVerdict, GATE_LIMITS, type LoggedStart } from "../core/gates.js";

describe("the rate log", () => {
  test("whatever the arrivals, no window of perMs holds more than `starts` accepted starts, and a refusal says when the window has room", () => {
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let run = 0; run < 50; run++) {
      const rate = { starts: 1 + Math.floor(random() * 10), perMs: 100 + Math.floor(random() * 2_000) };
      let log: LoggedStart[] = [];
      let nextWake = 0;
      const accepted: number[] = [];
      let now = 0;
      for (let i = 0; i < 300; i++) {
        now += Math.floor(random() * (rate.perMs / rate.starts) * 2);
        const d = rateDecision(log, nextWake, rate, `j${i}`, now);
        if (d.ok) {
          log = d.log;
          accepted.push(now);
        } else {
          expect(d.until).toBeGreaterThan(now);
          // The window does have room at `until`: its oldest start has left it by then.
          expect(rateDecision(log, 0, rate, `probe${i}`, d.until).ok).toBe(true);
          nextWake = d.nextWake;
        }
      }
      for (let i = 0; i < accepted.length; i++) {
        const inWindow = accepted.filter((t) => t >= accepted[i]! && t < accepted[i]! + rate.perMs).length;
        expect(inWindow, `run ${run}, window from ${accepted[i]}`).toBeLessThanOrEqual(rate.starts);
      }
      expect(accepted.length).toBeGreaterThan(0);
    }
  });

  test("refused jobs are woken one start interval apart, not all together", () => {
    const rate = { starts: 2, perMs: 1_000 };
    const full: LoggedStart[] = [{ at: 0, job: "a" }, { at: 10, job: "b" }];
    const first = rateDecision(full, 0, rate, "c", 20);
    const second = first.ok ? undefined : rateDecision(full, first.nextWake, rate, "d", 21);
    expect(first).toEqual({ ok: false, until: 1_000, nextWake: 1_500 });
    expect(second).toEqual({ ok: false, until: 1_500, nextWake: 2_000 });
  });
});

describe("a slot holder's verdict", () => {
  test("kept while its claim may land or the run its claim became holds it; given back otherwise; a queued holder is moved on first", () => {
    const old = { at: 0, by: "claim-a" };
    const now = GATE_LIMITS.slotGraceMs + 1;
    expect(slotVerdict(undefined, "key:k", { at: now - 1, by: "claim-a" }, now)).toBe("keep");
    expect(slotVerdict(undefined, "key:k", old, now)).toBe("release");
    expect(slotVerdict({ status: "running", slots: [{ key: "key:k", at: 0, by: "claim-a" }] }, "key:k", old, now)).toBe("keep");
    // A run under another claim of the job: the slot it names is not this one.
    expect(slotVerdict({ status: "running", slots: [{ key: "key:k", at: 5, by: "claim-b" }] }, "key:k", old, now)).toBe("release");
    expect(slotVerdict({ status: "running" }, "key:k", old, now)).toBe("release");
    expect(slotVerdict({ status: "queued" }, "key:k", old, now)).toBe("requeue");
    expect(slotVerdict({ status: "succeeded" }, "key:k", old, now)).toBe("release");
  });
});

describe("names", () => {
  test("limit keys and pause targets say what they accept", () => {
    expect(parseLimitKey("key:tenant-acme")).toEqual({ ok: true, key: "key:tenant-acme" });
    expect(parseLimitKey("tenant")).toMatchObject({ ok: false, message: expect.stringContaining("type:<job type> or key:<concurrency key>") });
    expect(parsePauseTarget("queue:large", ["default", "large"])).toEqual({ ok: true, target: "queue:large" });
    expect(parsePauseTarget("queue:huge", ["default", "large"])).toMatchObject({ ok: false, message: expect.stringContaining("unknown queue") });
  });
});
