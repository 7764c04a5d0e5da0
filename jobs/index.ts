/**
 * Your job types. This file is yours: Warden's own code never edits it, so an upgrade of Warden
 * does not conflict with it. Every entry point (the API, the Lambda and Fargate workers,
 * `npm start`) registers what `jobs` lists here beside the built-in demo types.
 *
 * Add a type: write it with `defineJob` (see ./example.ts), import it here, and list it.
 * Test it without AWS with `runHandler` from core/testing.ts (see test/user-jobs.test.ts).
 */
import type { JobType } from "../core/registry.js";
import { countWords } from "./example.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const jobs: JobType<any, any, any>[] = [countWords];
