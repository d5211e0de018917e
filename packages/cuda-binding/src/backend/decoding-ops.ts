import type { SamplingParams, Tensor } from '@arkvale/core';
import { invalidArgument } from '@arkvale/core';
import { findArgmax, findSample } from '../generated/index.js';
import type { CudaDevice } from './device.js';
import type { CudaTensor } from './tensor.js';

type LogitsDType = 'f32' | 'f16' | 'bf16';

function logitsOf(d: CudaDevice, t: Tensor, what: string): CudaTensor {
  return d.expect(d.tensor(t, what), what, ['f32', 'f16', 'bf16'], 2);
}

export function argmax(d: CudaDevice, logitsT: Tensor): CudaTensor {
  const logits = logitsOf(d, logitsT, 'argmax logits');
  const [rows, vocab] = logits.shape;
  const out = d.empty([rows], 'i32', 'argmax output');
  d.launch(d.kernels.get('argmax', findArgmax, { dtype: logits.dtype as LogitsDType }), { logits: logits.ptr, out: out.ptr, rows, vocab });
  return out;
}

export function sample(d: CudaDevice, logitsT: Tensor, params: SamplingParams, uniformsT: Tensor): CudaTensor {
  const logits = logitsOf(d, logitsT, 'sample logits');
  const uniforms = d.expect(d.tensor(uniformsT, 'sample uniforms'), 'sample uniforms', ['f32'], 1);
  const [rows, vocab] = logits.shape;
  if (uniforms.shape[0] !== rows) throw invalidArgument(`sample: ${uniforms.shape[0]} uniforms for ${rows} rows`);
  const out = d.empty([rows], 'i32', 'sample output');
  d.launch(d.kernels.get('sample', findSample, { dtype: logits.dtype as LogitsDType }), {
    logits: logits.ptr,
    uniforms: uniforms.ptr,
    out: out.ptr,
    rows,
    vocab,
    temperature: params.temperature,
    topK: params.topK,
    topP: params.topP,
  });
  return out;
}
