#!/usr/bin/env node
/** The `arkvale-codegen` binary. */
import { runCodegenCli } from './cli/run.js';

process.exitCode = await runCodegenCli(process.argv.slice(2));
