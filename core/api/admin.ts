/**
 * The admin routes' work, free of HTTP: what the sweeper would act on, a sweep on demand, the
 * dead letters and the workers. The sweeper's modules load on first use: the admin routes are
 * rare, and every other request's cold start stays small.
 */
import type { QueueName } from "../config.js";
import type { Services } from "../services.js";
import type { ApiLog } from "./jobs.js";
import { silentLog } from "./jobs.js";
import { requireAdmin, type Caller } from "./identity.js";
import { toApiWorker, type ApiWorker } from "./view.js";

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

  async workers(caller: Caller): Promise<{ workers: ApiWorker[] }> {
    requireAdmin(caller);
    return { workers: (await this.s.workers.list()).map(toApiWorker) };
  }
}
