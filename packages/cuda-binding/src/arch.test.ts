import { describe, expect, it } from 'vitest';
import { archsRunOn, bestDevice, parseArchLabel } from './arch.js';

describe('which GPUs a build runs on', () => {
  const all = ['sm_80', 'sm_86', 'sm_89', 'sm_90', 'compute_90'];

  it('parses arch labels', () => {
    expect(parseArchLabel('sm_86')).toEqual({ kind: 'sass', major: 8, minor: 6 });
    expect(parseArchLabel('compute_90')).toEqual({ kind: 'ptx', major: 9, minor: 0 });
    expect(parseArchLabel('sm_120')).toEqual({ kind: 'sass', major: 12, minor: 0 });
    expect(parseArchLabel('sm_90a')).toEqual({ kind: 'sass', major: 9, minor: 0 });
    expect(parseArchLabel('hopper')).toBeUndefined();
  });

  it('SASS runs on the same major with an equal or higher minor; PTX on anything newer', () => {
    expect(archsRunOn(all, { major: 8, minor: 0 })).toBe(true);
    expect(archsRunOn(all, { major: 8, minor: 7 })).toBe(true); // Orin: sm_86 code
    expect(archsRunOn(all, { major: 12, minor: 0 })).toBe(true); // PTX, compiled at load time
    expect(archsRunOn(['sm_90', 'compute_90'], { major: 8, minor: 6 })).toBe(false);
    expect(archsRunOn(['sm_86', 'compute_86'], { major: 8, minor: 0 })).toBe(false);
    expect(archsRunOn(['sm_80'], { major: 9, minor: 0 })).toBe(false);
  });

  it('prefers the highest compute capability, then the most memory', () => {
    const d = (index: number, major: number, minor: number, totalBytes: number) => ({ index, major, minor, totalBytes });
    expect(bestDevice([d(0, 8, 6, 24e9), d(1, 9, 0, 80e9), d(2, 9, 0, 141e9)])?.index).toBe(2);
    expect(bestDevice([d(0, 7, 5, 16e9), d(1, 8, 0, 40e9)])?.index).toBe(1);
    expect(bestDevice([d(0, 9, 0, 80e9), d(1, 9, 0, 80e9)])?.index).toBe(0);
    expect(bestDevice([])).toBeUndefined();
  });
});
