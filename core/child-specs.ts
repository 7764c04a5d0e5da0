/**
 * From what a caller or a handler asks for (`children: [{type, input, key}]`, a chain's `after`
 * steps) to the specs a flow stores (core/flow.ts ChildSpec): each child's type known, its input
 * valid for it, its queue and limits resolved as a submit's are. Everything is checked before
 * anything is written, so a bad request is a ValidationError (a 400) that writes nothing.
 */
import { LIMITS } from "./config.js";
import { ValidationError } from "./errors.js";
import { FANIN_SHARD_SIZE, MAX_CHAIN_STEPS, MAX_CHILDREN, MAX_SPEC_SHARD_BYTES, type ChildSpec } from "./flow.js";
import { checkConcurrencyKey } from "./gates.js";
import { unstorable } from "./item-size.js";
import type { JobType, Registry } from "./registry.js";

/** A child as asked for. */
export interface ChildRequest {
  type: string;
  input?: unknown;
  key?: string;
  /** Counts the child under this key's concurrency and rate limits, beside its type's. */
  concurrencyKey?: string;
}

/** A child's or a step's concurrency key, checked as a job's: what its spec carries. */
function keyOf(r: ChildRequest, where: string): { concurrencyKey?: string } {
  if (r.concurrencyKey === undefined) return {};
  const bad = typeof r.concurrencyKey === "string" ? checkConcurrencyKey(r.concurrencyKey) : "a concurrency key is a string";
  if (bad) throw new ValidationError(`${where}.concurrencyKey: ${bad}`);
  return { concurrencyKey: r.concurrencyKey };
}

const jsonBytes = (v: unknown): number => Buffer.byteLength(JSON.stringify(v ?? null), "utf8");

function resolve(registry: Registry, r: ChildRequest, where: string): ChildSpec {
  let parsed;
  try {
    parsed = registry.parseInput(r.type, r.input);
  } catch (e) {
    if (e instanceof ValidationError) throw new ValidationError(`${where}: ${e.message}`, e.details);
    throw e;
  }
  const why = unstorable(parsed.input, `${where}'s input`);
  if (why) throw new ValidationError(why);
  if (jsonBytes(parsed.input) > LIMITS.maxInputBytes) throw new ValidationError(`${where}'s input is over ${LIMITS.maxInputBytes} bytes as JSON`);
  const { type } = parsed;
  return {
    type: type.name,
    input: parsed.input ?? null,
    ...(r.key !== undefined ? { key: r.key } : {}),
    ...keyOf(r, where),
    queue: registry.queueFor(type, parsed.input),
    maxAttempts: Math.min(type.limits.maxAttempts, LIMITS.maxAttempts),
    timeoutMs: type.limits.timeoutMs,
  };
}

/**
 * Children as asked for, each checked (its type, its input, its key unique among `keys`, which
 * it adds to), numbered from `first`. Linear in the children given: a handler that spawns in many
 * calls pays for each child once. The round as a whole is checked by `checkRound`.
 */
export function childSpecs(registry: Registry, children: readonly ChildRequest[], keys: Set<string> = new Set(), first = 0): ChildSpec[] {
  if (!Array.isArray(children)) throw new ValidationError("children must be a list");
  return children.map((c, n) => {
    const i = first + n;
    if (c.key !== undefined) {
      if (typeof c.key !== "string" || c.key.length === 0 || c.key.length > LIMITS.maxIdempotencyKeyChars) {
        throw new ValidationError(`children[${i}].key must be 1 to ${LIMITS.maxIdempotencyKeyChars} characters`);
      }
      if (keys.has(c.key)) throw new ValidationError(`children[${i}].key "${c.key.slice(0, 64)}" is given twice; a child's key names it within its parent`);
      keys.add(c.key);
    }
    return resolve(registry, c, `children[${i}]`);
  });
}

/** A round: 1 to MAX_CHILDREN children, each shard's specs within one item. */
export function checkRound(specs: readonly ChildSpec[]): void {
  if (specs.length === 0) throw new ValidationError("a flow needs at least one child");
  if (specs.length > MAX_CHILDREN) throw new ValidationError(`a job may have at most ${MAX_CHILDREN} children; this one has ${specs.length}`);
  checkShards(specs);
}

/** A whole round as a submit gives it. */
export function roundSpecs(registry: Registry, children: readonly ChildRequest[]): ChildSpec[] {
  if (Array.isArray(children) && children.length > MAX_CHILDREN) throw new ValidationError(`a job may have at most ${MAX_CHILDREN} children; this one has ${children.length}`);
  const specs = childSpecs(registry, children);
  checkRound(specs);
  return specs;
}

/**
 * A chain's steps before a job (`after`): the first takes its input, every later one (and the
 * job itself) the result of the one before. Answers the job's one child: the last step, waiting
 * on the ones before it.
 */
export function chainSpec(registry: Registry, steps: readonly ChildRequest[]): ChildSpec {
  if (!Array.isArray(steps) || steps.length === 0) throw new ValidationError("after needs at least one step");
  if (steps.length > MAX_CHAIN_STEPS) throw new ValidationError(`a chain may have at most ${MAX_CHAIN_STEPS} steps before its job; this one has ${steps.length}`);
  steps.forEach((s, i) => {
    if (i > 0 && s.input !== undefined) throw new ValidationError(`after[${i}] may not have an input: a chain's step takes the result of the step before it`);
    if (s.key !== undefined) throw new ValidationError(`after[${i}] may not have a key: a chain's steps are named by their place`);
  });
  // A later step's input is only known when the step before it succeeds: its type's input is checked then (at its claim).
  const first = resolve(registry, steps[0]!, "after[0]");
  const later = steps.slice(1).map((s, i) => laterStep(registry, s, `after[${i + 1}]`));
  const all = [first, ...later];
  const last = all.at(-1)!;
  const before = all.slice(0, -1);
  const spec: ChildSpec = before.length ? { ...last, after: before } : last;
  checkShards([spec]);
  return spec;
}

function laterStep(registry: Registry, s: ChildRequest, where: string): ChildSpec {
  const type = registry.get(s.type);
  if (!type) throw new ValidationError(`${where}: unknown job type "${s.type}"; known types: ${registry.names().join(", ")}`);
  return { type: type.name, input: null, ...keyOf(s, where), queue: queueBeforeInput(type), maxAttempts: Math.min(type.limits.maxAttempts, LIMITS.maxAttempts), timeoutMs: type.limits.timeoutMs };
}

/**
 * Where a job whose input is not known yet runs (a chain's later step, a chain's job): its type's
 * queue, and for `auto` the default one, since its size estimate needs the input. A step that
 * then runs short of memory moves to `large` as any job of its type would.
 */
export function queueBeforeInput(type: JobType): "default" | "large" {
  return type.runsOn === "fargate" ? "large" : "default";
}

/** Each shard's specs are one item: a round whose inputs would overflow one says so before anything is written. */
function checkShards(specs: readonly ChildSpec[]): void {
  for (let k = 0; k * FANIN_SHARD_SIZE < specs.length; k++) {
    const bytes = jsonBytes(specs.slice(k * FANIN_SHARD_SIZE, (k + 1) * FANIN_SHARD_SIZE));
    if (bytes > MAX_SPEC_SHARD_BYTES) {
      throw new ValidationError(
        `children ${k * FANIN_SHARD_SIZE} to ${Math.min(specs.length, (k + 1) * FANIN_SHARD_SIZE) - 1} have ${bytes} bytes of specs; each ${FANIN_SHARD_SIZE} children may have at most ${MAX_SPEC_SHARD_BYTES} (pass large inputs by reference, such as an S3 key)`,
      );
    }
  }
}
