/**
 * The chaos run's append-only ledger: one JSON line per observed event, written with a single
 * write(2) on a file opened for append, so lines from many processes never interleave and a line
 * written before a SIGKILL survives it. Job handlers record their side effects here (keyed by
 * job, attempt and process); the fault middleware records every claim and every terminal write
 * DynamoDB accepted, with the fencing token it carried.
 */
import { closeSync, existsSync, openSync, readFileSync, writeSync } from "node:fs";

export type LedgerEntry =
  /** A handler started an attempt, resuming from `resume` (the first step it will do). */
  | { k: "start"; job: string; attempt: number; resume: number; pid: number; at: number }
  /** A handler did one unit of work: the side effect the checks count. */
  | { k: "step"; job: string; attempt: number; step: number; pid: number; at: number }
  /** A handler returned its result (it may still lose the race to commit it). */
  | { k: "done"; job: string; attempt: number; pid: number; at: number }
  /** DynamoDB accepted a claim: the job is running again under `token`. */
  | { k: "claim"; job: string; token: number; pid: number; at: number }
  /** A worker handed the job back (release, or a failed attempt queued for retry): it no longer holds it. */
  | { k: "release"; job: string; pid: number; at: number }
  /** DynamoDB accepted a write that ended the job; `token` is the fence it was conditional on (null: none). */
  | { k: "commit"; job: string; status: string; token: number | null; pid: number; at: number; replyLost: boolean }
  /** The sweeper's process wrote to a job (requeue, reclaim, expire): the job needed the sweeper. */
  | { k: "swept"; job: string; to: string | null; pid: number; at: number }
  /** A heartbeat write (it carries the checkpoint): when it started, how long it took, whether it was accepted. */
  | { k: "beat"; job: string; pid: number; at: number; ms: number; ok: boolean }
  /** A fault the middleware injected. */
  | { k: "fault"; kind: string; command: string; pid: number; at: number }
  /** A sweep that was in progress when this line was written (the parent may kill it mid-sweep). */
  | { k: "sweep"; phase: "begin" | "end"; acted?: number; pid: number; at: number };

export const LEDGER_ENV = "WARDEN_CHAOS_LEDGER";

let fd: number | undefined;
let path: string | undefined;

/** Appends to the ledger named by WARDEN_CHAOS_LEDGER; a no-op outside a chaos run. */
export function record(entry: LedgerEntry): void {
  const p = process.env[LEDGER_ENV];
  if (!p) return;
  if (fd === undefined || path !== p) {
    if (fd !== undefined) closeSync(fd);
    fd = openSync(p, "a");
    path = p;
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
