#!/usr/bin/env node
// The kernel check on a real GPU, in three steps around the device machine:
//   node tools/scripts/gpu-kernels.mjs prepare [DIR]      here: generate, compile with nvcc (sm_90),
//                                                          link the harness, write inputs and the
//                                                          emulator's expected outputs into DIR
//   DIR/harness DIR OUT                                    on the GPU machine: run every job, time two
//                                                          kernels, write outputs into OUT
//   node tools/scripts/gpu-kernels.mjs verify [DIR] OUT   here: compare OUT with the emulator
// DIR defaults to .gpu/kernels (git-ignored; carry it to the GPU machine).
import { mkdirSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { prepareGpuCheck, verifyGpuCheck } from '../../packages/kernels-codegen/dist/index.js';

const [cmd, ...rest] = process.argv.slice(2);
const root = resolve(import.meta.dirname, '../..');
if (cmd === 'prepare') {
  const dir = resolve(rest[0] ?? resolve(root, '.gpu/kernels'));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  await prepareGpuCheck(dir);
  console.log(`prepared ${dir}: run "${dir}/harness ${dir} OUT" on a GPU machine, then verify`);
} else if (cmd === 'verify' && rest.length >= 1) {
  const [dir, out] = rest.length === 1 ? [resolve(root, '.gpu/kernels'), rest[0]] : rest;
  const problems = verifyGpuCheck(resolve(dir), resolve(out));
  if (problems.length) {
    console.error(`${problems.length} output(s) differ from the emulator:\n${problems.join('\n')}`);
    process.exit(1);
  }
  console.log('every GPU output matches the emulator');
} else {
  console.error('usage: gpu-kernels.mjs prepare [DIR] | verify [DIR] OUT');
  process.exit(2);
}
