/**
 * The due index's partitions: `${queue}#${status}#${shard}`, so a burst of submissions spreads
 * over several partitions instead of heating one. The sweeper queries each of them.
 */
import { DUE_SHARDS, QUEUE_NAMES, type QueueName } from "./config.js";

export function shardOf(id: string): number {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
  return h % DUE_SHARDS;
}

export const dueShard = (queue: QueueName, status: "queued" | "running", id: string): string =>
  `${queue}#${status}#${shardOf(id)}`;

/** Every due-index partition the sweeper reads. */
export const allDueShards = (): string[] =>
  QUEUE_NAMES.flatMap((q) =>
    (["queued", "running"] as const).flatMap((s) => Array.from({ length: DUE_SHARDS }, (_, i) => `${q}#${s}#${i}`)),
  );
