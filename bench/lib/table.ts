/** Plain-text tables and number formatting for the benchmark output. */

export type Cell = string | number;

export function table(title: string, head: string[], rows: Cell[][], notes: string[] = []): string {
  const text = rows.map((r) => r.map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [
    `\n${title}`,
    line(head),
    widths.map((w) => "─".repeat(w)).join("  "),
    ...text.map(line),
    ...notes.map((n) => `  · ${n}`),
  ].join("\n");
}

export const fmt = (n: number, digits = 1): string =>
  Number.isInteger(n) ? n.toLocaleString("en-US") : n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

export const usd = (n: number): string => (n >= 100 ? `$${fmt(Math.round(n))}` : `$${n.toFixed(2)}`);

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function summary(values: number[]): { n: number; median: number; p95: number; max: number; min: number } {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, min: s[0] ?? NaN, median: percentile(s, 50), p95: percentile(s, 95), max: s[s.length - 1] ?? NaN };
}
