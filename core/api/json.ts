/**
 * Untrusted JSON, read defensively: bounded size and depth before parsing, then every key,
 * string and number checked for what would later break a write or a reader (prototype keys,
 * lone surrogates, numbers DynamoDB cannot hold). Everything refused here is a 4xx, never a 500.
 */
import { LIMITS } from "../config.js";
import { ApiError } from "./errors.js";

/** Keys that could pollute a prototype in some reader of the job (a dashboard, a user's script). */
const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);
export const MAX_KEY_CHARS = 256;
/** The document client refuses numbers past this (they would lose precision). */
const MAX_NUMBER = Number.MAX_SAFE_INTEGER;
/** DynamoDB numbers underflow below 1e-130; stay clear of the edge. */
const MIN_MAGNITUDE = 1e-120;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const invalid = (message: string, details?: unknown): ApiError => new ApiError("invalid_request", message, details);

/** Decodes a request body's bytes as UTF-8, refusing bytes that are not UTF-8. */
export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw invalid("the body is not valid UTF-8 text; send JSON encoded as UTF-8");
  }
}

/**
 * The deepest nesting of arrays and objects in a JSON text, found without parsing, so a body of
 * 100 000 brackets costs one linear pass and never the parser's stack.
 */
export function nestingDepth(text: string, stopAbove: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) max = depth;
      if (max > stopAbove) return max;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

export function parseJson(text: string): unknown {
  if (nestingDepth(text, LIMITS.maxJsonDepth) > LIMITS.maxJsonDepth) {
    throw invalid(`the JSON nests deeper than ${LIMITS.maxJsonDepth} levels; flatten it`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw invalid(`the body is not valid JSON (${(e as Error).message.slice(0, 120)})`);
  }
  checkValue(value, "$");
  return value;
}

/** Walks a parsed value (its depth is already bounded) and refuses what Warden cannot store or show safely. */
export function checkValue(value: unknown, path: string): void {
  if (typeof value === "string") {
    if (LONE_SURROGATE.test(value)) throw invalid(`${path} contains an unpaired UTF-16 surrogate; send well-formed Unicode`);
    return;
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value) || Math.abs(value) > MAX_NUMBER) {
      throw invalid(`${path} is a number outside ±${MAX_NUMBER}; send larger numbers as strings`);
    }
    if (value !== 0 && Math.abs(value) < MIN_MAGNITUDE) throw invalid(`${path} is a number too close to zero to store; send it as a string`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => checkValue(v, `${path}[${i}]`));
    return;
  }
  if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      const where = `${path}.${k.slice(0, 40)}`;
      if (FORBIDDEN_KEYS.has(k)) throw invalid(`${path} has the key "${k}", which is not allowed; rename it`);
      if (k.length === 0) throw invalid(`${path} has an empty key; every key needs a name`);
      if (k.length > MAX_KEY_CHARS) throw invalid(`${where}… has a key longer than ${MAX_KEY_CHARS} characters`);
      if (LONE_SURROGATE.test(k)) throw invalid(`${path} has a key with an unpaired UTF-16 surrogate; send well-formed Unicode`);
      checkValue(v, where);
    }
  }
}
