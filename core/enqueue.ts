/**
 * Enqueue inside the caller's own DynamoDB transaction (docs/effects.md, "Enqueue inside your
 * transaction"): a job and the application's own writes commit together, or neither does.
 *
 * Inputs: a submit's body, checked as `POST /jobs` checks it (the same fields, limits and
 * messages; an `idempotencyKey` is required, children and chains are not allowed), and the
 * owner the job is recorded under (the caller's id, as the API would record it).
 * Outputs: the job's view and the entries to add to the caller's `TransactWriteItems` (the job's
 * record, and before it its input's value item when the input is too large for the record), each
 * a Put conditional on its key being new; and `ring`, to call once the transaction committed.
 *
 * Nothing here writes but `ring`. A job whose ring never came (the process died after its
 * commit) is queued with a start deadline, and the sweeper rings it then, as it does for any
 * queued job whose doorbell was lost.
 */
import { JobsApi } from "./api/jobs.js";
import { parseRequest, submitRequest } from "./api/requests.js";
import type { ApiJob } from "./api/view.js";
import type { Services } from "./services.js";
import type { TransactPut } from "./store-write.js";

export type { TransactPut } from "./store-write.js";

export class Enqueue {
  private readonly api: JobsApi;

  constructor(
    services: Services,
    private readonly owner: string,
  ) {
    this.api = new JobsApi(services);
  }

  /** The job `request` asks for, as entries of a transaction; an ApiError (invalid_request) if `POST /jobs` would answer 400. */
  entries(request: unknown): { job: ApiJob; entries: TransactPut[] } {
    return this.api.transactEntries(this.caller, parseRequest(submitRequest, request, "the job submission"));
  }

  /** Rings the job's doorbell; false when the transaction did not commit (no such job) or the job is no longer queued. */
  ring(jobId: string): Promise<boolean> {
    return this.api.ringCommitted(this.caller, jobId);
  }

  private get caller() {
    return { id: this.owner, admin: false };
  }
}
