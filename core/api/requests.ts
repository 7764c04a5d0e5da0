/**
 * The shapes of the API's requests, validated at the edge with zod before anything is written.
 * Objects are strict: an unknown field is a mistake a caller should hear about (a misspelt
 * `maxAtempts` silently ignored would be worse than a 400).
 */
import { z } from "zod";
import { LIMITS, PRIORITIES, QUEUE_NAMES, type QueueName } from "../config.js";
import { STATUSES } from "../job.js";
import { FLOW_POLICIES, MAX_CHAIN_STEPS, MAX_CHILDREN } from "../flow.js";
import { checkConcurrencyKey, GATE_LIMITS } from "../gates.js";
import { CATCH_UP_POLICIES, checkCadence, OVERLAP_POLICIES, SCHEDULE_KEY_PREFIX, SCHEDULE_LIMITS } from "../schedule.js";
import { ApiError } from "./errors.js";

export const MAX_TYPE_CHARS = 100;
/** A runAt further out than this is almost certainly a unit mistake (seconds for milliseconds). */
export const MAX_RUN_AT_DAYS = 365;
const MAX_CURSOR_CHARS = 300;
/** Owners are JWT subjects or IAM ARNs; nothing longer is a real one. */
const MAX_OWNER_CHARS = 2048;
export const MAX_LOG_LINES = 1000;
const queueName = z.enum(QUEUE_NAMES as [QueueName, ...QueueName[]]);

const jobTypeName = z
  .string()
  .min(1)
  .max(MAX_TYPE_CHARS)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, "a job type is letters, digits and . _ : - (for example demo.sleep)");

/** A job's concurrency key (core/gates.ts): what its limits count it under. */
const concurrencyKey = z.string().superRefine((k, ctx) => {
  const bad = checkConcurrencyKey(k);
  if (bad) ctx.addIssue({ code: "custom", message: bad });
});

/** A child or a chain's step as a submit gives it; its type and input are checked against the registry after (core/child-specs.ts). */
const childRequest = z.strictObject({
  type: jobTypeName,
  input: z.unknown().optional(),
  key: z
    .string()
    .min(1)
    .max(LIMITS.maxIdempotencyKeyChars)
    .regex(/^[^\u0000-\u001f\u007f]+$/, "the key may not contain control characters")
    .optional(),
  /** Counts the child (or step) under this key's limits, beside its type's: a fan-out's calls to one host, one at a time. */
  concurrencyKey: concurrencyKey.optional(),
});

/** Which lane of its queue a job rings on: which waiting job starts first (docs/jobs.md "Priorities"). */
const priority = z.enum(PRIORITIES, { error: `priority is one of ${PRIORITIES.join(", ")}` });

export const submitRequest = z.strictObject({
  type: jobTypeName,
  input: z.unknown().optional(),
  queue: z.enum(QUEUE_NAMES as [QueueName, ...QueueName[]]).optional(),
  maxAttempts: z.number().int().min(1).max(LIMITS.maxAttempts).optional(),
  timeoutSeconds: z.number().int().min(1).max(LIMITS.maxTimeoutSeconds).optional(),
  runAt: z.iso.datetime({ offset: true }).optional(),
  idempotencyKey: z
    .string()
    .min(1)
    .max(LIMITS.maxIdempotencyKeyChars)
    .regex(/^[^\u0000-\u001f\u007f]+$/, "the key may not contain control characters")
    // A schedule's ticks key their jobs `schedule:<id>:<tick>` (core/schedule.ts): a submit may not take one.
    .refine((k) => !k.startsWith(SCHEDULE_KEY_PREFIX), { message: `keys starting with ${SCHEDULE_KEY_PREFIX} are a schedule's` })
    .optional(),
  /** Counts the job under this key's concurrency and rate limits, beside its type's (docs/jobs.md "Controls"). */
  concurrencyKey: concurrencyKey.optional(),
  /** Which of its queue's waiting jobs starts first; its children and chain steps take it too. */
  priority: priority.optional(),
  /** Fan-out: the job runs after these have all ended, as the combining step (docs/jobs.md "Flows"). */
  children: z.array(childRequest).min(1).max(MAX_CHILDREN, `a job may have at most ${MAX_CHILDREN} children`).optional(),
  policy: z.enum(FLOW_POLICIES).optional(),
  /** A chain: these steps run first, in order, each taking the result of the one before; the job takes the last one's. */
  after: z.array(childRequest).min(1).max(MAX_CHAIN_STEPS, `a chain may have at most ${MAX_CHAIN_STEPS} steps`).optional(),
})
  .refine((r) => !(r.children && r.after), { message: "a job has either children or an after chain, not both", path: ["after"] })
  .refine((r) => r.policy === undefined || r.children !== undefined, { message: "policy applies to children only", path: ["policy"] })
  .refine((r) => !(r.after && r.input !== undefined), { message: "a chain's job takes the result of its last step as its input; give the input to after[0]", path: ["input"] })
  .refine((r) => !(r.runAt && (r.after || r.children)), { message: "runAt cannot be combined with children or after", path: ["runAt"] });
export type SubmitRequest = z.infer<typeof submitRequest>;

/** Query values arrive as strings; `limit` must be a plain whole number. */
const pageLimit = z
  .string()
  .regex(/^[0-9]{1,3}$/, `limit is a whole number from 1 to ${LIMITS.listMax}`)
  .transform(Number)
  .pipe(z.number().int().min(1).max(LIMITS.listMax))
  .optional();

export const listQuery = z.strictObject({
  status: z.enum(STATUSES).optional(),
  type: jobTypeName.optional(),
  limit: pageLimit,
  cursor: z.string().min(1).max(MAX_CURSOR_CHARS).optional(),
  queue: queueName.optional(),
  /** The admin's search by caller; a caller may name only itself. */
  owner: z.string().min(1).max(MAX_OWNER_CHARS).optional(),
  createdAfter: z.iso.datetime({ offset: true }).optional(),
  createdBefore: z.iso.datetime({ offset: true }).optional(),
  /** One job by id: the answer holds it when the caller may read it (and it matches the other filters). */
  id: z.string().min(1).max(64).optional(),
});
export type ListQuery = z.infer<typeof listQuery>;

/** GET /jobs/{id}/children: a page of the last round, by index, optionally of one status. */
export const childrenQuery = z.strictObject({
  status: z.enum(STATUSES).optional(),
  limit: pageLimit,
  cursor: z.string().regex(/^[0-9]{1,5}$/, "cursor is the nextCursor of the page before").optional(),
});

export type ChildrenQuery = z.infer<typeof childrenQuery>;

export const logsQuery = z.strictObject({
  limit: z
    .string()
    .regex(/^[0-9]{1,4}$/, `limit is a whole number from 1 to ${MAX_LOG_LINES}`)
    .transform(Number)
    .pipe(z.number().int().min(1).max(MAX_LOG_LINES))
    .optional(),
});

/** The bulk routes' body: which jobs (a type and/or a queue, a status), and whether only to count them. */
export const bulkRequest = z.strictObject({
  type: jobTypeName.optional(),
  queue: queueName.optional(),
  status: z.enum(STATUSES).optional(),
  dryRun: z.boolean().optional(),
  cursor: z.string().min(1).max(MAX_CURSOR_CHARS).optional(),
});

/** A schedule's id: it names the schedule in its routes and its jobs' idempotency keys. */
export const scheduleId = z
  .string()
  .min(1)
  .max(SCHEDULE_LIMITS.idChars)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "a schedule id is letters, digits and . _ - (for example nightly-report)");

/** PUT /schedules/{id}: what a schedule fires and when (docs/jobs.md "Schedules"); POST /schedules adds its `id`. */
const scheduleFields = {
  type: jobTypeName,
  input: z.unknown().optional(),
  queue: queueName.optional(),
  maxAttempts: z.number().int().min(1).max(LIMITS.maxAttempts).optional(),
  timeoutSeconds: z.number().int().min(1).max(LIMITS.maxTimeoutSeconds).optional(),
  concurrencyKey: concurrencyKey.optional(),
  priority: priority.optional(),
  cron: z.string().min(1).max(200).optional(),
  timeZone: z.string().min(1).max(100).optional(),
  everySeconds: z
    .number()
    .int("everySeconds is a whole number")
    .min(SCHEDULE_LIMITS.minEveryMs / 1000, `everySeconds must be at least ${SCHEDULE_LIMITS.minEveryMs / 1000}`)
    .max(SCHEDULE_LIMITS.maxEveryMs / 1000, `everySeconds may be at most ${SCHEDULE_LIMITS.maxEveryMs / 1000} (a year)`)
    .optional(),
  overlap: z.enum(OVERLAP_POLICIES).optional(),
  catchUp: z.enum(CATCH_UP_POLICIES).optional(),
  catchUpMax: z.number().int().min(1).max(SCHEDULE_LIMITS.maxCatchUpMax).optional(),
  paused: z.boolean().optional(),
};

const cadenceRules = <T extends { cron?: string | undefined; timeZone?: string | undefined; everySeconds?: number | undefined }>(schema: z.ZodType<T>) =>
  schema
    .refine((r) => (r.cron === undefined) !== (r.everySeconds === undefined), { message: "a schedule has either cron or everySeconds", path: ["cron"] })
    .refine((r) => r.timeZone === undefined || r.cron !== undefined, { message: "timeZone goes with cron", path: ["timeZone"] })
    .superRefine((r, ctx) => {
      // A fixed rate's range is everySeconds' own rule above; a cron's fields and zone are checked here.
      if (r.cron === undefined) return;
      const bad = checkCadence({ cron: r.cron, timeZone: r.timeZone ?? "UTC" });
      if (bad) ctx.addIssue({ code: "custom", message: bad, path: [bad.startsWith("unknown time zone") ? "timeZone" : "cron"] });
    });

export const scheduleUpdate = cadenceRules(z.strictObject(scheduleFields));
export const scheduleCreate = cadenceRules(z.strictObject({ id: scheduleId, ...scheduleFields }));
export type ScheduleUpdate = z.infer<typeof scheduleUpdate>;

/** PUT /admin/limits/{key}: a concurrency limit, a rate limit, or both (docs/jobs.md "Controls"). */
export const limitRequest = z
  .strictObject({
    concurrency: z
      .number()
      .int("concurrency is a whole number")
      .min(1, "concurrency must be at least 1 (pause the type or key to stop it)")
      .max(GATE_LIMITS.maxConcurrency, `concurrency may be at most ${GATE_LIMITS.maxConcurrency}`)
      .optional(),
    rate: z
      .strictObject({
        starts: z.number().int("rate.starts is a whole number").min(1, "rate.starts must be at least 1").max(GATE_LIMITS.maxRateStarts, `rate.starts may be at most ${GATE_LIMITS.maxRateStarts}`),
        perSeconds: z
          .number()
          .min(GATE_LIMITS.minRatePerMs / 1000, `rate.perSeconds must be at least ${GATE_LIMITS.minRatePerMs / 1000}`)
          .max(GATE_LIMITS.maxRatePerMs / 1000, `rate.perSeconds may be at most ${GATE_LIMITS.maxRatePerMs / 1000} (a day)`),
      })
      .optional(),
  })
  .refine((r) => r.concurrency !== undefined || r.rate !== undefined, { message: "a limit sets concurrency, rate or both; DELETE removes one" });
export type LimitRequest = z.infer<typeof limitRequest>;

export const redriveRequest = z.strictObject({
  queue: z.enum(QUEUE_NAMES as [QueueName, ...QueueName[]]),
});

/** An empty object body (or none) for the action routes; anything else is a mistake. */
export const emptyRequest = z.strictObject({});

/** Parses with a schema, turning its issues into the contract's 400 with a readable summary. */
export function parseRequest<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => ({
    path: i.path.map(String).join(".") || "(root)",
    message: i.message,
    ...(i.code === "unrecognized_keys" ? { keys: (i as { keys: string[] }).keys.map((k) => k.slice(0, 64)) } : {}),
  }));
  const summary = issues
    .slice(0, 3)
    .map((i) => ("keys" in i ? `unknown field(s) ${i.keys!.join(", ")}` : `${i.path}: ${i.message}`))
    .join("; ");
  throw new ApiError("invalid_request", `${what} is not valid: ${summary}`, issues);
}
