/**
 * The sparse indexes' partitions. The due index's are `${queue}#${status}#${shard}` and the wait
 * index's `${queue}#${shard}`, with the same shard of a job's id, so a burst of submissions (or
 * one hot queue) spreads over several partitions instead of heating one. The sweeper queries
 * each of them.
 */
import { DUE_SHARDS, QUEUE_NAMES, type QueueName } from "./config.js";

export function shardOf(id: string): number {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
  return h % DUE_SHARDS;
}

const shards = (): number[] => Array.from({ length: DUE_SHARDS }, (_, i) => i);

/** The states a job is in the due index with (a waiting parent's deadline is its flow's next check). */
export const DUE_STATES = ["queued", "running", "waiting"] as const;
export type DueState = (typeof DUE_STATES)[number];

export const dueShard = (queue: QueueName, status: DueState, id: string): string =>
  `${queue}#${status}#${shardOf(id)}`;

/** Every due-index partition the sweeper reads. */
export const allDueShards = (): string[] =>
  QUEUE_NAMES.flatMap((q) => DUE_STATES.flatMap((s) => shards().map((i) => `${q}#${s}#${i}`)));

export const waitShard = (queue: QueueName, id: string): string => `${queue}#${shardOf(id)}`;

/** One queue's wait-index partitions. */
export const waitShards = (queue: QueueName): string[] => shards().map((i) => `${queue}#${i}`);
