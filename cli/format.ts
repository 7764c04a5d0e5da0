/** How the CLI shows things to people: aligned tables, a job's details, a progress bar. */
import type { ApiJob, ApiWorker, DeadLetterReport, StuckReport, SweepReport } from "../client/index.js";

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ").trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

export function percentOf(job: ApiJob): string {
  const p = job.progress?.percent;
  if (job.status === "succeeded") return "100%";
  return typeof p === "number" ? `${p.toFixed(p < 10 ? 1 : 0)}%` : "-";
}

const short = (iso: string | null): string => (iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "-");

export function jobsTable(jobs: ApiJob[]): string {
  return table(
    ["ID", "TYPE", "QUEUE", "STATUS", "PROGRESS", "ATTEMPTS", "CREATED"],
    jobs.map((j) => [j.id, j.type, j.queue, statusLabel(j), percentOf(j), `${j.attempts}/${j.maxAttempts}`, short(j.createdAt)]),
  );
}

const statusLabel = (j: ApiJob): string => (j.stale ? `${j.status} (stale)` : j.cancelRequested ? `${j.status} (cancelling)` : j.status);

export function jobDetails(j: ApiJob): string {
  const rows: [string, string][] = [
    ["id", j.id],
    ["type", j.type],
    ["queue", j.queue],
    ["status", statusLabel(j)],
    ["progress", j.progress ? `${percentOf(j)}${j.progress.total !== null ? ` (${j.progress.done}/${j.progress.total})` : ""}${j.progress.message ? ` ${j.progress.message}` : ""}` : "-"],
    ["attempts", `${j.attempts} of ${j.maxAttempts}`],
    ["created", short(j.createdAt)],
    ["started", short(j.startedAt ?? j.firstStartedAt)],
    ["heartbeat", short(j.heartbeatAt)],
    ["finished", short(j.finishedAt)],
    ...(j.runAt ? ([["runAt", short(j.runAt)]] as [string, string][]) : []),
    ["error", j.error ? `${j.error.code}: ${j.error.message}` : "-"],
    ["result", j.result === null ? "-" : JSON.stringify(j.result)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const history = j.history.length
    ? "\nhistory:\n" +
      table(
        ["ATTEMPT", "WORKER", "STARTED", "ENDED", "OUTCOME"],
        j.history.map((h) => [String(h.attempt), h.worker, short(h.startedAt), short(h.endedAt), h.outcome ?? "running"]),
      )
        .split("\n")
        .map((l) => `  ${l}`)
        .join("\n")
    : "";
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n") + history;
}

export function progressBar(j: ApiJob, width = 30): string {
  const pct = j.status === "succeeded" ? 100 : (j.progress?.percent ?? 0);
  const filled = Math.round((Math.max(0, Math.min(100, pct)) / 100) * width);
  const bar = "#".repeat(filled) + "-".repeat(width - filled);
  const note = j.progress?.message ? `  ${j.progress.message}` : "";
  return `[${bar}] ${pct.toFixed(1).padStart(5)}%  ${statusLabel(j)}${note}`;
}

export function stuckText(r: StuckReport): string {
  const states = table(
    ["STATE", "COUNT", "OLDEST (s)", "SAMPLE"],
    Object.entries(r.states).map(([s, v]) => [s, String(v.count), String(v.oldestAgeSeconds), v.sample.slice(0, 3).join(" ")]),
  );
  const dl = Object.entries(r.deadLetters)
    .map(([q, n]) => `${q}=${n}`)
    .join(" ");
  return `${states}\ndead letters: ${dl}\n(as of ${short(r.generatedAt)})`;
}

export function sweepText(r: SweepReport): string {
  const counts = Object.entries(r.counts)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  return `swept in ${r.durationMs} ms, read ${r.read} overdue item(s): ${counts}${r.more ? " (more left for the next sweep)" : ""}`;
}

export function deadLettersText(r: DeadLetterReport): string {
  const rows: string[][] = [];
  for (const [q, v] of Object.entries(r.queues)) {
    if (!v.sample.length) rows.push([q, String(v.count), "-", "-", "-"]);
    for (const s of v.sample) rows.push([q, String(v.count), s.jobId || "(not a job)", String(s.receiveCount), short(s.firstFailedAt)]);
  }
  return table(["QUEUE", "COUNT", "JOB", "RECEIVES", "FIRST FAILED"], rows);
}

export function workersText(ws: ApiWorker[]): string {
  if (!ws.length) return "no workers seen recently";
  return table(
    ["ID", "KIND", "PID", "STATE", "STARTED", "LAST SEEN", "JOBS"],
    ws.map((w) => [
      w.id,
      w.kind,
      w.pid !== undefined ? String(w.pid) : "-",
      w.state === "dead" ? `dead ${w.diedAt ? short(w.diedAt) : ""} (${w.deathReason ?? "?"})` : "alive",
      short(w.startedAt),
      short(w.lastSeenAt),
      w.jobs.join(" ") || "-",
    ]),
  );
}

/**
 * An API error's `details`, indented under its message: one line per validation issue
 * (`path: message`), or per field of a details object. Long lists are cut.
 */
export function detailsText(details: unknown, maxLines = 20): string {
  const value = (v: unknown): string => (typeof v === "string" ? v : JSON.stringify(v));
  let lines: string[];
  if (Array.isArray(details)) {
    lines = details.map((d) => {
      if (d === null || typeof d !== "object") return value(d);
      const { path, message, keys, ...rest } = d as { path?: unknown; message?: unknown; keys?: unknown };
      const where = typeof path === "string" && path !== "" ? path : "(input)";
      const extra = Array.isArray(keys) && keys.length ? ` (${keys.map(String).join(", ")})` : "";
      const more = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : "";
      return message !== undefined ? `${where}: ${value(message)}${extra}${more}` : JSON.stringify(d);
    });
  } else if (details !== null && typeof details === "object") {
    lines = Object.entries(details).map(([k, v]) => `${k}: ${value(v)}`);
  } else if (details === undefined || details === null || details === "") {
    lines = [];
  } else {
    lines = [value(details)];
  }
  const shown = lines.slice(0, maxLines).map((l) => `  ${l}`);
  if (lines.length > maxLines) shown.push(`  … and ${lines.length - maxLines} more`);
  return shown.join("\n");
}
