// What the GPU can do, as the benches compare against: device time of a piece of work
// between events, the device-to-device copy rate (the HBM floor's rate) and cuBLAS's
// dense f16 rate. Each takes the CUDA addon (CudaBackend.addon); the rates are undefined
// where the addon lacks what they need (another backend, no cuBLAS).

/** Milliseconds of `work` on the compute stream, between events after three warm-up runs, over `reps` runs. */
export function deviceMs(addon, work, reps = 10) {
  for (let i = 0; i < 3; i++) work();
  addon.synchronize();
  const t0 = addon.recordEvent(0);
  for (let i = 0; i < reps; i++) work();
  const t1 = addon.recordEvent(0);
  addon.synchronize();
  const ms = addon.elapsedMs(t0, t1);
  addon.releaseEvent(t0);
  addon.releaseEvent(t1);
  return ms / reps;
}

/** Device-to-device copy rate in bytes/ms (bytes read plus written), through the addon's cudaMemcpyAsync. */
export function copyRate(addon) {
  if (typeof addon?.copy !== 'function') return undefined;
  const bytes = 1 << 30;
  const src = addon.alloc(bytes, 'copy-rate source');
  const dst = addon.alloc(bytes, 'copy-rate target');
  try {
    return (2 * bytes) / deviceMs(addon, () => addon.copy(dst, src, bytes, 0, 'copy-rate'));
  } finally {
    addon.free(src);
    addon.free(dst);
  }
}

/** cuBLAS's dense f16 rate on this card (8192^3, f32 accumulation), in FLOP/ms: what prefill is compared with. */
export function gemmRate(addon) {
  if (typeof addon?.gemm !== 'function' || !addon.blasStatus().loaded) return undefined;
  const n = 8192;
  const [a, b, c] = ['A', 'B', 'C'].map((x) => addon.alloc(n * n * 2, `gemm-rate ${x}`));
  try {
    const gemm = () =>
      addon.gemm({
        transA: false,
        transB: false,
        m: n,
        n,
        k: n,
        a,
        aType: 'f16',
        lda: n,
        b,
        bType: 'f16',
        ldb: n,
        c,
        cType: 'f16',
        ldc: n,
        alpha: 1,
        beta: 0,
        stream: 0,
        what: 'gemm-rate',
      });
    return (2 * n ** 3) / deviceMs(addon, gemm);
  } finally {
    for (const x of [a, b, c]) addon.free(x);
  }
}
