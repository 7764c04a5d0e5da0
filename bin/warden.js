#!/usr/bin/env node
// The `warden` command (package.json "bin"). The CLI is TypeScript; tsx's loader runs it as is.
import { register } from "tsx/esm/api";

register();
const { main } = await import(new URL("../cli/main.ts", import.meta.url).href);
process.exitCode = await main(process.argv.slice(2));
