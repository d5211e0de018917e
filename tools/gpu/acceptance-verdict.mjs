#!/usr/bin/env node
// The verdict of one run of gpu-acceptance.sh: each acceptance line of the 7B decode
// benchmark (issue 9), read from the JSON that run wrote, against its threshold.
//
//   node tools/gpu/acceptance-verdict.mjs OUT
//
// OUT holds bench/decode.json, bench/peer.json and bench/throughput.json
// (gpu-decode-bench.sh) and check/passkey-compare.json (gpu-check.sh). Prints a table,
// writes OUT/acceptance.json and OUT/acceptance.md; exit code 1 when a line fails or
// its measurement is missing (the file, or the point in it, is named). Plain Node, no
// dependencies (tools/lib/args.mjs is plain Node too): it runs on the GPU machine with
// the bundle's Node.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCommand } from '../lib/args.mjs';

const { positionals } = parseCommand({
  usage: 'node tools/gpu/acceptance-verdict.mjs OUT',
  about: `The verdict of one run of gpu-acceptance.sh: each acceptance line of the 7B decode
benchmark, from the JSON in OUT (the folder gpu-acceptance.sh wrote), against its
threshold; writes OUT/acceptance.md and OUT/acceptance.json. Exit code 1 when a line
does not hold or its measurement is missing.`,
  positionals: { names: 'OUT (the folder gpu-acceptance.sh wrote)', min: 1, max: 1 },
});
const [out] = positionals;

/** The point every line is about. */
const POINT = { context: 30720, batch: 4, pageSize: 32, budget: 2048 };

class Missing extends Error {}
/** Each file parsed once, however many lines read it. */
const parsed = new Map();
const read = (file) => {
  if (!parsed.has(file)) {
    const path = join(out, file);
    if (!existsSync(path)) throw new Missing(`${path} is missing`);
    parsed.set(file, JSON.parse(readFileSync(path, 'utf8')));
  }
  return parsed.get(file);
};
const find = (rows, file, what, test) => {
  const row = rows.find((r) => !r.error && test(r));
  if (!row) throw new Missing(`${file} has no ${what}`);
  return row;
};

const decodeRow = (decode, policy, budget) =>
  find(
    decode.results,
    'bench/decode.json',
    `${policy}${budget ? ` @ ${budget}` : ''} row at ${POINT.context} tokens, batch ${POINT.batch}, replayed as graphs`,
    (r) =>
      r.policy === policy &&
      r.context === POINT.context &&
      r.batch === POINT.batch &&
      r.graphs !== false &&
      (budget === undefined || r.budgetTokens === budget),
  );
const peerRow = (peer) =>
  find(
    peer.results,
    'bench/peer.json',
    `sdpa-graph row at ${POINT.context} tokens, batch ${POINT.batch}`,
    (r) => r.peer === 'sdpa-graph' && r.context === POINT.context && r.batch === POINT.batch,
  );

const x = (v) => `${v.toFixed(2)}x`;
const pct = (v) => `${(100 * v).toFixed(1)}%`;

/** Each line: what it says, the threshold, and a function measuring it from the run. */
const LINES = [
  [
    'ArkVale @ 2048 at least 2.5x faster than the PyTorch SDPA peer (its CUDA graph)',
    '>= 2.50x',
    () => {
      const [a, p] = [decodeRow(read('bench/decode.json'), 'arkvale', POINT.budget), peerRow(read('bench/peer.json'))];
      const r = p.decodeMsPerStep / a.decodeMsPerStep;
      return [r >= 2.5, `${x(r)} (${a.decodeMsPerStep} ms against ${p.decodeMsPerStep} ms)`];
    },
  ],
  [
    'ArkVale @ 2048 within 1.5x of its HBM floor',
    '<= 1.50x',
    () => {
      const a = decodeRow(read('bench/decode.json'), 'arkvale', POINT.budget);
      const r = a.decodeMsPerStep / a.floorMs;
      return [r <= 1.5, `${x(r)} (floor ${a.floorMs} ms for ${a.bytesPerStepGB} GB)`];
    },
  ],
  [
    'Full within 1.15x of the PyTorch peer',
    '<= 1.15x',
    () => {
      const [f, p] = [decodeRow(read('bench/decode.json'), 'full'), peerRow(read('bench/peer.json'))];
      const r = f.decodeMsPerStep / p.decodeMsPerStep;
      return [r <= 1.15, `${x(r)} of the peer (${f.decodeMsPerStep} ms against ${p.decodeMsPerStep} ms)`];
    },
  ],
  [
    'estimate + select + recall at most 15% of the ArkVale step (profiled run)',
    '<= 15%',
    () => {
      const s = decodeRow(read('bench/decode.json'), 'arkvale', POINT.budget).stages;
      if (!s) throw new Missing('bench/decode.json: the ArkVale @ 2048 row has no profiled stages (run with --profile 1)');
      return [s.selectionShare <= 0.15, `${pct(s.selectionShare)} (${s.selectMs} + ${s.recallMs} ms of ${s.stepMs} ms)`];
    },
  ],
  [
    'throughput under the 40 GB KV limit: ArkVale @ 512 at least 4.6x Full',
    '>= 4.60x',
    () => {
      const t = read('bench/throughput.json');
      const [f, a] = [
        find(t.results, 'bench/throughput.json', 'Full row', (r) => r.policy === 'full'),
        find(t.results, 'bench/throughput.json', 'ArkVale @ 512 row', (r) => r.policy === 'arkvale' && r.budgetTokens === 512),
      ];
      const r = a.tokensPerSecond / f.tokensPerSecond;
      return [r >= 4.6, `${x(r)} (${a.batch} sequences, ${a.tokensPerSecond} tok/s, against ${f.batch} at ${f.tokensPerSecond} tok/s; ${t.context} tokens)`];
    },
  ],
  [
    'prefill at 40% or more of the cuBLAS dense rate (every decode point)',
    '>= 0.40',
    () => {
      const rows = read('bench/decode.json').results.filter((r) => !r.error);
      if (!rows.length || rows.some((r) => typeof r.prefillOfGemmRate !== 'number')) throw new Missing('bench/decode.json has a row without prefillOfGemmRate');
      const worst = Math.min(...rows.map((r) => r.prefillOfGemmRate));
      return [worst >= 0.4, `worst ${worst.toFixed(2)} of ${rows.length} prefills`];
    },
  ],
  [
    'zero synchronising calls inside a decode step (every decode point)',
    '0',
    () => {
      const rows = read('bench/decode.json').results.filter((r) => !r.error);
      if (!rows.length || rows.some((r) => typeof r.syncsInStep !== 'number')) throw new Missing('bench/decode.json has a row without syncsInStep');
      const most = Math.max(...rows.map((r) => r.syncsInStep));
      return [most === 0, `${most} at most, in ${rows.length} points`];
    },
  ],
  [
    'the passkey table gives the same answers as tools/baselines/passkey-cuda-h200.json',
    'all',
    () => {
      const c = read('check/passkey-compare.json');
      const whole = c.onlyBefore.length === 0;
      return [whole && c.same === c.prompts, `${c.same} of ${c.prompts} answers the same${whole ? '' : `; ${c.onlyBefore.length} baseline row(s) not run`}`];
    },
  ],
];

const verdict = LINES.map(([line, threshold, measure]) => {
  try {
    const [holds, measured] = measure();
    return { line, threshold, measured, holds };
  } catch (e) {
    if (!(e instanceof Missing) && !(e instanceof SyntaxError)) throw e;
    return { line, threshold, measured: `not measured: ${e.message}`, holds: false };
  }
});
let device = 'unknown card';
try {
  device = read('bench/peer.json').device ?? device;
} catch {}
const md = [
  `Acceptance of the 7B decode benchmark on ${device} (${POINT.context} tokens, batch ${POINT.batch}, pages of ${POINT.pageSize}):`,
  '',
  '| line | threshold | measured | holds |',
  '| --- | --- | --- | --- |',
  ...verdict.map((v) => `| ${v.line} | ${v.threshold} | ${v.measured} | ${v.holds ? 'yes' : '**no**'} |`),
  '',
].join('\n');
writeFileSync(join(out, 'acceptance.md'), md);
writeFileSync(join(out, 'acceptance.json'), `${JSON.stringify({ device, point: POINT, lines: verdict }, null, 1)}\n`);
process.stdout.write(md);
const failed = verdict.filter((v) => !v.holds).length;
console.log(failed ? `${failed} of ${verdict.length} lines do not hold` : `all ${verdict.length} lines hold`);
process.exit(failed ? 1 : 0);
