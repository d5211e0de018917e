#!/usr/bin/env node
// Sums an Nsight Compute CSV (`ncu --csv --page raw --metrics gpu__time_duration.sum,...`)
// per kernel: how many launches, their device time, and the DRAM bytes they moved.
//
//   node tools/gpu/ncu-summary.mjs NCU.csv [--steps N] [--top 30]
//
// With --steps (the decode bench's --profiler-steps) the times are per step. ncu runs
// each kernel alone, so the sum is the kernels' own time: the gap to a step's measured
// time is what launching and the boundaries between kernels cost.
import { readFileSync } from 'node:fs';
import { int, parseCommand } from '../lib/args.mjs';

const {
  values: opts,
  positionals,
  fail,
} = parseCommand({
  usage: 'node tools/gpu/ncu-summary.mjs NCU.csv [--steps N] [--top N]',
  about: 'Nsight Compute CSV per kernel: launches, device time, DRAM bytes.',
  positionals: { names: 'NCU.csv', min: 1, max: 1 },
  options: {
    steps: { type: 'string', value: 'N', default: '1', parse: int({ min: 1 }), help: 'profiled steps, to give times per step' },
    top: { type: 'string', value: 'N', default: '30', parse: int({ min: 1 }), help: 'kernels listed, longest first' },
    'by-grid': { type: 'boolean', help: "one entry per kernel and grid (tells a product's shapes apart)" },
  },
});

/** One CSV line's fields (quoted, commas inside quotes kept). */
function fields(line) {
  const out = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') (cur += '"'), i++;
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') out.push(cur), (cur = '');
    else cur += c;
  }
  out.push(cur);
  return out;
}

let text;
try {
  text = readFileSync(positionals[0], 'utf8');
} catch (e) {
  fail(`cannot read ${positionals[0]}: ${e.code ?? e.message}`);
}
const lines = text.split('\n');
// ncu prints its own lines (==PROF== ...) before the table.
const head = lines.findIndex((l) => l.startsWith('"ID"'));
if (head < 0) fail(`${positionals[0]} has no ncu table (no line starting "ID")`);
const names = fields(lines[head]);
const units = fields(lines[head + 1]);
const col = (name) => names.indexOf(name);
const kernelCol = col('Kernel Name');
const gridCol = col('Grid Size');
const timeCol = col('gpu__time_duration.sum');
if (kernelCol < 0 || timeCol < 0) fail('the table needs the Kernel Name and gpu__time_duration.sum columns');
const scale = { ns: 1e-6, us: 1e-3, usecond: 1e-3, nsecond: 1e-6, msecond: 1, ms: 1 }[units[timeCol]] ?? 1e-6;
const byteCols = ['dram__bytes_read.sum', 'dram__bytes_write.sum'].map(col).filter((c) => c >= 0);
const byteScale = (c) => ({ byte: 1, Kbyte: 1e3, Mbyte: 1e6, Gbyte: 1e9, KB: 1e3, MB: 1e6, GB: 1e9 })[units[c]] ?? 1;
const kernels = new Map();
let launches = 0;
for (const line of lines.slice(head + 2)) {
  if (!line.startsWith('"')) continue;
  const f = fields(line);
  // Template arguments aside: one entry per kernel function.
  const base = f[kernelCol]
    .replace(/^void /, '')
    .replace(/<.*$/, '')
    .replace(/\(.*$/, '');
  const name = opts['by-grid'] && gridCol >= 0 ? `${base} ${f[gridCol]}` : base;
  const ms = Number(f[timeCol].replace(/,/g, '')) * scale;
  const bytes = byteCols.reduce((sum, c) => sum + Number(f[c].replace(/,/g, '')) * byteScale(c), 0);
  const k = kernels.get(name) ?? { name, launches: 0, ms: 0, bytes: 0 };
  k.launches++;
  k.ms += ms;
  k.bytes += bytes;
  kernels.set(name, k);
  launches++;
}
const steps = opts.steps;
const rows = [...kernels.values()].sort((a, b) => b.ms - a.ms);
const totalMs = rows.reduce((s, k) => s + k.ms, 0);
const report = {
  steps,
  launchesPerStep: launches / steps,
  kernelMsPerStep: +(totalMs / steps).toFixed(3),
  kernels: rows.slice(0, opts.top).map((k) => ({
    kernel: k.name,
    launchesPerStep: k.launches / steps,
    msPerStep: +(k.ms / steps).toFixed(4),
    usPerLaunch: +((k.ms * 1000) / k.launches).toFixed(2),
    share: +(k.ms / totalMs).toFixed(3),
    ...(byteCols.length ? { tbPerS: +(k.bytes / (k.ms * 1e9)).toFixed(2) } : {}),
  })),
};
process.stdout.write(JSON.stringify(report, null, 2) + '\n');
