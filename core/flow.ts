/**
 * The arithmetic of a flow (docs/flows-design.md), free of I/O: a child's id, and which fan-in
 * shard counts it. Work in progress for the flow issue; nothing calls it yet.
 */
import { createHash } from "node:crypto";

/** Children one parent may have; a submit over it is a 400 before anything is written. */
export const MAX_CHILDREN = 10_000;
/**
 * Consecutive child indexes per fan-in shard item. 100 indexes of up to 5 digits keep a shard's
 * number set well under 1 KB, so a child's fan-in write costs one unit, and 10,000 children are
 * 100 items, each written about 100 times when they all finish at once: no hot key.
 */
export const FANIN_SHARD_SIZE = 100;

/**
 * A child's id, derived from its parent's and its key (or index, as a string): a parent re-run
 * after a crash spawns the same ids, and the conditional put finds the first child. Shaped like
 * an idempotent submit's id (core/store.ts idempotentId), so every reader takes it for a job id;
 * the separator keeps the two input spaces apart.
 */
export function childId(parentId: string, key: string): string {
  const digest = createHash("sha256").update(`${parentId}\u0001child\u0000${key}`).digest("hex");
  return `K${digest.slice(0, 25).toUpperCase()}`;
}

export const shardCount = (total: number): number => Math.ceil(total / FANIN_SHARD_SIZE);
export const shardOfChild = (index: number): number => Math.floor(index / FANIN_SHARD_SIZE);

/** How many children shard `k` of a parent with `total` children counts when all are terminal. */
export function shardExpected(total: number, k: number): number {
  if (!Number.isInteger(k) || k < 0 || k >= shardCount(total)) throw new RangeError(`no fan-in shard ${k} for ${total} children`);
  return Math.min(FANIN_SHARD_SIZE, total - k * FANIN_SHARD_SIZE);
}

/** The fan-in shard item's key: beside the parent's record, never a job id (it has a '#'). */
export const fanInKey = (parentId: string, k: number): string => `${parentId}#fanin#${k}`;
