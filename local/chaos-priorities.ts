/**
 * The chaos run's priorities check (section 11; docs/jobs.md "Priorities").
 *
 * Inputs: every doorbell SQS accepted, as the SQS wire proxy saw it (`ringsOf`: the lane the
 * request's queue URL names and the lane its body names, for each job id it carries), the
 * priority each job was submitted with, and every job's record after the drain.
 * Outputs: violations, when a job's priority changed on its way (a retry, a reclaim, a hold, a
 * redrive) or a doorbell rang on a lane other than its job's; and the figures of the rows.
 *
 * Which job starts first is not checked here: under kills and lost doorbells a high job may
 * rightly start after normal ones (its doorbell was lost and the sweeper resent it). The order
 * itself is test/priorities.test.ts's, on a quiet system; what chaos can break, and this checks,
 * is that every one of the many paths that ring a job keeps it on its lane.
 */
import { PRIORITIES, QUEUE_NAMES, type Lane, type Priority } from "../core/config.js";
import type { Job } from "../core/job.js";
import { decodeMessage } from "../core/queue.js";
import { laneUrl, type QueueUrls } from "../core/runtime.js";
import type { QueueName } from "../core/config.js";
import type { AppliedRequest } from "./wire-faults.js";

/** One job's doorbell as SQS accepted it. `url`: the lane its queue URL is (undefined: no lane of Warden's). */
export interface Ring {
  job: string;
  url: Lane | undefined;
  body: Lane;
  at: number;
}

/** A lane's SQS queue name (the URL's last segment) → the lane, for every queue's lanes. */
export function lanesByName(queues: Record<QueueName, QueueUrls>): Map<string, Lane> {
  const out = new Map<string, Lane>();
  for (const queue of QUEUE_NAMES) for (const priority of PRIORITIES) out.set(nameOf(laneUrl(queues, { queue, priority })), { queue, priority });
  return out;
}

const nameOf = (url: string): string => url.replace(/\/+$/, "").split("/").at(-1) ?? url;

/** The doorbells one request SQS answered carried (none for anything but an accepted SendMessage or SendMessageBatch). */
export function ringsOf(e: AppliedRequest, lanes: Map<string, Lane>): Ring[] {
  if (e.status !== 200) return [];
  const op = e.target.replace(/^AmazonSQS\./, "");
  if (op !== "SendMessage" && op !== "SendMessageBatch") return [];
  const r = (e.request ?? {}) as { QueueUrl?: string; MessageBody?: string; Entries?: { MessageBody?: string }[] };
  const url = r.QueueUrl ? lanes.get(nameOf(r.QueueUrl)) : undefined;
  const bodies = op === "SendMessage" ? [r.MessageBody] : (r.Entries ?? []).map((x) => x.MessageBody);
  return bodies.flatMap((b) => {
    const m = decodeMessage(b);
    return m ? [{ job: m.jobId, url, body: { queue: m.queue, priority: m.priority }, at: e.at }] : [];
  });
}

export interface PriorityFacts {
  /** What each submitted job asked for (normal when absent). */
  submitted: readonly { id: string; priority?: Priority }[];
  rings: readonly Ring[];
}

export interface PriorityFigures {
  submitted: Record<Priority, number>;
  /** Submitted jobs whose record's priority is not the one they were submitted with. */
  changed: number;
  rings: Record<Priority, number>;
  /** Doorbells whose URL is not the lane their body names, or whose lane is not their job's. */
  offLane: number;
}

const byPriority = (): Record<Priority, number> => ({ high: 0, normal: 0, low: 0 });
const priorityOf = (job: Pick<Job, "priority"> | undefined): Priority => job?.priority ?? "normal";
const same = (a: Lane | undefined, b: Lane): boolean => a?.queue === b.queue && a.priority === b.priority;

export function checkPriorities(f: PriorityFacts, jobs: Map<string, Job | undefined>, violations: string[]): PriorityFigures {
  const out: PriorityFigures = { submitted: byPriority(), changed: 0, rings: byPriority(), offLane: 0 };
  for (const s of f.submitted) {
    const asked = s.priority ?? "normal";
    out.submitted[asked]++;
    const job = jobs.get(s.id);
    if (!job || priorityOf(job) === asked) continue;
    out.changed++;
    violations.push(`${s.id} was submitted ${asked} but its record says ${priorityOf(job)}: its priority changed on its way`);
  }
  const off: string[] = [];
  for (const r of f.rings) {
    out.rings[r.body.priority]++;
    const job = jobs.get(r.job);
    const lane: Lane | undefined = job ? { queue: job.queue, priority: priorityOf(job) } : undefined;
    if (same(r.url, r.body) && (!lane || same(lane, r.body))) continue;
    out.offLane++;
    if (off.length < 5) off.push(`${r.job} (${lane ? `${lane.queue}/${lane.priority}` : "unknown job"}) rang on ${r.url ? `${r.url.queue}/${r.url.priority}` : "no lane of Warden's"} with a body naming ${r.body.queue}/${r.body.priority}`);
  }
  if (out.offLane) violations.push(`${out.offLane} doorbells rang off their job's lane, e.g. ${off.join("; ")}`);
  return out;
}

export function priorityRows(x: PriorityFigures): { check: string; value: string; ok: boolean | null }[] {
  return [
    {
      check: "priorities: every job kept the priority it was submitted with",
      value: `${x.submitted.high} high, ${x.submitted.normal} normal, ${x.submitted.low} low submitted; ${x.changed} changed`,
      ok: x.changed === 0 && x.submitted.high > 0 && x.submitted.low > 0,
    },
    {
      check: "priorities: every doorbell on its job's lane",
      value: `${x.rings.high} rung on high lanes, ${x.rings.normal} on normal, ${x.rings.low} on low (submits, retries, resends, wakes, re-rings); ${x.offLane} off their lane`,
      ok: x.offLane === 0 && x.rings.high > 0 && x.rings.low > 0,
    },
  ];
}
