#!/usr/bin/env node
// The kernel check on a real GPU, in three steps around the device machine:
//   node tools/gpu/gpu-kernels.mjs prepare [DIR]      here: generate, compile with nvcc (sm_90),
//                                                      link the harness, write inputs and the
//                                                      emulator's expected outputs into DIR
//   DIR/harness DIR OUT                                on the GPU machine: run every job, time two
//                                                      kernels, write outputs into OUT
//   node tools/gpu/gpu-kernels.mjs verify [DIR] OUT   here: compare OUT with the emulator
// DIR defaults to .gpu/kernels (git-ignored; carry it to the GPU machine). prepare (or
// carry, for a DIR prepared before) also writes DIR/carry: the stripped harness, the jobs and their inputs, compressed (about 2
// MB instead of 21), so that one call can carry them beside the bundle; there run
//   bash DIR/carry/run.sh OUT
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { prepareGpuCheck, verifyGpuCheck } from '@arkvale/kernels-codegen';
import { parseCommand } from '../lib/args.mjs';

const { positionals, fail } = parseCommand({
  usage: 'node tools/gpu/gpu-kernels.mjs prepare [DIR] | carry [DIR] | verify [DIR] OUT',
  about: `The kernel check on a real GPU. prepare: generate the kernels, compile them with nvcc
(sm_90), link the harness and write its inputs and the emulator's expected outputs into
DIR, with DIR/carry (the harness and inputs compressed, and run.sh) for the GPU machine;
carry: only DIR/carry, for a DIR prepared before; there, bash DIR/carry/run.sh OUT;
verify: compare the GPU's outputs in OUT with the emulator's. DIR defaults to
.gpu/kernels.`,
  positionals: { names: 'a command (prepare, carry or verify)', min: 1, max: 3 },
});
const [cmd, ...rest] = positionals;
const root = resolve(import.meta.dirname, '../..');
if (cmd === 'prepare' || cmd === 'carry') {
  if (rest.length > 1) fail(`unexpected argument "${rest[1]}" (${cmd} [DIR])`);
} else if (cmd === 'verify') {
  if (rest.length < 1) fail('missing OUT (verify [DIR] OUT)');
} else fail(`unknown command "${cmd}" (prepare, carry or verify)`);

if (cmd === 'prepare') {
  const dir = resolve(rest[0] ?? resolve(root, '.gpu/kernels'));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  await prepareGpuCheck(dir);
  writeCarry(dir);
  console.log(`prepared ${dir}: run "${dir}/harness ${dir} OUT" (or "bash ${dir}/carry/run.sh OUT") on a GPU machine, then verify`);
} else if (cmd === 'carry') {
  const dir = resolve(rest[0] ?? resolve(root, '.gpu/kernels'));
  writeCarry(dir);
  console.log(`wrote ${dir}/carry: carry it and run "bash ${dir}/carry/run.sh OUT" on a GPU machine`);
} else {
  const [dir, out] = rest.length === 1 ? [resolve(root, '.gpu/kernels'), rest[0]] : rest;
  const problems = verifyGpuCheck(resolve(dir), resolve(out));
  if (problems.length) {
    console.error(`${problems.length} output(s) differ from the emulator:\n${problems.join('\n')}`);
    process.exit(1);
  }
  console.log('every GPU output matches the emulator');
}

/** DIR/carry: what the harness needs on the GPU machine, compressed, with the script that unpacks and runs it. */
function writeCarry(dir) {
  const carry = resolve(dir, 'carry');
  mkdirSync(carry, { recursive: true });
  execFileSync('strip', ['-o', resolve(carry, 'harness'), resolve(dir, 'harness')]);
  execFileSync('xz', ['-T2', '-6', '-f', resolve(carry, 'harness')]);
  copyFileSync(resolve(dir, 'jobs.txt'), resolve(carry, 'jobs.txt'));
  const inputs = readdirSync(dir).filter((f) => /^in\d+\.bin$/.test(f));
  execFileSync('sh', ['-c', `tar cf - "$@" | xz -T2 -6 > "${resolve(carry, 'inputs.tar.xz')}"`, 'tar', ...inputs], { cwd: dir });
  writeFileSync(
    resolve(carry, 'run.sh'),
    `#!/usr/bin/env bash
# The kernel check on the GPU machine from the compressed carry: bash run.sh OUT
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="\${TMPDIR:-/tmp}/arkvale-kernels"
out="$1"
rm -rf "$work" && mkdir -p "$work" "$out"
xz -dc "$here/harness.xz" > "$work/harness" && chmod +x "$work/harness"
cp "$here/jobs.txt" "$work/"
xz -dc "$here/inputs.tar.xz" | tar xf - -C "$work"
"$work/harness" "$work" "$out"
`,
  );
}
