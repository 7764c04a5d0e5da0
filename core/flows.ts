/**
 * A flow's I/O (its rules are core/flow.ts): writing a round's children, counting their ends
 * into fan-in items, resuming (or failing) the parent exactly once, cascading a parent's end to
 * its live children, and the sweeper's recount of a waiting parent from its children's records.
 *
 * Order of writes, so a crash anywhere loses nothing:
 * 1. the round's spec items (write-once, keyed by a nonce), before the record that names them;
 * 2. the parent's record (to waiting), naming the spec;
 * 3. the children (conditional puts of derived ids), then their doorbells.
 * A crash after 2 leaves a waiting parent with children missing: the sweeper writes them from
 * the spec at the parent's deadline. A child that ends ADDs its index to its shard's set (one
 * write, idempotent); the child that completes a shard reads all shards and, if every child has
 * ended, resumes the parent with a write conditional on its version: of several, one wins. A lost
 * ADD or a lost resume is found by the same recount.
 *
 * Inputs: the store's own write (so a parent that ends is itself counted by its parent, in a
 * chain) and reads. Outputs: the writes above. `childEnded` and `cascade` may throw (a store
 * that keeps failing); the store's caller swallows that, since the sweeper repairs what they miss.
 */
import { UpdateCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { batchGetAll } from "./aws.js";
import { LIMITS, TABLE } from "./config.js";
import {
  checkFlow,
  childFailedError,
  confirmEnds,
  doubtfulEnds,
  childId,
  END_SETS,
  endSetOf,
  fanInFromChildren,
  fanInKey,
  fanInVerdict,
  FANIN_SHARD_SIZE,
  endedIn,
  shardCount,
  shardExpected,
  shardOfChild,
  specKey,
  type ChildSpec,
  type EndSet,
  type FanInShard,
  type Flow,
  type FlowCheck,
  type FlowPolicy,
  type ParentLink,
} from "./flow.js";
import { isTerminal, type FinishedJob, type Job, type QueuedJob, type WaitingJob } from "./job.js";
import * as life from "./lifecycle.js";
import type { Change, Clock, NewJob } from "./lifecycle.js";
import { byLane, type Doorbell } from "./queue.js";
import type { Recognize, WriteResult } from "./store-write.js";
import { eachBounded } from "./bounded.js";
import { needsRefresh, type ValueStore } from "./values.js";

/** Who the flow's own cancels and retries are recorded as. */
export const FLOW_ACTOR = "warden:flow";
/** Children rung together while a round is written. */
const RING_BATCH = 100;
/** How many children's writes (puts, cancels, retries) a flow makes at once. */
const CONCURRENCY = 16;
/**
 * A spec or fan-in item outlives the longest a child may run (its runtime limit, LIMITS) and a
 * finished parent's retention; a parent that waits longer than MAX_WAIT_DAYS is ended first.
 */
const FLOW_ITEM_DAYS = LIMITS.maxTimeoutSeconds / 86_400 + 1;
/**
 * A parent waits at most this long for a round: its children's records are kept for the
 * retention after they end, and past it a child that ended would read as never written.
 */
export const maxWaitMs = (retentionDays: number): number => Math.max(1, retentionDays - 1) * 86_400_000;

export interface FlowDeps {
  db: DynamoDBDocumentClient;
  table: string;
  values: ValueStore;
  clock(): Clock;
  doorbell?: Doorbell | undefined;
  /** The store's write: what lands is counted by its own parent in turn. */
  write<J extends Job>(change: Change<J>, recognize: Recognize): Promise<WriteResult<J>>;
  getRecord(id: string): Promise<Job | undefined>;
  records(ids: string[], consistent: boolean): Promise<Job[]>;
  retry(id: string, by: string): Promise<Job>;
  requestCancel(id: string, by: string): Promise<Job>;
}

/** What the sweeper's look at a waiting parent did. */
export interface FlowRepair {
  did: "resumed" | "failed" | "rechecked" | "moved";
  /** Children written from the spec, retried, and fan-in items rewritten from the children's records. */
  written: number;
  retried: number;
  recounted: number;
  /** True when the flow needed a repair: children missing, a lost end or resume, drifted counts. */
  stuck: boolean;
}

export class Flows {
  constructor(private readonly d: FlowDeps) {}

  private expiresAt(c: Clock): number {
    return Math.floor(c.now / 1000) + (FLOW_ITEM_DAYS + c.retentionDays) * 86_400;
  }

  // ─── writing a round ──────────────────────────────────────────────────────────────────────

  /** Step 1: the round's specs, one item per shard, write-once. */
  async writeSpecs(parentId: string, round: number, nonce: string, specs: readonly ChildSpec[]): Promise<void> {
    const c = this.d.clock();
    const items = Array.from({ length: shardCount(specs.length) }, (_, k) => ({
      id: specKey(parentId, round, nonce, k),
      json: JSON.stringify(specs.slice(k * FANIN_SHARD_SIZE, (k + 1) * FANIN_SHARD_SIZE)),
      expiresAt: this.expiresAt(c),
    }));
    await this.d.values.put(items);
  }

  /** The specs of `shards` (all by default), by child index; undefined where an item is missing. */
  async readSpecs(parent: Job & { flow: Flow }, shards?: number[]): Promise<(ChildSpec | undefined)[]> {
    const f = parent.flow;
    const ks = shards ?? Array.from({ length: shardCount(f.total) }, (_, k) => k);
    const found = await this.d.values.readJson(ks.map((k) => specKey(parent.id, f.round, f.spec, k)));
    const out: (ChildSpec | undefined)[] = new Array(f.total);
    for (const k of ks) {
      const json = found.get(specKey(parent.id, f.round, f.spec, k));
      const specs = json ? (JSON.parse(json) as ChildSpec[]) : [];
      specs.forEach((s, i) => (out[k * FANIN_SHARD_SIZE + i] = s));
    }
    return out;
  }

  /**
   * A new job that waits on `specs` before it runs (a submit with children, a chain's step):
   * specs, then its record, then its children. Answers the record as stored, and whether this
   * call created it (an idempotent submit finds the first).
   */
  async createParent(spec: NewJob, id: string, specs: readonly ChildSpec[], policy: FlowPolicy, o: { chain?: true; nonce: string }): Promise<WriteResult<WaitingJob>> {
    const keyed = specs.some((s) => s.key !== undefined);
    const flow: Flow = { round: 0, total: specs.length, policy, spec: o.nonce, ...(o.chain ? { chain: true as const } : {}), ...(keyed ? { keyed: true as const } : {}) };
    await this.writeSpecs(id, 0, o.nonce, specs);
    const w = await this.d.write(life.createWaiting(spec, id, flow, this.d.clock()), "origin");
    // The parent is written: a child that could not be written now is the sweeper's to write
    // from the specs at the parent's deadline, and the caller is answered with the parent.
    if (w.applied) await this.spawn(w.job, specs).catch(() => undefined);
    return w;
  }

  /**
   * Step 3: every child of the parent's round that is not written yet (conditional puts, so a
   * repeat finds the first), then the new queued ones' doorbells. Answers how many it wrote.
   */
  async spawn(parent: WaitingJob, specs: readonly (ChildSpec | undefined)[], only?: readonly number[]): Promise<number> {
    const indexes = only ?? specs.map((_, i) => i);
    const rung: QueuedJob[] = [];
    let written = 0;
    try {
      await eachBounded(indexes, CONCURRENCY, async (index) => {
        const s = specs[index];
        if (!s) throw new Error(`the spec of child ${index} of ${parent.id} is missing`);
        const made = await this.createChild(parent, s, index);
        if (made) written++;
        if (made?.status === "queued") rung.push(made);
        // Rung as they are written, a batch at a time: the first children start before the last are written.
        if (rung.length >= RING_BATCH) await this.ring(rung.splice(0));
      });
    } finally {
      // The children that were written are rung even when another could not be.
      await this.ring(rung);
    }
    return written;
  }

  private async createChild(parent: WaitingJob, s: ChildSpec, index: number): Promise<Job | undefined> {
    const f = parent.flow;
    const link: ParentLink = { id: parent.id, round: f.round, index, of: f.total, ...(s.key !== undefined ? { key: s.key } : {}), ...(f.policy === "failFast" ? { failFast: true as const } : {}) };
    const id = childId(parent.id, f.round, { index, key: s.key });
    // A child takes its parent's priority (a high fan-out's children are high too) and its own concurrency key.
    const spec: NewJob = {
      owner: parent.owner,
      type: s.type,
      queue: s.queue,
      input: s.input,
      maxAttempts: s.maxAttempts,
      timeoutMs: s.timeoutMs,
      parent: link,
      ...(parent.priority ? { priority: parent.priority } : {}),
      ...(s.concurrencyKey !== undefined ? { concurrencyKey: s.concurrencyKey } : {}),
    };
    if (s.after?.length) {
      // A chain's step: it waits on the step before it, which waits on the one before that.
      const before = s.after.at(-1)!;
      const rest = s.after.slice(0, -1);
      const w = await this.createParent(spec, id, [{ ...before, ...(rest.length ? { after: rest } : {}) }], "failFast", { chain: true, nonce: "c" });
      return w.applied ? w.job : undefined;
    }
    const w = await this.d.write(life.create(spec, id, this.d.clock()), "origin");
    return w.applied ? w.job : undefined;
  }

  private async ring(jobs: readonly Job[]): Promise<void> {
    if (!this.d.doorbell) return;
    for (const { lane, ids } of byLane(jobs)) {
      // A doorbell that is not sent is rung by the sweeper at the job's start deadline.
      await this.d.doorbell.send(lane, ids, 0).catch(() => undefined);
    }
  }

  // ─── a child ends ─────────────────────────────────────────────────────────────────────────

  /** A child reached a terminal state: count it, and act on the parent if that decides the round. */
  async childEnded(child: FinishedJob): Promise<void> {
    const link = child.parent!;
    const k = shardOfChild(link.index);
    const x = await this.d.db.send(
      new UpdateCommand({
        TableName: this.d.table,
        Key: { [TABLE.partitionKey]: fanInKey(link.id, link.round, k) },
        UpdateExpression: "ADD #set :i SET #exp = if_not_exists(#exp, :exp)",
        ExpressionAttributeNames: { "#set": endSetOf(child.status), "#exp": TABLE.ttlAttribute },
        ExpressionAttributeValues: { ":i": new Set([link.index]), ":exp": this.expiresAt(this.d.clock()) },
        ReturnValues: "ALL_NEW",
      }),
    );
    const failsParent = child.status === "failed" && link.failFast;
    if (failsParent || endedIn(shardOf(x.Attributes)) >= shardExpected(link.of, k)) await this.decide(link.id, link.round, child);
  }

  /** Reads the round's fan-in items, and resumes or fails the parent if every child has ended. */
  async decide(parentId: string, round: number, ender?: FinishedJob): Promise<"resumed" | "failed" | "wait" | "moved"> {
    const parent = await this.d.getRecord(parentId);
    if (parent?.status !== "waiting" || parent.flow.round !== round) return "moved";
    const failedNow = ender?.status === "failed" && ender.parent?.failFast ? ender : undefined;
    if (failedNow) return this.settle(parent, "fail", ender);
    const shards = await this.readFanIn(parent.flow, parentId);
    const verdict = fanInVerdict(parent.flow, shards);
    if (verdict === "wait") return "wait";
    // The fan-in only says the round may be complete: the records of the children it counts as
    // failed or cancelled, read after the parent's version, must agree. One retried meanwhile (its
    // end still counted, or counted again by a stale recount) is live in its record, and the
    // parent waits for it. A succeeded end is final: nothing retries a succeeded job.
    const doubtful = doubtfulEnds(shards);
    const records = await this.childrenAt(parent, doubtful);
    const confirmed = confirmEnds(parent.flow, new Map(doubtful.map((i, n) => [i, records[n]])));
    if (!confirmed.confirmed) return "wait";
    return this.settle(parent, verdict, ender, confirmed.failed);
  }

  /** The records of a round's children at `indexes`, in that order (undefined where none exists). */
  private async childrenAt(parent: Job & { flow: Flow }, indexes: number[], specs?: (ChildSpec | undefined)[], consistent = true): Promise<(Job | undefined)[]> {
    if (!indexes.length) return [];
    const ids = await this.ids(parent, indexes, specs);
    const byId = new Map((await this.d.records(ids, consistent)).map((j) => [j.id, j]));
    return ids.map((id) => byId.get(id));
  }

  /** One write conditional on the parent's version: of every child and sweep that gets here, one wins. */
  private async settle(parent: WaitingJob, verdict: "resume" | "fail", ender?: FinishedJob, firstFailed?: number): Promise<"resumed" | "failed" | "moved"> {
    const c = this.d.clock();
    if (verdict === "fail") {
      // The failed child is the ender, or the one the verdict's read found (decide, check).
      const failed = ender?.status === "failed" ? ender : firstFailed !== undefined ? (await this.childrenAt(parent, [firstFailed]))[0] : undefined;
      const error = childFailedError(failed ?? { id: "?" }, failed?.parent?.index ?? firstFailed ?? -1);
      const w = await this.d.write(life.failFlow(parent, error, c), "write");
      return w.applied ? "failed" : "moved";
    }
    if (parent.flow.chain) {
      const step = await this.chainStep(parent, ender);
      // A chain goes on only from a step that succeeded: one that was cancelled ends the chain, cancelled too.
      if (step?.status !== "succeeded") {
        const error = { code: "cancelled" as const, message: `its step ${step?.id ?? "?"} ended ${step?.status ?? "missing"}, so the chain stops here` };
        const w = await this.d.write(life.endFlow(parent, "cancelled", error, c), "write");
        return w.applied ? "failed" : "moved";
      }
    }
    const input = parent.flow.chain ? { input: await this.chainInput(parent, ender) } : {};
    const w = await this.d.write(life.resume(parent, c, input), "write");
    if (!w.applied) return "moved";
    await this.ring([w.job]);
    return "resumed";
  }

  /** A chain's one step before this one, as it ended. */
  private async chainStep(parent: WaitingJob, ender?: FinishedJob): Promise<Job | undefined> {
    if (ender?.parent?.id === parent.id) return ender;
    return this.d.getRecord((await this.ids(parent, [0]))[0]!);
  }

  /** A chain's step takes its one child's result as its input. */
  private async chainInput(parent: WaitingJob, ender?: FinishedJob): Promise<unknown> {
    if (ender?.status === "succeeded" && ender.result !== undefined) return ender.result;
    const child = await this.chainStep(parent, ender);
    if (child?.status !== "succeeded") return null;
    return ((await this.d.values.load([child], ["result"])).jobs[0] as { result?: unknown }).result ?? null;
  }

  async readFanIn(flow: Flow, parentId: string): Promise<(FanInShard | undefined)[]> {
    const keys = Array.from({ length: shardCount(flow.total) }, (_, k) => fanInKey(parentId, flow.round, k));
    const items = await batchGetAll(this.d.db, this.d.table, keys.map((id) => ({ [TABLE.partitionKey]: id })), true);
    const byKey = new Map(items.map((it) => [it[TABLE.partitionKey] as string, it]));
    return keys.map((key) => (byKey.has(key) ? shardOf(byKey.get(key)) : undefined));
  }

  // ─── a parent ends or is retried ──────────────────────────────────────────────────────────

  /**
   * A parent that left waiting for a terminal state (failFast, a cancel): its live children are
   * cancelled, best effort. One that is missed is cancelled at its claim, or by the sweeper when
   * it is overdue (core/flow.ts orphanReason), and never run.
   */
  async cascade(parent: Job & { flow: Flow }): Promise<void> {
    const children = await this.children(parent);
    const live = children.filter((j): j is Job => j !== undefined && !isTerminal(j.status));
    await eachBounded(live, CONCURRENCY, async (j) => {
      await this.d.requestCancel(j.id, FLOW_ACTOR).catch(() => undefined);
    });
  }

  /**
   * After a parent's retry (lifecycle.retry: it waits again with `retriedAt`): its failed and
   * cancelled children run again, their ends taken out of the fan-in first, all of them before
   * any is retried, so a retried child that ends at once cannot find the round complete. Then,
   * if nothing was left to retry, the parent resumes.
   */
  async retried(parent: WaitingJob): Promise<void> {
    const children = await this.children(parent);
    const check = checkFlow(parent.flow, children);
    await this.retryChildren(parent, check.retry, children);
    if (check.verdict !== "wait") await this.decide(parent.id, parent.flow.round);
  }

  private async retryChildren(parent: WaitingJob, indexes: number[], children: (Job | undefined)[]): Promise<void> {
    if (!indexes.length) return;
    await eachBounded(indexes, CONCURRENCY, (i) => this.forget({ id: parent.id, round: parent.flow.round, index: i }));
    await eachBounded(indexes, CONCURRENCY, async (i) => {
      const after = await this.d.retry(children[i]!.id, FLOW_ACTOR);
      if (after.status === "queued") await this.ring([after]);
    });
  }

  /** Takes a child's end out of its fan-in item, before the child is retried. */
  async forget(link: Pick<ParentLink, "id" | "round" | "index">): Promise<void> {
    const index = link.index;
    await this.d.db.send(
      new UpdateCommand({
        TableName: this.d.table,
        Key: { [TABLE.partitionKey]: fanInKey(link.id, link.round, shardOfChild(index)) },
        // An UpdateItem makes the item when there is none: it gets its TTL like one a child's end makes.
        UpdateExpression: "DELETE #s :i, #f :i, #c :i SET #exp = if_not_exists(#exp, :exp)",
        ExpressionAttributeNames: { "#s": "s", "#f": "f", "#c": "c", "#exp": TABLE.ttlAttribute },
        ExpressionAttributeValues: { ":i": new Set([index]), ":exp": this.expiresAt(this.d.clock()) },
      }),
    );
  }

  // ─── the sweeper's look at a waiting parent ───────────────────────────────────────────────

  /**
   * Recounts the round from the children's own records and repairs what is wrong: children never
   * written are written from the spec, children that ended before the parent's retry are retried,
   * fan-in items that drifted are rewritten, and a round that is complete resumes (or fails) the
   * parent. Otherwise the parent's next look is pushed a start deadline on.
   */
  async check(parent: WaitingJob): Promise<FlowRepair> {
    const now = this.d.clock().now;
    if (now - parent.waitingSince > maxWaitMs(this.d.clock().retentionDays)) {
      const days = Math.round((now - parent.waitingSince) / 86_400_000);
      const w = await this.d.write(life.endFlow(parent, "failed", { code: "timeout", message: `waited ${days} days for its children, longer than their records are kept` }, this.d.clock()), "write");
      return { did: w.applied ? "failed" : "moved", written: 0, retried: 0, recounted: 0, stuck: true };
    }
    // The specs are read for the ids only when children have keys, and for the children to write when some are missing.
    let specs = parent.flow.keyed ? await this.readSpecs(parent) : undefined;
    const children = await this.children(parent, specs);
    const check = checkFlow(parent.flow, children);
    if (check.missing.length) specs ??= await this.readSpecs(parent, [...new Set(check.missing.map(shardOfChild))]);
    const written = check.missing.length ? await this.spawn(parent, specs!, check.missing) : 0;
    await this.retryChildren(parent, check.retry, children);
    const recounted = await this.recount(parent, children, new Set(check.retry));
    const stuck = check.missing.length > 0 || check.retry.length > 0 || recounted > 0 || check.verdict !== "wait";
    const base = { written, retried: check.retry.length, recounted, stuck };
    if (check.verdict !== "wait") return { ...base, did: await this.settle(parent, check.verdict, undefined, check.failed) };
    // A parent that waits for hours keeps its values: one that would expire is copied with this write (core/values.ts).
    const c = this.d.clock();
    const view = needsRefresh(parent, c.now, c.retentionDays) ? ((await this.d.values.load([parent])).jobs[0] as WaitingJob) : parent;
    const w = await this.d.write(life.recheck(view, c), "write");
    return { ...base, did: w.applied ? "rechecked" : "moved" };
  }

  /**
   * Adds to the fan-in the ends its items lack that the children's records show (lost ADDs);
   * answers how many items it changed. It only ever adds: an end the items hold that the records
   * do not (a child that ended after they were read) is left, since removing it would lose it;
   * an end that a retry undid is taken out by the retry itself (`forget`), and any such end the
   * items still hold is checked against its child's record before a resume (`decide`).
   */
  private async recount(parent: WaitingJob, children: (Job | undefined)[], retrying: ReadonlySet<number>): Promise<number> {
    const want = fanInFromChildren(parent.flow, children, retrying);
    const have = await this.readFanIn(parent.flow, parent.id);
    const c = this.d.clock();
    let n = 0;
    for (let k = 0; k < want.length; k++) {
      const lacking = END_SETS.map((set) => [set, [...want[k]![set]].filter((i) => !have[k]?.[set].has(i))] as const).filter(([, ix]) => ix.length);
      if (!lacking.length) continue;
      await this.d.db.send(
        new UpdateCommand({
          TableName: this.d.table,
          Key: { [TABLE.partitionKey]: fanInKey(parent.id, parent.flow.round, k) },
          UpdateExpression: `ADD ${lacking.map(([set]) => `#${set} :${set}`).join(", ")} SET #exp = if_not_exists(#exp, :exp)`,
          ExpressionAttributeNames: { ...Object.fromEntries(lacking.map(([set]) => [`#${set}`, set])), "#exp": TABLE.ttlAttribute },
          ExpressionAttributeValues: { ...Object.fromEntries(lacking.map(([set, ix]) => [`:${set}`, new Set(ix)])), ":exp": this.expiresAt(c) },
        }),
      );
      n++;
    }
    return n;
  }

  // ─── reading a round ──────────────────────────────────────────────────────────────────────

  /** The derived ids of a round's children at `indexes`. */
  async ids(parent: Job & { flow: Flow }, indexes: number[], specs?: (ChildSpec | undefined)[]): Promise<string[]> {
    if (!parent.flow.keyed) return indexes.map((index) => childId(parent.id, parent.flow.round, { index }));
    const known = specs ?? (await this.readSpecs(parent, [...new Set(indexes.map(shardOfChild))]));
    return indexes.map((i) => childId(parent.id, parent.flow.round, { index: i, key: known[i]?.key }));
  }

  /** The round's children's records, by index (undefined where none exists). */
  async children(parent: Job & { flow: Flow }, specs?: (ChildSpec | undefined)[], range?: { from: number; to: number }, consistent = true): Promise<(Job | undefined)[]> {
    const from = range?.from ?? 0;
    const to = Math.min(parent.flow.total, range?.to ?? parent.flow.total);
    const indexes = Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
    const read = await this.childrenAt(parent, indexes, specs, consistent);
    const out: (Job | undefined)[] = new Array(parent.flow.total);
    indexes.forEach((i, n) => (out[i] = read[n]));
    return out;
  }
}

/** A fan-in item as read; absent sets are empty (DynamoDB keeps no empty set). */
function shardOf(item: Record<string, unknown> | undefined): FanInShard {
  const set = (k: EndSet): ReadonlySet<number> => (item?.[k] instanceof Set ? new Set([...(item[k] as Set<unknown>)].map(Number)) : new Set());
  return { s: set("s"), f: set("f"), c: set("c") };
}


export type { FlowCheck };
