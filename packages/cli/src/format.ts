import type { KvStats } from '@arkvale/core';
import { formatBytes } from '@arkvale/cuda-binding';
import type { GenerationTimings } from '@arkvale/engine';

// One byte formatter for every message ("1.50 GiB"): the binding's, which its errors use too.
export { formatBytes };

export function rate(tokens: number, ms: number): string {
  return ms > 0 ? `${((tokens * 1000) / ms).toFixed(1)} tok/s` : 'n/a';
}

export function formatTimings(t: GenerationTimings): string[] {
  const suffixSteps =
    t.suffixTokens > 0
      ? [`then:       ${t.suffixTokens} tokens fed as decode steps in ${(t.suffixMs / 1000).toFixed(2)} s (${rate(t.suffixTokens, t.suffixMs)})`]
      : [];
  const generationSteps = t.decodeSteps - t.suffixTokens;
  return [
    `prompt:     ${t.promptTokens} tokens in ${(t.prefillMs / 1000).toFixed(2)} s (${rate(t.promptTokens, t.prefillMs)})`,
    ...suffixSteps,
    `generation: ${t.generatedTokens} tokens in ${(t.decodeMs / 1000).toFixed(2)} s (${rate(generationSteps, t.decodeMs)})`,
  ];
}

export function formatKv(kv: KvStats): string[] {
  return [
    `KV pages:   ${kv.residentPages} resident (${formatBytes(kv.device.usedBytes)} of ${formatBytes(kv.device.capacity * kv.device.bytesPerPage)} device pool), ` +
      `${kv.hostOnlyPages} only on the host, ${kv.host.used} host backups`,
    `KV moves:   ${kv.recalls} recalls (${formatBytes(kv.bytesToDevice)} to device), ${kv.backups} backups (${formatBytes(kv.bytesToHost)} to host), ` +
      `${kv.evictions} page evictions, ${kv.evictedTokens} tokens dropped`,
  ];
}

/** A plain text table with right-aligned numeric columns. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n') + '\n';
}
