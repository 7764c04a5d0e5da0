/**
 * Reading synthesized templates across stacks: a role's policy in the Workers stack names the
 * table as `Fn::ImportValue` of an export of the Storage stack. These helpers follow such
 * references back to the resource they mean, so tests can say "the jobs table" or "the large
 * DLQ" instead of comparing CDK's generated export names.
 */
import type { CfnTemplate, Synthesized } from "./sst.js";

export interface ResourceRef {
  stack: string;
  id: string;
  /** "Ref" or the GetAtt attribute. */
  attr: string;
  /** Literal text joined after the reference, e.g. `/index/due`. */
  suffix: string;
}

export type Resolved = ResourceRef | { literal: string };

export function resolve(s: Synthesized, stack: string, value: unknown): Resolved {
  if (typeof value === "string") return { literal: value };
  if (value && typeof value === "object") {
    const v = value as Record<string, unknown>;
    if (typeof v.Ref === "string") return { stack, id: v.Ref, attr: "Ref", suffix: "" };
    if (Array.isArray(v["Fn::GetAtt"])) {
      const [id, attr] = v["Fn::GetAtt"] as [string, string];
      return { stack, id, attr, suffix: "" };
    }
    if (typeof v["Fn::ImportValue"] === "string") {
      const name = v["Fn::ImportValue"];
      for (const [stackName, t] of Object.entries(s.byStackName)) {
        for (const out of Object.values(t.Outputs ?? {})) {
          if (out.Export?.Name === name) return resolve(s, stackName, out.Value);
        }
      }
      throw new Error(`no stack exports ${name}`);
    }
    if (Array.isArray(v["Fn::Join"])) {
      const [sep, parts] = v["Fn::Join"] as [string, unknown[]];
      const resolved = parts.map((p) => resolve(s, stack, p));
      const refs = resolved.filter((r): r is ResourceRef => "id" in r);
      if (refs.length === 0) return { literal: resolved.map((r) => (r as { literal: string }).literal).join(sep) };
      const at = resolved.indexOf(refs[0]!);
      const before = resolved.slice(0, at).map((r) => ("literal" in r ? r.literal : "?")).join(sep);
      const after = resolved.slice(at + 1).map((r) => ("literal" in r ? r.literal : "?")).join(sep);
      if (refs.length === 1 && before === "") return { ...refs[0]!, suffix: refs[0]!.suffix + after };
    }
  }
  throw new Error(`cannot resolve ${JSON.stringify(value)}`);
}

export function resourceOf(s: Synthesized, r: Resolved): CfnTemplate["Resources"][string] {
  if ("literal" in r) throw new Error(`"${r.literal}" is a literal, not a resource`);
  const res = s.byStackName[r.stack]?.Resources[r.id];
  if (!res) throw new Error(`no resource ${r.id} in ${r.stack}`);
  return res;
}

export const asArray = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

export interface Statement {
  stack: string;
  policyId: string;
  roles: string[];
  Effect: string;
  Action: string[];
  Resource: unknown[];
  Condition?: unknown;
}

/** Every IAM statement in every stack: policies, and roles' inline policies. */
export function allStatements(s: Synthesized): Statement[] {
  const out: Statement[] = [];
  for (const [stack, t] of Object.entries(s.byStackName)) {
    for (const [id, r] of Object.entries(t.Resources)) {
      const docs: { doc: any; roles: string[] }[] = [];
      if (r.Type === "AWS::IAM::Policy" || r.Type === "AWS::IAM::ManagedPolicy") {
        docs.push({ doc: r.Properties?.PolicyDocument, roles: asArray(r.Properties?.Roles).map((x: any) => x.Ref) });
      }
      if (r.Type === "AWS::IAM::Role") {
        for (const p of asArray(r.Properties?.Policies)) docs.push({ doc: (p as any).PolicyDocument, roles: [id] });
      }
      for (const { doc, roles } of docs) {
        for (const st of asArray(doc?.Statement) as any[]) {
          out.push({ stack, policyId: id, roles, Effect: st.Effect, Action: asArray(st.Action), Resource: asArray(st.Resource), Condition: st.Condition });
        }
      }
    }
  }
  return out;
}

/** Who a role belongs to: a function's name, `task:<family>` or `execution:<family>`, else the role's id. */
export function roleOwner(t: CfnTemplate, roleId: string): string {
  for (const r of Object.values(t.Resources)) {
    const p = r.Properties ?? {};
    const getsRole = (v: any) => Array.isArray(v?.["Fn::GetAtt"]) && v["Fn::GetAtt"][0] === roleId;
    if (r.Type === "AWS::Lambda::Function" && getsRole(p.Role)) return String(p.FunctionName ?? roleId);
    if (r.Type === "AWS::ECS::TaskDefinition" && getsRole(p.TaskRoleArn)) return `task:${p.Family}`;
    if (r.Type === "AWS::ECS::TaskDefinition" && getsRole(p.ExecutionRoleArn)) return `execution:${p.Family}`;
  }
  return roleId;
}

export function resourceCounts(t: CfnTemplate): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of Object.values(t.Resources)) counts[r.Type] = (counts[r.Type] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)));
}
