import { describe, expect, it } from 'vitest';
import type { KvGeometry } from '../config.js';
import { ReferenceBackend } from '../reference/reference-backend.js';
import { checkConsistency } from './consistency.js';
import { KvCache } from './kv-cache.js';

const geometry: KvGeometry = { numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 8, pageSize: 4, bytesPerElement: 4 };

describe('caches sharing one page store', () => {
  it('draw on the same pools and are checked together', () => {
    const backend = new ReferenceBackend();
    const pools = { devicePages: 40, hostPages: 40 };
    const full = new KvCache({ geometry, options: { policy: 'full', ...pools }, backend });
    const ark = new KvCache({ geometry, options: { policy: 'arkvale', budgetTokens: 12, ...pools }, backend, store: full.store });
    const a = full.admitChunked(10);
    const b = ark.admitChunked(10);
    full.beginPrefillChunk(a, 10);
    ark.beginPrefillChunk(b, 6);
    expect(full.store.devicePool.used).toBe(2 * 3 + 2 * 2);
    expect(ark.stats().device.used).toBe(full.stats().device.used);
    expect(() => checkConsistency(full)).toThrow(/slots in use/);
    checkConsistency([full, ark]);
    full.free(a);
    ark.free(b);
    expect(full.store.devicePool.used).toBe(0);
  });

  it('refuses a store of another geometry, backend or size', () => {
    const backend = new ReferenceBackend();
    const base = new KvCache({ geometry, options: { policy: 'full', devicePages: 8, hostPages: 8 }, backend });
    const share = (g: KvGeometry, b = backend, devicePages = 8) =>
      new KvCache({ geometry: g, options: { policy: 'full', devicePages, hostPages: 8 }, backend: b, store: base.store });
    expect(() => share({ ...geometry, pageSize: 8 })).toThrow(/geometry/);
    expect(() => share(geometry, new ReferenceBackend())).toThrow(/backend/);
    expect(() => share(geometry, backend, 9)).toThrow(/device/);
    expect(share(geometry).store).toBe(base.store);
  });
});
