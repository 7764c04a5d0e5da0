/**
 * Typed errors the domain raises. The API maps them to HTTP answers; workers map them to outcomes.
 */

/** Input that can never succeed as given: a person must change it. Nothing was written. */
export class ValidationError extends Error {
  override readonly name = "ValidationError";
  constructor(
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** Input larger than Warden stores. Nothing was written. */
export class TooLargeError extends Error {
  override readonly name = "TooLargeError";
  constructor(
    message: string,
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(message);
  }
}

/** A transition the job's current state does not allow (cancel a finished job, retry a running one). */
export class ConflictError extends Error {
  override readonly name = "ConflictError";
  constructor(
    message: string,
    readonly status?: string,
  ) {
    super(message);
  }
}

export class NotFoundError extends Error {
  override readonly name = "NotFoundError";
  constructor(readonly jobId: string) {
    super(`job ${jobId} not found`);
  }
}

/**
 * A worker's write refused because its fencing token no longer matches: another worker or the
 * sweeper owns the job now. The worker must stop and write nothing more.
 */
export class LeaseLostError extends Error {
  override readonly name = "LeaseLostError";
  constructor(
    readonly jobId: string,
    readonly reason: string,
    /** The job as the refused write found it, when it was read. */
    readonly found?: unknown,
  ) {
    super(`lease lost on job ${jobId}: ${reason}`);
  }
}

/**
 * DynamoDB refused a write for good (a ValidationException: an item over 400 KB, a value it
 * cannot hold) or the value could not be marshalled. Retrying the write, or re-running the work
 * that produced it, cannot help: the job must end with this reason.
 */
export class StoreRejectedError extends Error {
  override readonly name = "StoreRejectedError";
}

/**
 * Thrown by a handler for an error that retrying cannot fix (bad input, a policy refusal). The
 * job fails at once instead of spending its attempts.
 */
export class PermanentError extends Error {
  override readonly name = "PermanentError";
}

export const errorMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e));
