/**
 * Flows from the command line (docs/cli.md "Flows"): `warden submit --children / --after`,
 * `warden tree` and the flow lines of `warden show`, run as users run them (the `warden` child
 * process over HTTP to the API handler on loopback), with a worker loop running the jobs.
 *
 * The worker loop starts only once the fan-out test has looked at its parent while nothing has
 * run (no worker listens yet, so every child is still queued); each test that needs jobs to run
 * starts it first, so any one of them can run alone.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WardenClient, type ApiJob } from "../client/index.js";
import { silentLog } from "../core/api/jobs.js";
import { builtinRegistry } from "../core/jobs/index.js";
import { defineJob } from "../core/registry.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import { makeHandler } from "../functions/api.js";
import { startWorkerLoop, type WorkerLoop } from "./support/api-worker.js";
import { wardenAt, type CliRun } from "./support/cli.js";
import { useEmulators } from "./support/emulators.js";
import { serveApi, type TestServer } from "./support/http-api.js";

const env = useEmulators("cli-flows");
/** Each test runs many CLI processes and waits for jobs on a machine that may be busy. */
const SLOW = 240_000;

/** A chain's last job that takes any step's result: it names the result's fields. */
const summary = defineJob<Record<string, unknown>, { fields: string[] }>({
  name: "clitree.summary",
  input: z.record(z.string(), z.unknown()),
  runsOn: "lambda",
  handler: async (input) => ({ fields: Object.keys(input).sort() }),
});

let services: Services;
let server: TestServer;
let worker: WorkerLoop | undefined;
let dir: string;

beforeAll(async () => {
  services = buildServices(loadRuntime(env.emu.env), { registry: builtinRegistry().register(summary) });
  server = await serveApi(makeHandler(services, { log: silentLog }), { "tok-user": { sub: "user" }, "tok-other": { sub: "other" } });
  dir = mkdtempSync(join(tmpdir(), "warden-cli-flows-"));
});

afterAll(async () => {
  await worker?.stop();
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * The loop runs every doorbell it hears at once, and the fan-out leaves 120 of them waiting for
 * it: on a busy machine a claim among so many can be answered after a short lease has run out
 * (the runner then rightly does not start the handler), and with no sweeper here to take the job
 * back the parent would wait for good. A 30 s lease keeps the test about the CLI.
 */
const startWorker = (): void => {
  worker ??= startWorkerLoop(services, { leaseMs: 30_000 });
};

const warden = wardenAt(() => server.url);
const ok = (run: CliRun): CliRun => {
  expect(run.code, run.stderr).toBe(0);
  return run;
};
const lines = (run: CliRun): string[] => run.stdout.trimEnd().split("\n");

/** Writes `value` as JSON to a file of the test's own and answers its path. */
let files = 0;
const jsonFile = (value: unknown): string => {
  const path = join(dir, `${++files}.json`);
  writeFileSync(path, JSON.stringify(value));
  return path;
};

/** Waits for the job to finish, polling with the client's backoff (a busy machine runs 120 children slowly: the bound is generous). */
const waited = (id: string): Promise<ApiJob> => new WardenClient({ baseUrl: server.url, token: "tok-user" }).wait(id, { timeoutMs: 150_000, maxIntervalMs: 2_000 });

/** A child line of `warden tree`: its branch, place, id, type, status, then the rest. */
const childLine = (branch: string, index: number, type: string, status: string, rest = ""): RegExp =>
  new RegExp(`^${branch}#${index}  K[0-9A-Z]{25}  ${type.replace(/\./g, "\\.")}  ${status}${rest}$`);

describe("warden tree on a fan-out", () => {
  it("submits demo.combine with 120 demo.chunk children from a file, shows them waiting, then the first 50 of the round with the counts and the line for the rest", { timeout: SLOW }, async () => {
    // Every tenth child is named by a key.
    const children = Array.from({ length: 120 }, (_, i) => ({ type: "demo.chunk", input: { from: i * 10, to: i * 10 + 10 }, ...(i % 10 === 0 ? { key: `part-${i}` } : {}) }));
    const submitted = ok(await warden(["submit", "demo.combine", "--input", "{}", "--children", jsonFile(children), "--json"]));
    const { job } = JSON.parse(submitted.stdout) as { job: ApiJob };
    expect(job).toMatchObject({ type: "demo.combine", status: "waiting", children: { total: 120 } });
    const id = job.id;
    const human = ok(await warden(["submit", "demo.combine", "--input", "{}", "--children", jsonFile(children.slice(0, 3))]));
    expect(human.stdout).toMatch(/^submitted: \S+ {2}demo\.combine on default, waiting \(3 children; warden tree \S+ shows them\)\n$/);

    // No worker yet: the parent waits and every child is queued. Over 100 children, the counts
    // come from the fan-in, which knows only the ended ones.
    const [waitingTree, waitingShow, small] = await Promise.all([warden(["tree", id, "--limit", "3"]), warden(["show", id]), warden(["tree", human.stdout.split(" ")[1]!])]);
    expect(lines(ok(waitingTree))).toEqual([
      `${id}  demo.combine  waiting  [120 children: 120 not ended]`,
      expect.stringMatching(childLine("├─ ", 0, "demo.chunk", "queued", "  key=part-0")),
      expect.stringMatching(childLine("├─ ", 1, "demo.chunk", "queued")),
      expect.stringMatching(childLine("├─ ", 2, "demo.chunk", "queued")),
      `└─ … and 117 more (warden tree ${id} --limit 120)`,
    ]);
    // Why it waits (the API's words), right under its status, then its children's counts.
    expect(ok(waitingShow).stdout).toMatch(new RegExp(`^status\\s+waiting\\nwhy\\s+waiting for its children, collect: its 120 children have not all ended; .*; see \`warden tree ${id}\`\\nchildren\\s+120 \\(120 not ended\\); \`warden tree ${id}\` lists them$`, "m"));
    // Up to 100 children are counted from their records, by status.
    expect(lines(ok(small))[0]).toMatch(/^\S+ {2}demo\.combine {2}waiting {2}\[3 children: 3 queued\]$/);

    startWorker();
    const done = await waited(id);
    expect(done).toMatchObject({ status: "succeeded", result: { sum: (1200 * 1199) / 2, count: 1200, chunks: 120 }, children: { total: 120, succeeded: 120, failed: 0, cancelled: 0, live: 0 } });

    const [tree, all, json, show] = await Promise.all([warden(["tree", id]), warden(["tree", id, "--limit", "120"]), warden(["tree", id, "--json"]), warden(["show", id])]);
    const shown = lines(ok(tree));
    expect(shown, tree.stdout).toHaveLength(1 + 50 + 1);
    expect(shown[0]).toBe(`${id}  demo.combine  succeeded  → {"sum":719400,"count":1200,"chunks":120}  [120 children: 120 succeeded]`);
    shown.slice(1, 51).forEach((line, i) => {
      const result = `  → \\{"sum":${(i * 10 + 4.5) * 10},"count":10\\}`;
      expect(line).toMatch(childLine("├─ ", i, "demo.chunk", "succeeded", `${i % 10 === 0 ? `  key=part-${i}` : ""}${result}`));
    });
    expect(shown[51]).toBe(`└─ … and 70 more (warden tree ${id} --limit 120)`);

    // --limit 120 reads two pages (the API's most is 100) and shows the whole round, the last under └─.
    const whole = lines(ok(all));
    expect(whole).toHaveLength(121);
    expect(whole.slice(1).map((l) => Number(/#(\d+) /.exec(l)?.[1]))).toEqual(Array.from({ length: 120 }, (_, i) => i));
    expect(whole[120]).toMatch(childLine("└─ ", 119, "demo.chunk", "succeeded", "  → .*"));
    expect(whole.some((l) => l.includes("more"))).toBe(false);

    const { tree: t } = JSON.parse(ok(json).stdout) as { tree: { job: ApiJob; children: { job: ApiJob; children: unknown }[]; notShown: number; cut: string; nextCursor: string } };
    expect(t.job).toMatchObject({ id, children: { total: 120, succeeded: 120, exact: false } });
    expect(t.children.map((c) => c.job.childIndex)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(t.children[0]!.job).toMatchObject({ parentId: id, childKey: "part-0", result: { sum: 45, count: 10 } });
    expect(t.children.every((c) => c.children === null)).toBe(true);
    expect(t).toMatchObject({ notShown: 70, cut: "limit", nextCursor: "50" });

    expect(ok(show).stdout).toMatch(new RegExp(`^children\\s+120 \\(120 succeeded\\); \`warden tree ${id}\` lists them$`, "m"));
    // A child's show names its parent and its place.
    const child = ok(await warden(["show", t.children[10]!.job.id]));
    expect(child.stdout).toMatch(new RegExp(`^parent\\s+${id} \\(child #10, key "part-10"\\)$`, "m"));

    // Another caller's parent is a 404, as for any job.
    const theirs = await warden(["tree", id], "tok-other");
    expect(theirs.code).toBe(3);
    expect(theirs.stderr).toContain("404 not_found");
  });
});

describe("warden tree on chains", () => {
  it("demo.transcribe after demo.download: the job, then the step it waited on", { timeout: SLOW }, async () => {
    startWorker();
    const steps = jsonFile([{ type: "demo.download", input: { url: "https://example.com/talk.mp3", failTimes: 1 } }]);
    const { job } = JSON.parse(ok(await warden(["submit", "demo.transcribe", "--after", steps, "--json"])).stdout) as { job: ApiJob };
    expect(job).toMatchObject({ status: "waiting", children: { total: 1 } });
    const done = await waited(job.id);
    expect(done).toMatchObject({ status: "succeeded", result: { transcript: "transcript of /tmp/https_example_com_talk_mp3", words: 4667 } });

    const tree = ok(await warden(["tree", job.id]));
    expect(lines(tree)).toEqual([
      // A result is cut short at 60 characters.
      `${job.id}  demo.transcribe  succeeded  → ${JSON.stringify(done.result).slice(0, 59)}…  [1 child: 1 succeeded]`,
      expect.stringMatching(childLine("└─ ", 0, "demo.download", "succeeded", '  → \\{"file":"/tmp/https_example_com_talk_mp3","bytes":28000\\}')),
    ]);
  });

  it("a longer chain nests a level per step, and --depth cuts it with the command that goes on", { timeout: SLOW }, async () => {
    startWorker();
    const steps = jsonFile([{ type: "demo.download", input: { url: "https://example.com/b.mp3" } }, { type: "demo.transcribe" }]);
    const { job } = JSON.parse(ok(await warden(["submit", "clitree.summary", "--after", steps, "--json"])).stdout) as { job: ApiJob };
    expect((await waited(job.id)).result).toEqual({ fields: ["transcript", "words"] });

    const [tree, shallow, json] = await Promise.all([warden(["tree", job.id]), warden(["tree", job.id, "--depth", "1"]), warden(["tree", job.id, "--json"])]);
    expect(lines(ok(tree))).toEqual([
      `${job.id}  clitree.summary  succeeded  → {"fields":["transcript","words"]}  [1 child: 1 succeeded]`,
      expect.stringMatching(childLine("└─ ", 0, "demo.transcribe", "succeeded", '  → \\{"transcript":"transcript of /tmp/https_example_com_b_mp3",…  \\[1 child\\]')),
      expect.stringMatching(childLine("   └─ ", 0, "demo.download", "succeeded", '  → \\{"file":"/tmp/https_example_com_b_mp3","bytes":\\d+\\}')),
    ]);
    const step = (JSON.parse(ok(json).stdout) as { tree: { children: { job: ApiJob; children: { job: ApiJob }[] }[] } }).tree.children[0]!;
    expect(step.job).toMatchObject({ type: "demo.transcribe", parentId: job.id, children: { total: 1 } });
    expect(step.children.map((c) => c.job)).toEqual([expect.objectContaining({ type: "demo.download", parentId: step.job.id, childIndex: 0 })]);

    expect(lines(ok(shallow))).toEqual([
      expect.stringContaining(`${job.id}  clitree.summary  succeeded`),
      expect.stringMatching(childLine("└─ ", 0, "demo.transcribe", "succeeded", ".*")),
      `   └─ … 1 child below --depth 1 (warden tree ${step.job.id})`,
    ]);
    // The command it suggests shows the rest, and the step's own parent.
    const rest = lines(ok(await warden(["tree", step.job.id])));
    expect(rest).toEqual([
      expect.stringMatching(new RegExp(`^${step.job.id}  demo\\.transcribe  succeeded  → .*  \\[1 child: 1 succeeded\\]  \\(child #0 of ${job.id}\\)$`)),
      expect.stringMatching(childLine("└─ ", 0, "demo.download", "succeeded", ".*")),
    ]);
  });
});

describe("the command line", () => {
  it("refuses what does not go together, and flow files of the wrong shape, before sending anything", { timeout: SLOW }, async () => {
    const children = jsonFile([{ type: "demo.chunk", input: { from: 0, to: 1 } }]);
    const runs = await Promise.all([
      warden(["tree"]),
      warden(["tree", "01JOB", "--limit", "0"]),
      warden(["tree", "01JOB", "--depth", "x"]),
      warden(["submit", "demo.combine", "--policy", "failFast"]),
      warden(["submit", "demo.combine", "--children", children, "--after", children]),
      warden(["submit", "demo.transcribe", "--input", "{}", "--after", children]),
      warden(["submit", "demo.combine", "--children", jsonFile({ type: "demo.chunk" })]),
      warden(["submit", "demo.combine", "--children", jsonFile([{ input: {} }])]),
      warden(["submit", "demo.combine", "--children", '[{"type":"demo.chunk"}]']),
      warden(["submit", "demo.combine", "--children", children, "--policy", "sometimes"]),
    ]);
    for (const r of runs) expect(r.code, r.stderr).toBe(2);
    const said = runs.map((r) => r.stderr.split("\n")[0]);
    expect(said).toEqual([
      "warden: tree needs a job id",
      'warden: --limit must be a whole number from 1 to 1000 (got "0")',
      'warden: --depth must be a whole number from 0 to 50 (got "x")',
      "warden: --policy goes with --children (it says what a failed child does to the job)",
      "warden: --children and --after do not go together: a job fans out or ends a chain, not both",
      "warden: a chain's job takes the last step's result as its input: give the input to the first step in the --after file, not --input",
      'warden: the --children file must hold a JSON array of children, [{"type": …}, …], with at least one',
      'warden: the --children file\'s item 0 must be an object with a "type" (a job type name)',
      expect.stringMatching(/^warden: cannot read the --children file: .* \(--children takes a file holding the JSON, or - to read it from stdin\)$/),
      'warden: --policy must be one of collect, failFast (got "sometimes")',
    ]);
    for (const r of runs) expect(r.stderr).toMatch(/run 'warden (tree|submit) --help' for its options/);
  });

  it("passes the API's refusal of a bad child on, with the child it names", async () => {
    const run = await warden(["submit", "demo.combine", "--input", "{}", "--children", jsonFile([{ type: "demo.chunk", input: { from: 0, to: 1 } }, { type: "no.such.type" }])]);
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/^warden: 400 invalid_request: .*children\[1\].*unknown job type "no\.such\.type"/);
  });
});
