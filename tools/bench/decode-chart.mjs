#!/usr/bin/env node
// The decode bench as a picture (SVG, no dependencies): latency per step against context
// for every system of the run, and, where the run was profiled (--profile 1), each
// point's step split into stages as stacked bars (the paper's Figure 11).
//
//   node tools/bench/decode-chart.mjs OUT_DIR [--out FILE]
//
// Reads OUT_DIR/decode.json (decode-bench.mjs) and, when present, OUT_DIR/peer.json
// (gpu_decode_peer.py); writes OUT_DIR/decode.svg unless --out says otherwise.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCommand } from '../lib/args.mjs';
import { text } from '../lib/svg.mjs';

const {
  values: opts,
  positionals,
  fail,
} = parseCommand({
  usage: 'node tools/bench/decode-chart.mjs OUT_DIR [--out FILE]',
  about: `The decode bench as an SVG chart: latency per step against context for every system of
the run (OUT_DIR/decode.json from decode-bench.mjs, OUT_DIR/peer.json from
gpu_decode_peer.py when present) and the profiled points' stages as stacked bars.`,
  options: {
    out: { type: 'string', value: 'FILE', shownDefault: 'OUT_DIR/decode.svg', help: 'where the SVG goes' },
  },
  positionals: { names: 'OUT_DIR', min: 1, max: 1 },
});
const [dir] = positionals;
if (!existsSync(join(dir, 'decode.json'))) fail(`${join(dir, 'decode.json')} is missing (OUT_DIR must hold decode.json from decode-bench.mjs)`);
const outFile = opts.out ?? join(dir, 'decode.svg');
const engine = JSON.parse(readFileSync(join(dir, 'decode.json'), 'utf8'));
const peer = existsSync(join(dir, 'peer.json')) ? JSON.parse(readFileSync(join(dir, 'peer.json'), 'utf8')) : null;

const label = (r) =>
  `${r.policy}${r.budgetTokens ? ` @ ${r.budgetTokens}` : ''}${r.selectOn ? ` (${r.selectOn})` : ''}${r.graphs === false ? ' (no graphs)' : ''}`;
/** Series: name -> [{ context, ms }], the engine's rows then the peers'. */
const series = new Map();
const add = (name, context, ms) => {
  if (!series.has(name)) series.set(name, []);
  series.get(name).push({ context, ms });
};
for (const r of engine.results) if (r.decodeMsPerStep) add(`ArkVale-TS ${label(r)}`, r.context, r.decodeMsPerStep);
const peerNames = { 'sdpa-graph': 'PyTorch flash SDPA, CUDA graph', 'sdpa-eager': 'PyTorch flash SDPA, eager', transformers: 'transformers LlamaForCausalLM' };
for (const r of peer?.results ?? []) if (r.decodeMsPerStep) add(peerNames[r.peer] ?? r.peer, r.context, r.decodeMsPerStep);

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#7f7f7f', '#17becf', '#bcbd22'];
const niceMax = (v) => {
  const step = 10 ** Math.floor(Math.log10(v));
  return Math.ceil(v / step) * step;
};
const card = engine.backend ?? 'unknown device';
const parts = [];
const W = 1000;

// Panel 1: latency against context.
const P1 = { x: 70, y: 50, w: 560, h: 300 };
const contexts = [...new Set([...series.values()].flat().map((p) => p.context))].sort((a, b) => a - b);
// transformers is several times slower than the rest: the axis stops at twice the slowest engine point so the others stay readable.
const engineMax = Math.max(...engine.results.filter((r) => r.decodeMsPerStep).map((r) => r.decodeMsPerStep));
const yMax = niceMax(
  Math.max(engineMax, ...[...series.entries()].filter(([n]) => !n.startsWith('transformers')).flatMap(([, ps]) => ps.map((p) => p.ms))) * 1.1,
);
const xAt = (c) => P1.x + (contexts.length === 1 ? P1.w / 2 : ((c - contexts[0]) / (contexts.at(-1) - contexts[0])) * P1.w);
const yAt = (ms) => P1.y + P1.h - (Math.min(ms, yMax) / yMax) * P1.h;
parts.push(
  text(
    P1.x,
    28,
    `Decode step at the ${engine.shape} shape, batch ${engine.results[0]?.batch ?? '?'}, pages of ${engine.pageSize} (${card})`,
    'font-size="15" font-weight="bold"',
  ),
);
parts.push(`<rect x="${P1.x}" y="${P1.y}" width="${P1.w}" height="${P1.h}" fill="none" stroke="#999"/>`);
for (let i = 0; i <= 5; i++) {
  const ms = (yMax / 5) * i;
  parts.push(
    `<line x1="${P1.x}" x2="${P1.x + P1.w}" y1="${yAt(ms)}" y2="${yAt(ms)}" stroke="#eee"/>`,
    text(P1.x - 8, yAt(ms) + 4, ms.toFixed(0), 'text-anchor="end" font-size="11"'),
  );
}
for (const c of contexts) parts.push(text(xAt(c), P1.y + P1.h + 16, `${c / 1024}k`, 'text-anchor="middle" font-size="11"'));
parts.push(text(P1.x + P1.w / 2, P1.y + P1.h + 34, 'context (tokens)', 'text-anchor="middle" font-size="12"'));
parts.push(text(18, P1.y + P1.h / 2, 'ms per step', `font-size="12" transform="rotate(-90 18 ${P1.y + P1.h / 2})" text-anchor="middle"`));
[...series.entries()].forEach(([name, points], i) => {
  const color = COLORS[i % COLORS.length];
  const sorted = [...points].sort((a, b) => a.context - b.context);
  const dashed = !name.startsWith('ArkVale-TS');
  parts.push(
    `<polyline fill="none" stroke="${color}" stroke-width="2"${dashed ? ' stroke-dasharray="6 4"' : ''} points="${sorted.map((p) => `${xAt(p.context).toFixed(1)},${yAt(p.ms).toFixed(1)}`).join(' ')}"/>`,
  );
  for (const p of sorted) {
    parts.push(`<circle cx="${xAt(p.context).toFixed(1)}" cy="${yAt(p.ms).toFixed(1)}" r="3" fill="${color}"/>`);
    // Off the axis: the value is written beside the point (left of it at the right edge, clear of the legend).
    const last = p.context === contexts.at(-1);
    if (p.ms > yMax)
      parts.push(
        text(xAt(p.context) + (last ? -5 : 5), yAt(p.ms) + 12, `${p.ms.toFixed(0)} ms`, `font-size="10" fill="${color}"${last ? ' text-anchor="end"' : ''}`),
      );
  }
  parts.push(
    `<line x1="${P1.x + P1.w + 20}" x2="${P1.x + P1.w + 44}" y1="${P1.y + 10 + i * 18}" y2="${P1.y + 10 + i * 18}" stroke="${color}" stroke-width="2"${dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
  );
  parts.push(text(P1.x + P1.w + 50, P1.y + 14 + i * 18, name, 'font-size="11"'));
});

// Panel 2: per-stage split of the profiled points.
const profiled = engine.results.filter((r) => r.stages);
const P2 = { x: 70, y: 430, w: 860, h: 260 };
let height = P1.y + P1.h + 60;
if (profiled.length) {
  const stages = [
    ['selectMs', 'estimate + select', '#d62728'],
    ['recallMs', 'recall', '#ff7f0e'],
    ['attentionMs', 'paged attention', '#1f77b4'],
    ['restMs', 'the rest (matrix products, norms, launches)', '#bbbbbb'],
  ];
  const sMax = niceMax(Math.max(...profiled.map((r) => r.stages.stepMs)) * 1.05);
  const bar = Math.min(60, (P2.w / profiled.length) * 0.6);
  const yS = (ms) => P2.y + P2.h - (ms / sMax) * P2.h;
  parts.push(text(P2.x, P2.y - 22, 'Where the step goes (profiled run: events around each stage, ms per step)', 'font-size="15" font-weight="bold"'));
  parts.push(`<rect x="${P2.x}" y="${P2.y}" width="${P2.w}" height="${P2.h}" fill="none" stroke="#999"/>`);
  for (let i = 0; i <= 5; i++) {
    const ms = (sMax / 5) * i;
    parts.push(
      `<line x1="${P2.x}" x2="${P2.x + P2.w}" y1="${yS(ms)}" y2="${yS(ms)}" stroke="#eee"/>`,
      text(P2.x - 8, yS(ms) + 4, ms.toFixed(0), 'text-anchor="end" font-size="11"'),
    );
  }
  profiled.forEach((r, i) => {
    const cx = P2.x + ((i + 0.5) * P2.w) / profiled.length;
    let base = 0;
    for (const [key, , color] of stages) {
      const ms = Math.max(0, r.stages[key] ?? 0);
      parts.push(
        `<rect x="${(cx - bar / 2).toFixed(1)}" y="${yS(base + ms).toFixed(1)}" width="${bar.toFixed(1)}" height="${((ms / sMax) * P2.h).toFixed(1)}" fill="${color}"/>`,
      );
      base += ms;
    }
    parts.push(text(cx, yS(base) - 4, `${r.stages.stepMs.toFixed(1)}`, 'text-anchor="middle" font-size="10"'));
    parts.push(text(cx, P2.y + P2.h + 15, label(r), 'text-anchor="middle" font-size="10"'));
    parts.push(text(cx, P2.y + P2.h + 28, `${r.context / 1024}k`, 'text-anchor="middle" font-size="10"'));
  });
  stages.forEach(([, name, color], i) => {
    parts.push(
      `<rect x="${P2.x + i * 215}" y="${P2.y + P2.h + 42}" width="12" height="12" fill="${color}"/>`,
      text(P2.x + i * 215 + 18, P2.y + P2.h + 52, name, 'font-size="11"'),
    );
  });
  height = P2.y + P2.h + 70;
}
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`;
writeFileSync(outFile, svg);
process.stderr.write(`wrote ${outFile}\n`);
