/**
 * The chaos run's fenced-effects check (section 12; docs/effects.md).
 *
 * Inputs: the chaos.effects jobs submitted, their records after the drain, the rows of the
 * downstream table they wrote (a scan), and the ledger's `effect` entries (each fenced write as
 * its handler heard the answer: landed, or refused by the fence).
 * Outputs: violations, when a succeeded job lacks the row of one of its steps, a row exists for a
 * step no job has, or a row holds a lower token than a write of that row that landed (a stale
 * attempt's write landed after a later one's: the fence failed); and the figures of the rows.
 *
 * A row's token may be higher than every landed write the ledger has: a worker killed right after
 * its write landed never recorded it. A stale write that landed before any later attempt wrote
 * the row is allowed (the fence refuses writes only after a higher token has written): the later
 * attempt's write replaces it, which this check sees as the row's token.
 */
import type { Job } from "../core/job.js";
import { FENCE_ATTRIBUTE } from "../core/fence.js";
import type { LedgerEntry } from "./chaos-ledger.js";

export interface EffectsFacts {
  /** The chaos.effects jobs: id and how many steps each has. */
  jobs: readonly { id: string; steps: number }[];
  /** Every row of the downstream table after the drain. */
  rows: readonly Record<string, unknown>[];
}

export interface EffectsFigures {
  jobs: number;
  steps: number;
  rows: number;
  missing: number;
  extra: number;
  /** Rows whose token is lower than a landed write's: a stale write overwrote a later one. */
  overwritten: number;
  landed: number;
  refused: number;
}

type Effect = Extract<LedgerEntry, { k: "effect" }>;

export function checkEffects(f: EffectsFacts, ledger: readonly LedgerEntry[], records: Map<string, Job | undefined>, violations: string[]): EffectsFigures {
  const effects = ledger.filter((e): e is Effect => e.k === "effect");
  const out: EffectsFigures = { jobs: f.jobs.length, steps: 0, rows: f.rows.length, missing: 0, extra: 0, overwritten: 0, landed: effects.filter((e) => !e.refused).length, refused: effects.filter((e) => e.refused).length };
  const rows = new Map(f.rows.map((r) => [String(r.id), r]));
  const wanted = new Set<string>();
  for (const j of f.jobs) {
    out.steps += j.steps;
    const succeeded = records.get(j.id)?.status === "succeeded";
    for (let step = 0; step < j.steps; step++) {
      const id = `${j.id}:step/${step}`;
      wanted.add(id);
      const row = rows.get(id);
      if (!row) {
        if (succeeded) {
          out.missing++;
          violations.push(`${j.id} succeeded but the downstream table has no row for its step ${step}`);
        }
        continue;
      }
      const highest = Math.max(-1, ...effects.filter((e) => e.job === j.id && e.step === step && !e.refused).map((e) => e.token));
      const token = Number(row[FENCE_ATTRIBUTE]);
      if (token < highest) {
        out.overwritten++;
        violations.push(`${j.id}'s step ${step} row holds token ${token}, though a write under token ${highest} landed: a stale attempt's write replaced a later one's`);
      }
    }
  }
  for (const id of rows.keys()) {
    if (wanted.has(id)) continue;
    out.extra++;
    violations.push(`the downstream table has a row no chaos.effects step has: ${id}`);
  }
  return out;
}

export function effectRows(x: EffectsFigures): { check: string; value: string; ok: boolean | null }[] {
  return [
    {
      check: "fenced effects: one row per step, none overwritten by a stale attempt",
      value: `${x.jobs} jobs, ${x.steps} steps: ${x.rows} rows, ${x.missing} missing, ${x.extra} extra, ${x.overwritten} overwritten by a lower token`,
      ok: x.jobs > 0 && x.missing === 0 && x.extra === 0 && x.overwritten === 0,
    },
    {
      check: "fenced effects: stale writes refused",
      value: `${x.refused} refused by the fence (attempts frozen past their lease), ${x.landed} landed`,
      ok: x.refused > 0,
    },
  ];
}
