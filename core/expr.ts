import { TABLE } from "./config.js";

/**
 * A small builder for DynamoDB update and condition expressions. Every attribute name goes through
 * an alias, because many of ours (status, owner, type, token, input, result, queue) are reserved.
 */
export class Expr {
  readonly names: Record<string, string> = {};
  readonly values: Record<string, unknown> = {};
  private readonly sets: string[] = [];
  private readonly removes: string[] = [];
  private readonly adds: string[] = [];
  private readonly conditions: string[] = [];
  private next = 0;

  name(attr: string): string {
    const alias = `#${attr}`;
    this.names[alias] = attr;
    return alias;
  }

  value(v: unknown): string {
    const alias = `:v${this.next++}`;
    this.values[alias] = v;
    return alias;
  }

  /** SET attr = value; an undefined value removes the attribute instead. */
  set(attr: string, v: unknown): this {
    if (v === undefined) return this.remove(attr);
    this.sets.push(`${this.name(attr)} = ${this.value(v)}`);
    return this;
  }

  setRaw(clause: string): this {
    this.sets.push(clause);
    return this;
  }

  remove(...attrs: string[]): this {
    for (const a of attrs) this.removes.push(this.name(a));
    return this;
  }

  /** ADD attr n: a number attribute incremented in place (created at n when missing). */
  add(attr: string, n: number): this {
    this.adds.push(`${this.name(attr)} ${this.value(n)}`);
    return this;
  }

  /** Adds a condition clause; the clauses are ANDed. */
  when(clause: string): this {
    this.conditions.push(clause);
    return this;
  }

  eq(attr: string, v: unknown): this {
    return this.when(`${this.name(attr)} = ${this.value(v)}`);
  }

  get updateExpression(): string {
    const parts: string[] = [];
    if (this.sets.length) parts.push(`SET ${this.sets.join(", ")}`);
    if (this.removes.length) parts.push(`REMOVE ${this.removes.join(", ")}`);
    if (this.adds.length) parts.push(`ADD ${this.adds.join(", ")}`);
    return parts.join(" ");
  }

  get conditionExpression(): string | undefined {
    return this.conditions.length ? this.conditions.map((c) => `(${c})`).join(" AND ") : undefined;
  }

  /** The parameters of an UpdateItem or a conditional Put/Delete, ready to spread. */
  params(): {
    UpdateExpression?: string;
    ConditionExpression?: string;
    ExpressionAttributeNames?: Record<string, string>;
    ExpressionAttributeValues?: Record<string, unknown>;
  } {
    return {
      ...(this.sets.length || this.removes.length || this.adds.length ? { UpdateExpression: this.updateExpression } : {}),
      ...(this.conditionExpression ? { ConditionExpression: this.conditionExpression } : {}),
      ...(Object.keys(this.names).length ? { ExpressionAttributeNames: this.names } : {}),
      ...(Object.keys(this.values).length ? { ExpressionAttributeValues: this.values } : {}),
    };
  }
}

export const isConditionFailure = (e: unknown): boolean =>
  e instanceof Error && e.name === "ConditionalCheckFailedException";

/** A Put that only creates: refused with a failed condition when an item with its key exists. */
export function putNew<I extends object>(table: string, item: I): { TableName: string; Item: I; ConditionExpression: string; ExpressionAttributeNames: Record<string, string> } {
  return { TableName: table, Item: item, ConditionExpression: "attribute_not_exists(#id)", ExpressionAttributeNames: { "#id": TABLE.partitionKey } };
}
