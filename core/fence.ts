/**
 * Exactly-once effects beyond Warden's own table (docs/effects.md): the fence a handler carries
 * into the writes it makes elsewhere, and the stable keys of its logical steps.
 *
 * - `Fence`: the job and the fencing token of the attempt that runs it. The token is bumped by
 *   every claim and every sweeper action on a running job (core/job.ts), so an attempt that lost
 *   its lease (frozen past it, cut off by a partition) holds a token lower than the one now
 *   running the job.
 * - `fencedUpdate` / `fencedPut`: a DynamoDB write to the team's own table, made conditional on
 *   the token: the row keeps the highest token that wrote it, and a write under a lower one is
 *   refused (`attribute_not_exists(#fence) OR #fence <= :token`: the same attempt may write again,
 *   as the SDK's resend after a lost reply does). `isFencedOut` tells that refusal from others.
 * - `effectKey`: the same key for the same logical step across every attempt of the job, for an
 *   external API's idempotency key, or as the key of the row a step writes.
 *
 * Nothing here does I/O: the caller sends the command, with its own client.
 */
import { ValidationError } from "./errors.js";

export interface Fence {
  jobId: string;
  /** The attempt's fencing token: monotonic per job. */
  token: number;
}

/** The attribute a fenced row keeps its highest token in, unless the caller names another. */
export const FENCE_ATTRIBUTE = "wardenFence";

const STEP_RE = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$/;

/** A logical step's key, the same in every attempt of the job: `<jobId>:<step>`. */
export function effectKey(jobId: string, step: string): string {
  if (!STEP_RE.test(step)) throw new ValidationError(`an effect's step is 1 to 200 letters, digits and . _ : / - (for example "charge" or "row/42"), not ${JSON.stringify(step.slice(0, 60))}`);
  return `${jobId}:${step}`;
}

interface ExpressionParts {
  ConditionExpression?: string;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues?: Record<string, unknown>;
}

export interface UpdateParts extends ExpressionParts {
  UpdateExpression: string;
}

const NAME = "#wardenFence";
const VALUE = ":wardenFence";

function guard<P extends ExpressionParts>(p: P, fence: Fence, attribute: string): P {
  if (!Number.isInteger(fence.token) || fence.token < 0) throw new ValidationError(`a fence's token is a whole number, not ${String(fence.token)}`);
  if (p.ExpressionAttributeNames?.[NAME] !== undefined || p.ExpressionAttributeValues?.[VALUE] !== undefined) {
    throw new ValidationError(`${NAME} and ${VALUE} are the fence's own placeholders: name yours otherwise`);
  }
  const own = `(attribute_not_exists(${NAME}) OR ${NAME} <= ${VALUE})`;
  return {
    ...p,
    ConditionExpression: p.ConditionExpression ? `(${p.ConditionExpression}) AND ${own}` : own,
    ExpressionAttributeNames: { ...p.ExpressionAttributeNames, [NAME]: attribute },
    ExpressionAttributeValues: { ...p.ExpressionAttributeValues, [VALUE]: fence.token },
  };
}

/**
 * An UpdateItem's expression parts, fenced: the row's token is set to this attempt's, and the
 * write is refused when the row holds a higher one. Spread the answer into the command:
 * `new UpdateCommand({ TableName, Key, ...fencedUpdate(ctx.fence, { UpdateExpression: "SET #n = :n", … }) })`.
 */
export function fencedUpdate(fence: Fence, p: UpdateParts, o: { attribute?: string } = {}): UpdateParts {
  const set = `${NAME} = ${VALUE}`;
  // The fence joins the expression's SET clause (one clause per action is all DynamoDB allows):
  // the keyword at the start or after a space, never inside a placeholder such as #set or :set.
  const clause = /(^|\s)SET(?=[\s#])\s*/i;
  const UpdateExpression = clause.test(p.UpdateExpression) ? p.UpdateExpression.replace(clause, (_m, before: string) => `${before}SET ${set}, `) : `SET ${set} ${p.UpdateExpression}`;
  return guard({ ...p, UpdateExpression }, fence, o.attribute ?? FENCE_ATTRIBUTE);
}

/** A PutItem's item and expression parts, fenced: the item carries this attempt's token, and replaces a row only if that row's is not higher. */
export function fencedPut<I extends Record<string, unknown>>(fence: Fence, item: I, p: ExpressionParts = {}, o: { attribute?: string } = {}): ExpressionParts & { Item: I & Record<string, number> } {
  const attribute = o.attribute ?? FENCE_ATTRIBUTE;
  return { Item: { ...item, [attribute]: fence.token }, ...guard(p, fence, attribute) };
}

/**
 * What a handler throws when a fenced write of its was refused (`isFencedOut`): a later attempt
 * holds the job, so this one stops. It carries the fence it wrote under and the refusal. The
 * runner settles the attempt as usual, which that later attempt's token refuses, so nothing of
 * this attempt lands; it only tells the log line apart from a handler's own failure.
 */
export class FencedOutError extends Error {
  override readonly name = "FencedOutError";
  constructor(
    readonly fence: Fence,
    readonly refusal?: unknown,
  ) {
    super(`a fenced write of job ${fence.jobId} under token ${fence.token} was refused: a later attempt holds the job`);
  }
}

/**
 * True for the refusal a fenced write gets when a later attempt has written the row (or when the
 * caller's own condition failed: fence the row, and keep other conditions apart, to tell them
 * apart), alone or inside a transaction (a cancellation whose reasons include a failed
 * condition). A handler that sees it has lost its job to another attempt: it should stop.
 */
export function isFencedOut(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  if (e.name === "ConditionalCheckFailedException") return true;
  const reasons = (e as { CancellationReasons?: { Code?: string }[] }).CancellationReasons;
  return e.name === "TransactionCanceledException" && !!reasons?.some((r) => r.Code === "ConditionalCheckFailed");
}
