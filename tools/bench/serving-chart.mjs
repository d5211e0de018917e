#!/usr/bin/env node
// The serving benchmark as a picture (SVG, no dependencies): for every workload phase,
// one bar per plan in three panels: output tokens per second, TTFT p50 and TPOT p99.
//
//   node tools/bench/serving-chart.mjs SERVING_JSON [--out FILE]
//
// Reads the JSON of `pnpm bench --serving --shape NAME --out SERVING_JSON`; writes the
// SVG beside it (.svg for .json) unless --out says otherwise.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseCommand } from '../lib/args.mjs';
import { text } from '../lib/svg.mjs';

const {
  values: opts,
  positionals,
  fail,
} = parseCommand({
  usage: 'node tools/bench/serving-chart.mjs SERVING_JSON [--out FILE]',
  about:
    'The serving benchmark (pnpm bench --serving --shape NAME --out SERVING_JSON) as an SVG chart: output tokens per second, TTFT p50 and TPOT p99 per workload phase and plan.',
  options: { out: { type: 'string', value: 'FILE', shownDefault: 'SERVING_JSON with .svg', help: 'where the SVG goes' } },
  positionals: { names: 'SERVING_JSON', min: 1, max: 1 },
});
const [file] = positionals;
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch (e) {
  fail(`cannot read ${file}: ${e.message}`);
}
const rows = (report.runs ?? []).filter((r) => r.phase);
if (rows.length === 0) fail(`${file} has no workload rows (is it the JSON of pnpm bench --serving --shape NAME?)`);

const COLORS = ['#7f7f7f', '#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];
const niceMax = (v) => {
  if (!(v > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(v));
  return Math.ceil(v / step) * step;
};
const plans = [...new Set(rows.map((r) => r.plan))];
const phaseOf = (r) => r.key ?? `${r.workload}: ${r.phase}`;
const phases = [...new Set(rows.map(phaseOf))];
const panels = [
  ['output tokens per second', (r) => r.outputTokensPerSecond],
  ['TTFT p50 (ms)', (r) => r.ttftMs?.p50],
  ['TPOT p99 (ms)', (r) => r.tpotMs?.p99],
];
const W = 1000;
const H = 220;
const parts = [
  text(
    60,
    26,
    `Serving at the ${report.shape} shape on ${report.backend}, ${report.kvGB} GB of device KV, token counts x${report.scale}`,
    'font-size="15" font-weight="bold"',
  ),
];
plans.forEach((p, i) => {
  parts.push(`<rect x="${60 + i * 160}" y="38" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`, text(78 + i * 160, 49, p, 'font-size="12"'));
});
panels.forEach(([title, value], k) => {
  const top = 80 + k * (H + 70);
  const box = { x: 60, y: top, w: W - 100, h: H };
  const max = niceMax(Math.max(0, ...rows.map((r) => value(r) ?? 0)) * 1.1);
  const yAt = (v) => box.y + box.h - (v / max) * box.h;
  parts.push(text(box.x, top - 10, title, 'font-size="13" font-weight="bold"'));
  parts.push(`<rect x="${box.x}" y="${box.y}" width="${box.w}" height="${box.h}" fill="none" stroke="#999"/>`);
  for (let i = 0; i <= 4; i++) parts.push(text(box.x - 6, yAt((max / 4) * i) + 4, ((max / 4) * i).toFixed(0), 'text-anchor="end" font-size="10"'));
  const group = box.w / phases.length;
  const bar = Math.min(40, (group * 0.8) / plans.length);
  phases.forEach((phase, g) => {
    const x0 = box.x + g * group + (group - bar * plans.length) / 2;
    plans.forEach((plan, i) => {
      const r = rows.find((row) => row.plan === plan && phaseOf(row) === phase);
      const v = r ? value(r) : null;
      if (v === null || v === undefined) return;
      parts.push(
        `<rect x="${(x0 + i * bar).toFixed(1)}" y="${yAt(v).toFixed(1)}" width="${(bar - 2).toFixed(1)}" height="${(box.y + box.h - yAt(v)).toFixed(1)}" fill="${COLORS[i % COLORS.length]}"/>`,
      );
    });
    if (k === panels.length - 1) parts.push(text(box.x + g * group + group / 2, box.y + box.h + 14, phase, 'text-anchor="middle" font-size="11"'));
  });
});
const height = 80 + panels.length * (H + 70);
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${parts.join('')}</svg>\n`;
const out = opts.out ?? file.replace(/\.json$/, '') + '.svg';
writeFileSync(out, svg);
console.log(`wrote ${out}`);
