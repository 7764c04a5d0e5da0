/** Runs the `warden` command as a user would: a child process, the URL and token from the environment. */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { EXIT, main, type Io } from "../../cli/main.js";

export const WARDEN_BIN = fileURLToPath(new URL("../../bin/warden.js", import.meta.url));

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `warden(args, token)` against the API at `url()` (read per call: the server starts in beforeAll). */
export function wardenAt(url: () => string): (args: string[], token?: string) => Promise<CliRun> {
  return (args, token = "tok-user") =>
    new Promise((resolve) => {
      execFile(
        process.execPath,
        [WARDEN_BIN, ...args],
        { env: { ...process.env, WARDEN_URL: url(), WARDEN_TOKEN: token }, timeout: 45_000 },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr }),
      );
    });
}

/** `main` in-process with a fetch that records and refuses: what the command line alone decides sends nothing. */
export async function offline(args: string[]): Promise<CliRun & { requests: string[] }> {
  const run = { code: -1, stdout: "", stderr: "", requests: [] as string[] };
  const io: Io = {
    stdout: { write: (s: string) => (run.stdout += s) },
    stderr: { write: (s: string) => (run.stderr += s) },
    env: { WARDEN_URL: "http://127.0.0.1:9", WARDEN_TOKEN: "t" },
    fetch: async (input) => {
      run.requests.push(String(input));
      return new Response(JSON.stringify({ error: { code: "internal", message: "this test expects no request" } }), { status: 500 });
    },
  };
  run.code = await main(args, io);
  return run;
}

/** Each command line is refused before anything is sent: exit 2, this message, and a pointer to the help of `hint`. */
export async function expectUsageMistakes(cases: readonly (readonly [args: string[], message: string, hint: string])[]): Promise<void> {
  const runs = await Promise.all(cases.map(([args]) => offline(args)));
  runs.forEach((run, i) => {
    const [args, message, hint] = cases[i]!;
    expect(run.code, args.join(" ")).toBe(EXIT.usage);
    expect(run.requests, args.join(" ")).toEqual([]);
    expect(run.stdout).toBe("");
    expect(run.stderr, args.join(" ")).toBe(`warden: ${message}\nrun 'warden ${hint} --help' for its options\n`);
  });
}
