/**
 * DynamoDB's own rules for what an item may hold, applied before a write so that a value it
 * would refuse is refused to the handler that made it, with a clear error, instead of failing a
 * job's final write (where retrying cannot help and re-running the work would repeat it).
 *
 * Sizes follow DynamoDB's documented accounting, not JSON's: an attribute costs its name's UTF-8
 * length plus its value; a string its UTF-8 length; a number about one byte per two significant
 * digits plus one; a boolean or null one byte; a list or map 3 bytes plus one byte per element
 * (and, in a map, each key's length). So `[1,2,3]` is 7 bytes as JSON but 3 + 3×(1+2) = 12 here.
 */

/** DynamoDB's hard limit on one item. */
export const ITEM_LIMIT_BYTES = 400 * 1024;

/** DynamoDB nests lists and maps at most this deep. */
const MAX_DEPTH = 32;
/** DynamoDB's number range: magnitudes outside it are refused. */
const MAX_MAGNITUDE = 9.9999999999999999e125;
const MIN_MAGNITUDE = 1e-130;

const utf8 = (s: string): number => Buffer.byteLength(s, "utf8");

/** Significant digits of a number as DynamoDB stores it (leading and trailing zeros do not count). */
function numberBytes(n: number): number {
  const digits = Math.abs(n)
    .toExponential()
    .replace(/e.*$/, "")
    .replace(".", "")
    .replace(/0+$/, "");
  return Math.ceil(Math.max(1, digits.length) / 2) + 1 + (n < 0 ? 1 : 0);
}

/** The size DynamoDB counts for one attribute value, as the document client would marshal it. */
export function valueBytes(v: unknown): number {
  if (v === null || typeof v === "boolean") return 1;
  if (typeof v === "string") return utf8(v);
  if (typeof v === "number") return numberBytes(v);
  if (Array.isArray(v)) return 3 + v.reduce((n: number, e) => (e === undefined ? n : n + 1 + valueBytes(e)), 0);
  if (typeof v === "object") {
    let n = 3;
    for (const [k, e] of Object.entries(v as Record<string, unknown>)) if (e !== undefined) n += 1 + utf8(k) + valueBytes(e);
    return n;
  }
  return 0;
}

/** The size of a whole item: every attribute's name and value. */
export function itemBytes(item: Record<string, unknown>): number {
  let n = 0;
  for (const [k, v] of Object.entries(item)) if (v !== undefined) n += utf8(k) + valueBytes(v);
  return n;
}

/**
 * Why DynamoDB (through the document client) could not store `value`, or undefined when it can:
 * plain JSON only (no Date, Map, class instance, function, bigint), finite numbers in DynamoDB's
 * range, nested at most 32 deep. `path` names where the problem is, for the error message.
 */
export function unstorable(value: unknown, path = "value", depth = 0): string | undefined {
  if (value === null || value === undefined || typeof value === "string" || typeof value === "boolean") return undefined;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return `${path} is ${value}, which DynamoDB cannot store`;
    const m = Math.abs(value);
    if (m !== 0 && (m > MAX_MAGNITUDE || m < MIN_MAGNITUDE)) return `${path} is ${value}, outside DynamoDB's number range`;
    return undefined;
  }
  if (typeof value !== "object") return `${path} is a ${typeof value}, which is not JSON`;
  if (depth >= MAX_DEPTH) return `${path} is nested more than ${MAX_DEPTH} levels deep`;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const why = unstorable(value[i], `${path}[${i}]`, depth + 1);
      if (why) return why;
    }
    return undefined;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) {
    const name = (value as { constructor?: { name?: string } }).constructor?.name ?? "object";
    return `${path} is a ${name}, not plain JSON (convert it, e.g. a Date to an ISO string)`;
  }
  for (const [k, e] of Object.entries(value as Record<string, unknown>)) {
    const why = unstorable(e, `${path}.${k}`, depth + 1);
    if (why) return why;
  }
  return undefined;
}
