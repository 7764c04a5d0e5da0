/**
 * CloudWatch alarm evaluation, locally: the definitions in core/alarms.ts applied to the points
 * the local runtime records (no CloudWatch emulator exists for Node). It follows CloudWatch's
 * rules: aggregate each period with the alarm's statistic, compare with the threshold, treat a
 * period without data as the definition says, and fire when all of the last `evaluationPeriods`
 * periods breach. Periods are scaled (`timeScale`) so a 60 s period can be a few seconds locally.
 * Thresholds are not scaled: the definitions come from `alarmDefinitions(cfg)` at the local
 * runtime's own timings, so JobsNotStarting's threshold follows its short start deadline.
 */
import type { AlarmDefinition, AlarmSource } from "../core/alarms.js";
import type { Dims } from "../core/metrics.js";

export type AlarmStateValue = "OK" | "ALARM" | "INSUFFICIENT_DATA";

export interface Sample {
  at: number;
  value: number;
  dims?: Dims;
}

export interface PeriodResult {
  start: number;
  end: number;
  /** The aggregated value, or null when the period had no data. */
  value: number | null;
  breaching: boolean;
}

export interface AlarmState {
  id: string;
  state: AlarmStateValue;
  description: string;
  threshold: number;
  comparison: AlarmDefinition["comparison"];
  /** Scaled period, in ms, as evaluated locally. */
  periodMs: number;
  evaluationPeriods: number;
  /** Oldest first. */
  periods: PeriodResult[];
  /** When the state last changed (epoch ms). */
  since: number;
}

export const sourceLabel = (s: AlarmSource): string =>
  s.kind === "metric"
    ? `${s.metric} (${s.statistic})`
    : s.kind === "queue"
      ? `${s.queue}${s.dlq ? " DLQ" : ""} ${s.metric}`
      : `lambda ${s.fn} ${s.metric}`;

const aggregate = (statistic: "Sum" | "Maximum", values: number[]): number =>
  statistic === "Sum" ? values.reduce((a, b) => a + b, 0) : Math.max(...values);

/** Queue and Lambda sources are sampled gauges or counts: the same aggregation CloudWatch uses for them. */
export const statisticOf = (s: AlarmSource): "Sum" | "Maximum" =>
  s.kind === "metric" ? s.statistic : s.kind === "queue" ? "Maximum" : "Sum";

const breaches = (def: AlarmDefinition, value: number): boolean =>
  def.comparison === "GreaterThanThreshold" ? value > def.threshold : value < def.threshold;

/**
 * Evaluates one alarm at `now` over `samples` (already selected for its source). Periods that
 * began before `since` (when recording started) have no history and cannot breach, so a fresh
 * start is not an alarm storm; with every period in that state the alarm has insufficient data.
 */
export function evaluateAlarm(
  def: AlarmDefinition,
  samples: readonly Sample[],
  now: number,
  opts: { timeScale?: number; since?: number } = {},
): Omit<AlarmState, "since"> {
  const periodMs = Math.max(1, Math.round(def.periodSeconds * 1000 * (opts.timeScale ?? 1)));
  const since = opts.since ?? -Infinity;
  const stat = statisticOf(def.source);
  const periods: PeriodResult[] = [];
  let unknown = 0;
  for (let i = def.evaluationPeriods - 1; i >= 0; i--) {
    const end = now - i * periodMs;
    const start = end - periodMs;
    const values = samples.filter((s) => s.at >= start && s.at < end).map((s) => s.value);
    if (start < since && values.length === 0) {
      unknown++;
      periods.push({ start, end, value: null, breaching: false });
      continue;
    }
    const value = values.length ? aggregate(stat, values) : null;
    const breaching = value === null ? def.missingData === "breaching" : breaches(def, value);
    periods.push({ start, end, value, breaching });
  }
  const state: AlarmStateValue =
    unknown === periods.length ? "INSUFFICIENT_DATA" : periods.every((p) => p.breaching) ? "ALARM" : "OK";
  return {
    id: def.id,
    state,
    description: def.description,
    threshold: def.threshold,
    comparison: def.comparison,
    periodMs,
    evaluationPeriods: def.evaluationPeriods,
    periods,
  };
}

/**
 * Keeps each alarm's state across evaluations, so the dashboard can say since when it fires.
 * `defs`: `alarmDefinitions(runtimeConfig)`, not `ALARMS` (the cloud's defaults), wherever the
 * timings are not the defaults.
 */
export class AlarmBoard {
  private readonly states = new Map<string, AlarmState>();

  constructor(
    private readonly defs: readonly AlarmDefinition[],
    private readonly read: (source: AlarmSource, since: number) => readonly Sample[],
    private readonly opts: { timeScale: number; since: number },
  ) {}

  evaluate(now: number): AlarmState[] {
    return this.defs.map((def) => {
      const horizon = now - def.periodSeconds * 1000 * this.opts.timeScale * (def.evaluationPeriods + 1);
      const evaluated = evaluateAlarm(def, this.read(def.source, horizon), now, this.opts);
      const prev = this.states.get(def.id);
      // `ignore`: periods with no data leave the alarm as it was (as CloudWatch does).
      const noData = evaluated.periods.every((p) => p.value === null);
      const next = def.missingData === "ignore" && noData && prev ? { ...evaluated, state: prev.state } : evaluated;
      const state: AlarmState = { ...next, since: prev && prev.state === next.state ? prev.since : now };
      this.states.set(def.id, state);
      return state;
    });
  }

  current(): AlarmState[] {
    return [...this.states.values()];
  }
}
