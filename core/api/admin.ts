/**
 * The admin routes' work, free of HTTP: what the sweeper would act on, a sweep on demand, the
 * dead letters, the queues, the workers, and cancel or retry in bulk. The sweeper's modules load
 * on first use: the admin routes are rare, and every other request's cold start stays small.
 */
import { QUEUE_NAMES, type QueueName } from "../config.js";
import type { Services } from "../services.js";
import type { ApiLog } from "./jobs.js";
import { silentLog } from "./jobs.js";
import { requireAdmin, type Caller } from "./identity.js";
import type { BulkRequest, BulkAnswer } from "./bulk.js";
import { toApiWorker, type ApiWorker } from "./view.js";

export interface ApiQueue {
  queue: QueueName;
  visible: number;
  inFlight: number;
  delayed: number;
  dlq: { visible: number; inFlight: number; delayed: number };
  /** How long the queue's oldest claimable job has waited without a claim (the table's word, not SQS's); 0 when none waits. */
  oldestWaitSeconds: number;
}

export class AdminApi {
  constructor(
    private readonly s: Services,
    private readonly log: ApiLog = silentLog,
  ) {}

  async stuck(caller: Caller) {
    requireAdmin(caller);
    const { stuckReport } = await import("../stuck.js");
    return stuckReport(this.s);
  }

  async sweep(caller: Caller) {
    requireAdmin(caller);
    const { Sweeper } = await import("../sweeper.js");
    const report = await new Sweeper(this.s).sweep();
    this.log.info("sweep run on request", { caller: caller.id });
    return { report };
  }

  async deadLetters(caller: Caller) {
    requireAdmin(caller);
    const { DeadLetters } = await import("../deadletters.js");
    return new DeadLetters(this.s.queue).peek();
  }

  async redrive(caller: Caller, queue: QueueName): Promise<{ moved: number }> {
    requireAdmin(caller);
    const { DeadLetters } = await import("../deadletters.js");
    const moved = await new DeadLetters(this.s.queue).redrive(queue);
    this.log.info("dead letters redriven", { caller: caller.id, queue, moved });
    return { moved };
  }

  async queues(caller: Caller): Promise<{ queues: ApiQueue[] }> {
    requireAdmin(caller);
    const now = this.s.now();
    const { oldestWaiting, waitSeconds } = await import("../waiting.js");
    const [waiting, depths] = await Promise.all([
      oldestWaiting(this.s.doc, this.s.cfg.tableName, now, { perShard: 1 }),
      Promise.all(QUEUE_NAMES.map((q) => Promise.all([this.s.queue.depth(q), this.s.queue.depth(q, { dlq: true })]))),
    ]);
    const queues = QUEUE_NAMES.map((queue, i) => {
      const [main, dlq] = depths[i]!;
      const oldest = waiting[queue][0];
      return { queue, ...main, dlq, oldestWaitSeconds: oldest ? waitSeconds(oldest.waitedMs) : 0 };
    });
    return { queues };
  }

  /**
   * The workers seen recently, each listing only the jobs whose records still name it: a frozen
   * worker's last report keeps jobs the sweeper has since given to another worker, and presence
   * must not say it holds them.
   */
  async workers(caller: Caller): Promise<{ workers: ApiWorker[] }> {
    requireAdmin(caller);
    const now = this.s.now();
    const listed = await this.s.workers.list();
    const ids = [...new Set(listed.flatMap((w) => w.jobs))];
    const records = ids.length ? await this.s.store.recordsOf(ids) : [];
    const holder = new Map(records.flatMap((j) => (j.status === "running" ? [[j.id, j.workerId] as const] : [])));
    return {
      workers: listed.map((w) => toApiWorker({ ...w, jobs: w.jobs.filter((id) => holder.get(id) === w.id) }, now, this.s.workers.reportEveryMs)),
    };
  }

  async bulk(caller: Caller, action: "cancel" | "retry", req: BulkRequest): Promise<BulkAnswer> {
    requireAdmin(caller);
    const { bulkAct } = await import("./bulk.js");
    const out = await bulkAct(this.s, caller, action, req);
    this.log.info(`bulk ${action}${req.dryRun ? " (dry run)" : ""}`, { caller: caller.id, type: req.type, queue: req.queue, matched: out.matched, acted: out.acted });
    return out;
  }
}
