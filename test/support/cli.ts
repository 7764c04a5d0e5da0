/** Runs the `warden` command as a user would: a child process, the URL and token from the environment. */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

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
