/**
 * A flow's rules, free of I/O (docs/jobs.md "Flows"; the I/O is core/flows.ts): what a child is,
 * its derived id, which fan-in shard counts it, and what a waiting parent's children say should
 * happen to it. The store, the sweeper, the API and the runner all decide from these.
 *
 * A parent spawns its children in rounds (one per wait). A round's children are specified in
 * spec items of FANIN_SHARD_SIZE each, written before the parent's record names them, and their
 * ends are counted in fan-in items of the same size: shard k of a round covers child indexes
 * [k·100, k·100+100).
 */
import { createHash } from "node:crypto";
import { isTerminal, type Job, type JobError, type Status } from "./job.js";

/** Children one parent may have in a round; a submit or spawn over it is refused before anything is written. */
export const MAX_CHILDREN = 10_000;
/** Steps one chain may have (`after` on a submit). */
export const MAX_CHAIN_STEPS = 20;
/**
 * Consecutive child indexes per spec item and per fan-in item. 100 indexes of up to 5 digits keep
 * a fan-in item's number sets well under 1 KB, so a child's fan-in write costs one unit, and
 * 10,000 children are 100 items, each written about 100 times when they all finish at once: no
 * hot key (one item takes about 1,000 writes a second).
 */
export const FANIN_SHARD_SIZE = 100;
/**
 * The specs of one shard's children are one item, under DynamoDB's 400 KB item limit with room
 * to spare: larger child inputs go by reference (an S3 key), as the API's docs say.
 */
export const MAX_SPEC_SHARD_BYTES = 350 * 1024;
/** A handler sees this many children's outcomes at once (ctx.children); beyond it, it pages. */
export const CHILD_OUTCOMES_PAGE = 1_000;

export const FLOW_POLICIES = ["collect", "failFast"] as const;
/**
 * `collect`: the parent resumes once every child is terminal, whatever their ends, and decides.
 * `failFast`: the first failed child fails the parent and its live children are cancelled.
 */
export type FlowPolicy = (typeof FLOW_POLICIES)[number];

/** A child as its parent's submit or spawn gave it, resolved against its type (queue, limits). */
export interface ChildSpec {
  type: string;
  input: unknown;
  key?: string;
  /** What the child's limits count it under, beside its type (core/gates.ts). */
  concurrencyKey?: string;
  queue: "default" | "large";
  maxAttempts: number;
  timeoutMs: number;
  /** A chain's step: this child waits on these steps first (the first runs first) and takes the last one's result as its input. */
  after?: ChildSpec[];
}

/** A parent's last round of children. */
export interface Flow {
  round: number;
  total: number;
  policy: FlowPolicy;
  /** The nonce naming this round's spec items (specKey). */
  spec: string;
  /** A chain's step: resumed with its one child's result as its input. */
  chain?: true;
  /** Some child has a key: its id derives from the key, so reading the ids needs the specs. */
  keyed?: true;
  /** When the parent was last retried: a failed or cancelled child of this round that ended before it runs again. */
  retriedAt?: number;
}

/** A child's place in its parent's flow. */
export interface ParentLink {
  id: string;
  round: number;
  index: number;
  /** The round's size: how many ends fill this child's fan-in shard. */
  of: number;
  key?: string;
  /** The parent's policy is failFast: this child's failure fails it at once. */
  failFast?: true;
}

/**
 * A child's id, derived from its parent's, the round and its key (or index): a parent re-run
 * after a crash spawns the same ids, and the conditional put finds the first child. Shaped like
 * an idempotent submit's id (core/store.ts idempotentId), so every reader takes it for a job id;
 * the separators keep the input spaces apart.
 */
export function childId(parentId: string, round: number, slot: { index: number; key?: string | undefined }): string {
  const which = slot.key !== undefined ? `k\u0000${slot.key}` : `i\u0000${slot.index}`;
  const digest = createHash("sha256").update(`${parentId}\u0001child\u0000${round}\u0000${which}`).digest("hex");
  return `K${digest.slice(0, 25).toUpperCase()}`;
}

export const shardCount = (total: number): number => Math.ceil(total / FANIN_SHARD_SIZE);
export const shardOfChild = (index: number): number => Math.floor(index / FANIN_SHARD_SIZE);

/** How many children shard `k` of a round of `total` counts when all are terminal. */
export function shardExpected(total: number, k: number): number {
  if (!Number.isInteger(k) || k < 0 || k >= shardCount(total)) throw new RangeError(`no fan-in shard ${k} for ${total} children`);
  return Math.min(FANIN_SHARD_SIZE, total - k * FANIN_SHARD_SIZE);
}

/** The fan-in and spec items' keys: beside the parent's record, never a job id (they have a '#'). */
export const fanInKey = (parentId: string, round: number, k: number): string => `${parentId}#fanin#${round}#${k}`;
export const specKey = (parentId: string, round: number, nonce: string, k: number): string => `${parentId}#spec#${round}#${nonce}#${k}`;

/** The fan-in set a child's end goes into. */
export type EndSet = "s" | "f" | "c";
export const END_SETS: readonly EndSet[] = ["s", "f", "c"];
export const endSetOf = (status: "succeeded" | "failed" | "cancelled"): EndSet => (status === "succeeded" ? "s" : status === "failed" ? "f" : "c");

/** One fan-in item as read: the indexes of its children that ended, by how. */
export type FanInShard = Record<EndSet, ReadonlySet<number>>;

export interface ChildCounts {
  total: number;
  queued: number;
  running: number;
  waiting: number;
  succeeded: number;
  failed: number;
  cancelled: number;
}

/** Counts by status of a round's children as read (a missing child counts as queued: it is about to be). */
export function countChildren(total: number, children: readonly (Job | undefined)[]): ChildCounts {
  const c: ChildCounts = { total, queued: 0, running: 0, waiting: 0, succeeded: 0, failed: 0, cancelled: 0 };
  for (let i = 0; i < total; i++) c[children[i]?.status ?? "queued"]++;
  return c;
}

/** Terminal counts from the fan-in items alone (a child's end lands there a moment after its record). */
export function endedCounts(shards: readonly FanInShard[]): Pick<ChildCounts, "succeeded" | "failed" | "cancelled"> {
  const n = (set: EndSet) => shards.reduce((sum, s) => sum + s[set].size, 0);
  return { succeeded: n("s"), failed: n("f"), cancelled: n("c") };
}

/** How many of a shard's children ended (a child counts once, whichever set holds it). */
export const endedIn = (s: FanInShard): number => new Set([...s.s, ...s.f, ...s.c]).size;

/**
 * What the fan-in items alone say about a round: every child ended (`resume`, or `fail` under
 * failFast with a failed child), or not yet (`wait`). Only the last child to end, or the sweeper,
 * acts on it, with a write conditional on the parent's version.
 */
export function fanInVerdict(flow: Flow, shards: readonly (FanInShard | undefined)[]): "resume" | "fail" | "wait" {
  for (let k = 0; k < shardCount(flow.total); k++) {
    const s = shards[k];
    if (!s || endedIn(s) < shardExpected(flow.total, k)) return "wait";
  }
  if (flow.policy === "failFast" && shards.some((s) => s!.f.size > 0)) return "fail";
  return "resume";
}

/** What the sweeper finds when it recounts a waiting parent's round from its children's own records. */
export interface FlowCheck {
  /** Indexes whose child was never written (a crash between the parent's write and the children's). */
  missing: number[];
  /** Indexes of failed or cancelled children that ended before the parent's retry: they run again. */
  retry: number[];
  /** Indexes of live children (to cancel when the parent fails). */
  live: number[];
  counts: ChildCounts;
  /** What the parent gets, once the missing are written and the retries made. */
  verdict: "resume" | "fail" | "wait";
  /** The first failed child under failFast, for the parent's error. */
  failed?: number;
}

/** Decides from the children's records (index order; undefined where none was found). */
export function checkFlow(flow: Flow, children: readonly (Job | undefined)[]): FlowCheck {
  const missing: number[] = [];
  const retry: number[] = [];
  const live: number[] = [];
  let failed: number | undefined;
  for (let i = 0; i < flow.total; i++) {
    const child = children[i];
    if (!child) missing.push(i);
    else if (!isTerminal(child.status)) live.push(i);
    else if (child.status !== "succeeded" && endedBeforeRetry(child, flow.retriedAt)) retry.push(i);
    else if (child.status === "failed" && failed === undefined) failed = i;
  }
  const counts = countChildren(flow.total, children);
  const verdict =
    flow.policy === "failFast" && failed !== undefined ? "fail" : missing.length || retry.length || live.length ? "wait" : "resume";
  return { missing, retry, live, counts, verdict, ...(failed !== undefined ? { failed } : {}) };
}

const finishedAt = (j: Job): number => ("finishedAt" in j ? j.finishedAt : j.updatedAt);

/** A child that ended by the parent's retry and has not been retried since: its end is the old run's. */
function endedBeforeRetry(child: Job, retriedAt: number | undefined): boolean {
  if (retriedAt === undefined || finishedAt(child) > retriedAt) return false;
  return !(child.actions ?? []).some((a) => a.action === "retry" && a.at >= retriedAt);
}

/**
 * The fan-in's ends that a child's record could contradict: a failed or cancelled child may have
 * been retried since (by the parent's retry, or its own), so it may be live again. A succeeded
 * one may not (only failed and cancelled jobs are retried), so its end in `s` is final.
 */
export const doubtfulEnds = (shards: readonly (FanInShard | undefined)[]): number[] => [...new Set(shards.flatMap((s) => (s ? [...s.f, ...s.c] : [])))].sort((a, b) => a - b);

/**
 * Whether the records of the doubtful ends confirm the fan-in: each written, ended, and not an
 * end from before the parent's retry. Answers the first failed one, for failFast's error.
 */
export function confirmEnds(flow: Flow, records: ReadonlyMap<number, Job | undefined>): { confirmed: boolean; failed?: number } {
  let failed: number | undefined;
  for (const [i, child] of [...records].sort(([a], [b]) => a - b)) {
    if (!child || !isTerminal(child.status) || (child.status !== "succeeded" && endedBeforeRetry(child, flow.retriedAt))) return { confirmed: false };
    if (child.status === "failed") failed ??= i;
  }
  return { confirmed: true, ...(failed !== undefined ? { failed } : {}) };
}

/** The fan-in sets the children's records say the round should have: what a recount writes back. */
export function fanInFromChildren(flow: Flow, children: readonly (Job | undefined)[], retrying: ReadonlySet<number>): FanInShard[] {
  return Array.from({ length: shardCount(flow.total) }, (_, k) => {
    const sets: Record<EndSet, Set<number>> = { s: new Set(), f: new Set(), c: new Set() };
    for (let i = k * FANIN_SHARD_SIZE; i < Math.min(flow.total, (k + 1) * FANIN_SHARD_SIZE); i++) {
      const st = children[i]?.status;
      if (st === "succeeded" || st === "failed" || st === "cancelled") if (!retrying.has(i)) sets[endSetOf(st)].add(i);
    }
    return sets;
  });
}

/**
 * Why a child must not run: its parent is gone, finished, or moved on to a later round. Such a
 * child is cancelled at its claim or by the sweeper, never run, so no work is done for a flow
 * nobody waits on.
 */
export function orphanReason(child: Job, parent: Job | undefined): string | undefined {
  const link = child.parent;
  if (!link) return undefined;
  if (!parent) return `its parent ${link.id} no longer exists`;
  if (parent.status !== "waiting") return `its parent ${link.id} is ${parent.status}`;
  if (parent.flow.round !== link.round) return `its parent ${link.id} has moved on to round ${parent.flow.round}`;
  return undefined;
}

/** The error a parent gets when a child fails under failFast. */
export function childFailedError(child: { id: string; error?: JobError }, index: number): JobError {
  const why = child.error ? `${child.error.code}: ${child.error.message}` : "it failed";
  return { code: "child_failed", message: `child ${index} (${child.id}) failed, and the policy is failFast: ${why}`.slice(0, 1000) };
}

/** What a handler or a caller sees of one child. */
export interface ChildOutcome {
  index: number;
  key?: string;
  id: string;
  status: Status;
  result?: unknown;
  error?: JobError;
}
