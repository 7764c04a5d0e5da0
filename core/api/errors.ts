/**
 * The contract's errors (`docs/contract.md`, "Errors"): a code from a fixed list, a message that
 * says how to fix the request, optional details. Domain errors map onto these codes here; the
 * HTTP entry point only turns a code into a status.
 */
import { ConflictError, NotFoundError, TooLargeError, ValidationError } from "../errors.js";

export const API_ERROR_CODES = [
  "invalid_request",
  "unauthorized",
  "forbidden",
  "not_found",
  "conflict",
  "payload_too_large",
  "unsupported_media_type",
  "rate_limited",
  "internal",
] as const;
export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

export interface ApiErrorBody {
  error: { code: ApiErrorCode; message: string; details?: unknown };
}

export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }

  body(): ApiErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.details !== undefined ? { details: this.details } : {}) } };
  }
}

/** Another caller's job and an unknown id must read the same, so both use this one message. */
export const jobNotFound = (id: string): ApiError =>
  new ApiError("not_found", `no job with id ${JSON.stringify(id.slice(0, 64))} for this caller; check the id (GET /jobs lists yours)`);

/**
 * Maps a thrown value to the contract's error, or undefined when it is not one a caller caused:
 * the entry point answers those with a bare `internal` error and logs them.
 */
export function toApiError(e: unknown): ApiError | undefined {
  if (e instanceof ApiError) return e;
  if (e instanceof ValidationError) return new ApiError("invalid_request", e.message, e.details);
  if (e instanceof TooLargeError) return new ApiError("payload_too_large", e.message, { bytes: e.bytes, limit: e.limit });
  if (e instanceof ConflictError) return new ApiError("conflict", e.message, e.status ? { status: e.status } : undefined);
  if (e instanceof NotFoundError) return jobNotFound(e.jobId);
  return undefined;
}
