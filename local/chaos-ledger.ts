/**
 * The chaos run's append-only ledger: one JSON line per observed event, written with a single
 * write(2) on a file opened for append, so lines from many processes never interleave and a line
 * written before a SIGKILL survives it.
 *
 * Two kinds of entries, from two places:
 * - the process side: job handlers record their side effects (start, step, done, a refused
 *   checkpoint), keyed by job, attempt and process; each child process records who it is (`proc`:
 *   its pid, role and worker id) and the sweeper its sweeps;
 * - the store side, written by the chaos parent from the wire-fault proxy's `onApplied`
 *   (local/wire-faults.ts): every write DynamoDB truly applied (HTTP 200), read from the request
 *   and from the item DynamoDB answered with (every store write asks for ALL_NEW), also when the
 *   proxy lost the reply on purpose. This is not what a worker believes it wrote, but what
 *   DynamoDB holds: a lost reply the SDK resent is one applied write, and a write the SDK gave up
 *   on that had landed is still a write.
 *
 * A store-side entry names the worker (the item's workerId) or the fencing token it was written
 * under, not a pid: the checks map both to processes through the `proc` entries. A flow's writes
 * (a parent's wait and resume, its children's creates) also say which kind of process sent them,
 * from the SDK's user agent (each chaos process runs with its own AWS_SDK_UA_APP_ID).
 */
import { closeSync, existsSync, openSync, readFileSync, writeSync } from "node:fs";
import type { AppliedRequest } from "./wire-faults.js";

/** Times are epoch ms. Store-side `at` is the writer's own clock when it decided the write (the item's updatedAt), `appliedAt` when the proxy saw DynamoDB's answer. */
interface Stored {
  job: string;
  /** The item's version after the write: the order DynamoDB applied this job's writes in. */
  version: number;
  at: number;
  appliedAt: number;
  replyLost: boolean;
  /** The item's attempts after the write (absent from entries built by hand): a hold must leave it as it was. */
  attempts?: number;
  /** Resolved by the checks: the process that sent it. */
  pid?: number;
}

/** Which kind of chaos process sent a write, from its user agent's `app/…` (AWS_SDK_UA_APP_ID, set per process by local/chaos.ts). */
export type Sender = "worker" | "sweeper" | "other";
export const UA_APP_IDS = { fargate: "warden-chaos-fargate", lambda: "warden-chaos-lambda", sweeper: "warden-chaos-sweeper" } as const;
export function senderOf(userAgent: string | undefined): Sender {
  // Powertools, loaded by the workers, appends its own tag to the app id (`app/<id>-PT-…`).
  const app = /(?:^|\s)app\/(\S+)/.exec(userAgent ?? "")?.[1] ?? "";
  if (app.startsWith(UA_APP_IDS.sweeper)) return "sweeper";
  if (app.startsWith(UA_APP_IDS.fargate) || app.startsWith(UA_APP_IDS.lambda)) return "worker";
  return "other";
}

/** A child's place in its parent's flow, as its record holds it (core/flow.ts ParentLink). */
export interface ChildLink {
  id: string;
  round: number;
  index: number;
  key?: string;
}

export type LedgerEntry =
  /** A handler started an attempt, resuming from `resume` (the first step it will do). */
  | { k: "start"; job: string; attempt: number; resume: number; pid: number; at: number }
  /** A handler did one unit of work: the side effect the checks count. */
  | { k: "step"; job: string; attempt: number; step: number; pid: number; at: number }
  /** A handler returned its result (it may still lose the race to commit it, or fail to store it). */
  | { k: "done"; job: string; attempt: number; pid: number; at: number }
  /** A handler was refused a checkpoint (TooLargeError) and caught it. */
  | { k: "refused"; job: string; attempt: number; bytes: number; pid: number; at: number }
  /**
   * A chaos.effects handler's fenced write of one step's row to the downstream table, as the SDK
   * answered it: landed, or refused by the fence (a later attempt had written the row). `at` is
   * when the answer came.
   */
  | { k: "effect"; job: string; attempt: number; step: number; token: number; refused: boolean; pid: number; at: number }
  /**
   * A handler's end, however it ended (returned, threw, aborted: `threw`), from a `finally` around
   * every chaos handler (chaos-jobs.ts `tracked`). A process killed under it records none; one
   * frozen under it records it when it is continued.
   */
  | { k: "end"; job: string; attempt: number; threw: boolean; pid: number; at: number }
  /** A chaos child process, as it starts: which worker id its claims carry. */
  | { k: "proc"; role: "fargate" | "lambda" | "sweeper"; worker?: string; pid: number; at: number }
  /** A sweep that was in progress when this line was written (the parent may kill it mid-sweep). */
  | { k: "sweep"; phase: "begin" | "end"; acted?: number; pid: number; at: number }
  /** DynamoDB applied a claim: the job is running under `token`, attempt `attempt`, for `worker`; `resume` is the checkpoint it holds. */
  | (Stored & { k: "claim"; token: number; attempt: number; worker: string; resume: number | null })
  /** DynamoDB applied a heartbeat under `token`; `resume` is the checkpoint the item holds after it. */
  | (Stored & { k: "beat"; token: number; resume: number | null })
  /** A worker's fenced write handed the job back (a release, or a failed attempt queued for retry). */
  | (Stored & { k: "release"; token: number; outcome: string | null; code: string | null; resume: number | null; attempts?: number })
  /**
   * DynamoDB applied a write that ended the job; `token` is the fence it was conditional on (null:
   * none), `held` the token the item carries after it (a worker's end keeps its own).
   */
  | (Stored & { k: "commit"; status: string; token: number | null; held?: number; by: "worker" | "sweeper" | "api" | "flow"; code: string | null })
  /** A repair the sweeper makes (also a claimer settling a job it found expired): requeue, reclaim, expire, cancel; a waiting parent's next look (recheck). */
  | (Stored & { k: "swept"; to: string; transition: "reclaim" | "resend" | "expire" | "cancelSilent" | "recheck" })
  /** A worker's fenced write made the job a waiting parent: round `round`, of `total` children. */
  | (Stored & { k: "wait"; token: number; round: number; total: number })
  /**
   * A waiting parent was queued again because every child of round `round` had ended (the last
   * child's worker, or the sweeper's recount); `conditional`: on the version its sender read.
   */
  | (Stored & { k: "resume"; round: number; by: Sender; conditional: boolean })
  /** A caller's request the API applied: a cancel (marked on a running job, or a queued job cancelled) or a retry. */
  | (Stored & { k: "call"; action: "cancel" | "retry" })
  /**
   * A write that left a queued job held by a gate (core/gates.ts): a claim a pause or a limit
   * refused, or a held job looked at again and still shut; `by` and `key` are its hold's.
   */
  | (Stored & { k: "hold"; by: string; key: string })
  /** A held job made claimable again (a slot handed to it, a pause resumed), its hold removed. */
  | (Stored & { k: "unhold" })
  /** The job was created (version 1); a flow's child with its place in its parent's round, and who wrote it. */
  | (Stored & { k: "create"; parent?: ChildLink; by?: Sender })
  /** An applied write to a job that fits none of the above: the checks report it. */
  | (Stored & { k: "write"; what: string })
  /**
   * A write to a round's fan-in item (core/flows.ts): a child's end ADDed to its set (`end`, with
   * the sets DynamoDB answered after it), one taken out of every set before a retry (`forget`),
   * or the sweeper's recount bringing the item in line with the children's records (`recount`:
   * the whole item written, `sets`, or the indexes it added and removed).
   */
  | {
      k: "fanin";
      parent: string;
      round: number;
      shard: number;
      op: "end" | "forget" | "recount";
      sets?: FanInSets;
      added?: number[];
      removed?: number[];
      by: Sender;
      at: number;
      appliedAt: number;
      replyLost: boolean;
    };

export interface FanInSets {
  s: number[];
  f: number[];
  c: number[];
}

export type StoreEntry = Extract<LedgerEntry, { version: number }>;

export const LEDGER_ENV = "WARDEN_CHAOS_LEDGER";

let fd: number | undefined;
let path: string | undefined;

/** Appends to the ledger named by WARDEN_CHAOS_LEDGER (or `to`); a no-op outside a chaos run. */
export function record(entry: LedgerEntry, to: string | undefined = process.env[LEDGER_ENV]): void {
  if (!to) return;
  if (fd === undefined || path !== to) {
    if (fd !== undefined) closeSync(fd);
    fd = openSync(to, "a");
    path = to;
  }
  writeSync(fd, JSON.stringify(entry) + "\n");
}

export function readLedger(p: string): LedgerEntry[] {
  if (!existsSync(p)) return [];
  return readFileSync(p, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as LedgerEntry];
      } catch {
        return []; // a line cut by a kill mid-write cannot be trusted: it is dropped, not guessed at
      }
    });
}

// ─── the store side: what DynamoDB applied, from the wire ─────────────────────────────────────

type Attr = { S?: string; N?: string; BOOL?: boolean; NULL?: boolean; M?: Record<string, Attr>; L?: Attr[]; SS?: string[]; NS?: string[] };
type AttrMap = Record<string, Attr>;

/** One DynamoDB-typed value as plain JSON (numbers as numbers; binary is not used by Warden). */
export function fromAttr(a: Attr | undefined): unknown {
  if (!a || typeof a !== "object") return undefined;
  if (a.S !== undefined) return a.S;
  if (a.N !== undefined) return Number(a.N);
  if (a.BOOL !== undefined) return a.BOOL;
  if (a.NULL !== undefined) return null;
  if (a.M !== undefined) return Object.fromEntries(Object.entries(a.M).map(([k, v]) => [k, fromAttr(v)]));
  if (a.L !== undefined) return a.L.map(fromAttr);
  if (a.SS !== undefined) return [...a.SS];
  if (a.NS !== undefined) return a.NS.map(Number);
  return undefined;
}

const num = (a: Attr | undefined): number | undefined => (a?.N !== undefined ? Number(a.N) : undefined);
const str = (a: Attr | undefined): string | undefined => a?.S;

/**
 * The step a steps job resumes from, as the record holds it: inline (`checkpoint.next`), or by
 * the key of a value item (core/values.ts) the same run saw put earlier; null without one.
 */
function resumeOf(item: AttrMap, checkpoints: Map<string, number | null>): number | null {
  const inline = num(item.checkpoint?.M?.next);
  if (inline !== undefined) return inline;
  const key = str(item.refs?.M?.checkpoint?.M?.key);
  return key !== undefined ? (checkpoints.get(key) ?? null) : null;
}
/** A checkpoint's value item: `<jobId>#checkpoint#<token>#<nonce>`. */
const CHECKPOINT_VALUE = /^[^#]+#checkpoint#/;
const errorCode = (item: AttrMap): string | null => str(item.error?.M?.code) ?? null;
const lastOutcome = (item: AttrMap): string | null => str(item.history?.L?.at(-1)?.M?.outcome) ?? null;

/** Crockford ULIDs and idempotent ids (core/store.ts isJobId): the worker directory's items are not jobs. */
const JOB_ID = /^([0-9A-HJKMNP-TV-Z]{26}|K[0-9A-F]{25})$/;

interface UpdateRequest {
  Key?: AttrMap;
  Item?: AttrMap;
  UpdateExpression?: string;
  ConditionExpression?: string;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues?: AttrMap;
}

/** The alias of `attr` in the request (core/expr.ts names every attribute through one). */
function alias(r: UpdateRequest, attr: string): string | undefined {
  return Object.entries(r.ExpressionAttributeNames ?? {}).find(([, v]) => v === attr)?.[0];
}

/** True when the update's SET clause assigns `attr`. */
function sets(r: UpdateRequest, attr: string): boolean {
  const a = alias(r, attr);
  const set = /^SET (.*?)(?: REMOVE | ADD |$)/.exec(r.UpdateExpression ?? "")?.[1] ?? "";
  return a !== undefined && set.split(", ").some((clause) => clause.startsWith(`${a} = `));
}

/** True when the update's REMOVE clause removes `attr`. */
function removes(r: UpdateRequest, attr: string): boolean {
  const a = alias(r, attr);
  const removed = /(?:^|\s)REMOVE (.*?)(?= SET | ADD | DELETE |$)/.exec(r.UpdateExpression ?? "")?.[1] ?? "";
  return a !== undefined && removed.split(/,\s*/).includes(a);
}

/** The value an update's SET clause assigns to `attr`, as plain JSON (undefined when it assigns none). */
export function assigned(body: unknown, attr: string): unknown {
  const r = (body ?? {}) as UpdateRequest;
  const a = alias(r, attr);
  const m = a ? new RegExp(`(?:^SET |, )${a} = (:\\w+)`).exec(r.UpdateExpression ?? "") : null;
  return m ? fromAttr(r.ExpressionAttributeValues?.[m[1]!]) : undefined;
}

/** The value the condition compares `attr` with (`#attr = :vN`), if it does. */
function conditionValue(r: UpdateRequest, attr: string): Attr | undefined {
  const a = alias(r, attr);
  const m = a ? new RegExp(`\\(${a} = (:\\w+)\\)`).exec(r.ConditionExpression ?? "") : null;
  return m ? r.ExpressionAttributeValues?.[m[1]!] : undefined;
}

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

/** A round's fan-in item: `<parentId>#fanin#<round>#<shard>` (core/flow.ts fanInKey). */
const FANIN_KEY = /^([0-9A-HJKMNP-TV-Z]{26}|K[0-9A-F]{25})#fanin#(\d+)#(\d+)$/;
const numbers = (a: Attr | undefined): number[] => (a?.NS ?? []).map(Number).sort((x, y) => x - y);

/** The number sets an update's ADD (or DELETE) clause names: how many clauses, which value placeholders, and the indexes in them. */
function clauseValues(r: UpdateRequest, verb: "ADD" | "DELETE"): { clauses: number; values: Set<string>; indexes: Set<number> } {
  const clause = new RegExp(`(?:^|\\s)${verb} (.*?)(?= SET | REMOVE | ADD | DELETE |$)`).exec(r.UpdateExpression ?? "")?.[1] ?? "";
  const parts = clause ? clause.split(/,\s*/).map((p) => p.trim().split(/\s+/)[1] ?? "") : [];
  const values = new Set(parts.filter(Boolean));
  const indexes = new Set<number>();
  for (const v of values) for (const n of r.ExpressionAttributeValues?.[v]?.NS ?? []) indexes.add(Number(n));
  return { clauses: parts.length, values, indexes };
}

/** The parent link a created child's item carries. */
function childLink(item: AttrMap): ChildLink | undefined {
  const p = item.parent?.M;
  const id = str(p?.id);
  if (!p || id === undefined) return undefined;
  const key = str(p.key);
  return { id, round: num(p.round) ?? -1, index: num(p.index) ?? -1, ...(key !== undefined ? { key } : {}) };
}

/**
 * Reads applied writes in the order DynamoDB answered them, remembering checkpoint values: a
 * record names its checkpoint by key, and that value's put was answered before the record write.
 */
export function appliedReader(): (e: AppliedRequest) => LedgerEntry[] {
  const checkpoints = new Map<string, number | null>();
  return (e) => fromApplied(e, checkpoints);
}

/**
 * What one write DynamoDB applied did to a job, as ledger entries (none for a read, a refused
 * write, or an item that is not a job). Classified by the guard core/store-write.ts put on it and
 * by what the item is now: a fenced write is a worker's (heartbeat, hand-back, end); a write
 * decided from a read (conditional on the version) is a claim (it sets claimId), a caller's
 * request through the API, a gate's hold or unhold of a queued job, or one of the sweeper's
 * repairs.
 */
export function fromApplied(e: AppliedRequest, checkpoints: Map<string, number | null> = new Map()): LedgerEntry[] {
  if (e.status !== 200) return [];
  const op = e.target.replace(/^DynamoDB_\d+\./, "");
  if (op !== "UpdateItem" && op !== "PutItem") return [];
  const r = (e.request ?? {}) as UpdateRequest;
  const item: AttrMap | undefined = op === "PutItem" ? r.Item : ((e.response ?? {}) as { Attributes?: AttrMap }).Attributes;
  const job = str(item?.id) ?? str(r.Key?.id);
  if (op === "PutItem" && job && CHECKPOINT_VALUE.test(job)) {
    const next = (JSON.parse(str(item?.json) ?? "{}") as { next?: unknown }).next;
    checkpoints.set(job, typeof next === "number" ? next : null);
    return [];
  }
  const fanIn = job ? FANIN_KEY.exec(job) : null;
  if (fanIn) {
    const where = { k: "fanin" as const, parent: fanIn[1]!, round: Number(fanIn[2]), shard: Number(fanIn[3]), by: senderOf(e.userAgent), at: e.at, appliedAt: e.at, replyLost: e.replyLost };
    const sets = item ? { s: numbers(item.s), f: numbers(item.f), c: numbers(item.c) } : undefined;
    if (op === "PutItem") return [{ ...where, op: "recount", ...(sets ? { sets } : {}) }];
    const added = clauseValues(r, "ADD");
    const removed = clauseValues(r, "DELETE");
    // A child's end asks for the item after it; a retry's forget takes one index out of all three sets.
    if (added.clauses === 1 && !removed.clauses && sets) return [{ ...where, op: "end", sets }];
    if (removed.clauses === 3 && !added.clauses && removed.values.size === 1) return [{ ...where, op: "forget", removed: [...removed.indexes] }];
    return [{ ...where, op: "recount", added: [...added.indexes], removed: [...removed.indexes], ...(sets ? { sets } : {}) }];
  }
  if (!item || !job || !JOB_ID.test(job)) return [];
  const status = str(item.status) ?? "";
  const base = { job, version: num(item.version) ?? 0, at: num(item.updatedAt) ?? e.at, appliedAt: e.at, replyLost: e.replyLost, attempts: num(item.attempts) ?? 0 };
  if (op === "PutItem") {
    const link = childLink(item);
    return [{ ...base, k: "create", ...(link ? { parent: link, by: senderOf(e.userAgent) } : {}) }];
  }

  const token = num(item.token) ?? -1;
  const fence = conditionValue(r, "token");
  const versioned = conditionValue(r, "version") !== undefined || /attribute_not_exists\(#version\)/.test(r.ConditionExpression ?? "");
  const flow = item.flow?.M;
  if (sets(r, "claimId")) {
    return [{ ...base, k: "claim", token, attempt: num(item.attempts) ?? 0, worker: str(item.workerId) ?? "?", resume: resumeOf(item, checkpoints) }];
  }
  // A parent queued again from waiting (a retry of a parent waits again instead; a reclaim sets the token).
  if (flow && status === "queued" && fence === undefined && sets(r, "status") && !sets(r, "token")) {
    return [{ ...base, k: "resume", round: num(flow.round) ?? -1, by: senderOf(e.userAgent), conditional: versioned }];
  }
  if (fence !== undefined && flow && status === "waiting") {
    return [{ ...base, k: "wait", token: num(fence) ?? token, round: num(flow.round) ?? -1, total: num(flow.total) ?? -1 }];
  }
  if (fence !== undefined || !versioned) {
    // A worker's write under its lease; or, in the deliberately broken build, a succeed without
    // one (conditional on nothing but not being its own resend, if on anything).
    const fencedOn = num(fence) ?? null;
    if (fencedOn === null && !TERMINAL.has(status)) return [{ ...base, k: "write", what: `a write conditional on neither a fence nor a version left the job ${status} (${r.ConditionExpression ?? "no condition"})` }];
    if (status === "running") return [{ ...base, k: "beat", token: fencedOn ?? token, resume: resumeOf(item, checkpoints) }];
    if (status === "queued") return [{ ...base, k: "release", token: fencedOn ?? token, outcome: lastOutcome(item), code: errorCode(item), resume: resumeOf(item, checkpoints), attempts: num(item.attempts) ?? 0 }];
    if (TERMINAL.has(status)) return [{ ...base, k: "commit", status, token: fencedOn, held: token, by: "worker", code: errorCode(item) }];
    return [{ ...base, k: "write", what: `a ${fencedOn === null ? "write conditional on neither a fence nor a version" : "fenced write"} left the job ${status} (${r.ConditionExpression ?? "no condition"})` }];
  }
  if (sets(r, "cancelRequested")) return [{ ...base, k: "call", action: "cancel" }];
  if (status === "waiting") {
    // A parent retried waits on its last round again; the sweeper's look at one whose children still run pushes its deadline.
    if (sets(r, "status")) return [{ ...base, k: "call", action: "retry" }];
    return [{ ...base, k: "swept", to: status, transition: "recheck" }];
  }
  if (status === "failed" && flow && errorCode(item) === "child_failed") {
    // A child failed under failFast (its worker, or the sweeper's recount): the parent fails with it.
    return [{ ...base, k: "commit", status, token: null, by: "flow", code: errorCode(item) }];
  }
  // The gates' writes (core/lifecycle.ts hold, unhold): the job stays queued, its attempts untouched.
  if (status === "queued" && !sets(r, "status") && !sets(r, "token")) {
    const hold = item.hold?.M;
    if (hold) return [{ ...base, k: "hold", by: str(hold.by) ?? "?", key: str(hold.key) ?? "?" }];
    if (removes(r, "hold")) return [{ ...base, k: "unhold" }];
  }
  if (status === "queued") {
    if (sets(r, "token")) return [{ ...base, k: "swept", to: status, transition: "reclaim" }];
    if (sets(r, "status")) return [{ ...base, k: "call", action: "retry" }];
    return [{ ...base, k: "swept", to: status, transition: "resend" }];
  }
  if (status === "failed") {
    return [
      { ...base, k: "swept", to: status, transition: "expire" },
      { ...base, k: "commit", status, token: null, by: "sweeper", code: errorCode(item) },
    ];
  }
  if (status === "cancelled") {
    if (sets(r, "token")) {
      return [
        { ...base, k: "swept", to: status, transition: "cancelSilent" },
        { ...base, k: "commit", status, token: null, by: "sweeper", code: errorCode(item) },
      ];
    }
    return [
      { ...base, k: "call", action: "cancel" },
      { ...base, k: "commit", status, token: null, by: "api", code: errorCode(item) },
    ];
  }
  return [{ ...base, k: "write", what: `a versioned write left the job ${status}` }];
}
