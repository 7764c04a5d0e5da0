/** The flow arithmetic (core/flow.ts): derived child ids and the fan-in shards. */
import { describe, expect, it } from "vitest";
import { childId, FANIN_SHARD_SIZE, fanInKey, MAX_CHILDREN, shardCount, shardExpected, shardOfChild, specKey } from "../core/flow.js";
import { idempotentId, isJobId } from "../core/store.js";

describe("child ids", () => {
  it("are the same for the same parent and key, differ otherwise, and read as job ids", () => {
    const a = childId("01JD0000000000000000000000", 0, { index: 3, key: "us-east-1/gpt/q1" });
    expect(childId("01JD0000000000000000000000", 0, { index: 7, key: "us-east-1/gpt/q1" }), "the key names it, not its place").toBe(a);
    expect(childId("01JD0000000000000000000001", 0, { index: 3, key: "us-east-1/gpt/q1" })).not.toBe(a);
    expect(childId("01JD0000000000000000000000", 0, { index: 3, key: "us-east-1/gpt/q2" })).not.toBe(a);
    expect(childId("01JD0000000000000000000000", 1, { index: 3, key: "us-east-1/gpt/q1" }), "another round").not.toBe(a);
    expect(childId("01JD0000000000000000000000", 0, { index: 3 })).not.toBe(a);
    expect(isJobId(a)).toBe(true);
  });
  it("never equal an idempotent submit's id for the same strings", () => {
    expect(childId("owner", 0, { index: 0, key: "key" })).not.toBe(idempotentId("owner", "key"));
  });
});

describe("fan-in shards", () => {
  it("cover every index exactly once, each within its size, for any total up to the limit", () => {
    for (const total of [1, 99, 100, 101, 250, MAX_CHILDREN]) {
      const counted = Array.from({ length: shardCount(total) }, (_, k) => shardExpected(total, k)).reduce((a, b) => a + b, 0);
      expect(counted, `total ${total}`).toBe(total);
      for (let i = 0; i < total; i += 37) expect(shardExpected(total, shardOfChild(i))).toBeGreaterThan(i % FANIN_SHARD_SIZE);
    }
    expect(shardCount(MAX_CHILDREN)).toBe(100);
    expect(() => shardExpected(250, 3)).toThrow(RangeError);
  });
  it("keep their items beside the parent, never mistaken for a job", () => {
    expect(isJobId(fanInKey("01JD0000000000000000000000", 0, 0))).toBe(false);
    expect(isJobId(specKey("01JD0000000000000000000000", 0, "n", 0))).toBe(false);
  });
});
