// The options the model-shape benches share, written once (parseCommand specs and value parsers, tools/lib/args.mjs).
import { BACKENDS, GPU_DTYPES } from '@arkvale/engine';
import { KV_DTYPES, POLICY_NAMES } from '@arkvale/core';
import { LLAMA_SHAPES } from '@arkvale/model-llama';
import { oneOf, UsageError } from '../lib/args.mjs';

const shapes = Object.keys(LLAMA_SHAPES);

/** --shape NAME: a random-weight model shape (default llama2-7b). */
export const shapeOption = { type: 'string', value: 'NAME', default: 'llama2-7b', parse: oneOf(...shapes), help: `the model shape (${shapes.join(', ')})` };

/** --backend NAME (loadBackend's names; default auto). */
export const backendOption = { type: 'string', value: 'NAME', default: 'auto', parse: oneOf(...BACKENDS), help: BACKENDS.join(', ') };

/** --dtype TYPE on CUDA. */
export const dtypeOption = { type: 'string', value: 'TYPE', parse: oneOf(...GPU_DTYPES), help: `${GPU_DTYPES.join(' or ')} on CUDA (default f16)` };

/** --kv-dtype TYPE: how KV pages store K and V (core's KV_DTYPES; default auto, the backend's dtype). */
export const kvDtypeOption = {
  type: 'string',
  value: 'TYPE',
  default: 'auto',
  parse: oneOf(...KV_DTYPES),
  help: "KV pages: auto (the backend's dtype) or fp8 (e4m3, a scale byte per token and KV head)",
};

/** --tensor-parallel N: the model split over N ranks, one per GPU where there are enough (RankWorkers), else sharing the backend (bench-model.mjs). */
export const tensorParallelOption = {
  type: 'string',
  value: 'N',
  default: '1',
  parse: (text) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`--tensor-parallel: a whole number of ranks >= 1, got "${text}"`);
    return n;
  },
  help: "ranks the model's heads, MLP and vocabulary are split over: one per GPU where there are enough, else sharing the backend (1: none)",
};

/** `policy[@budget]`: a cache plan (a --plans item). */
export const planSpec = (p, flag) => {
  const [policy, budget] = p.split('@');
  if (!POLICY_NAMES.includes(policy)) throw new UsageError(`${flag}: plan ${p}: unknown policy ${policy} (${POLICY_NAMES.join(', ')})`);
  if (budget !== undefined && !(Number.isInteger(Number(budget)) && Number(budget) > 0))
    throw new UsageError(`${flag}: plan ${p}: the budget must be a whole number of tokens`);
  return { policy, budgetTokens: budget ? Number(budget) : undefined };
};

/** A decode point, BATCHxCONTEXT[@BUDGET] (4x30720, 64x2048@1024): `batch` prompts of `context` tokens, each generating 96, under the plan's policy at BUDGET tokens (default the plan's). */
export const pointSpec = (text, flag) => {
  const m = /^(\d+)x(\d+)(?:@(\d+))?$/.exec(text);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new UsageError(`${flag}: a point is BATCHxCONTEXT[@BUDGET] (4x30720), got "${text}"`);
  return { batch: Number(m[1]), context: Number(m[2]), maxTokens: 96, ...(m[3] ? { budgetTokens: Number(m[3]) } : {}) };
};

/** A request rate per second, or `inf` (all at once). */
export const rateSpec = (text, flag) => {
  if (text === 'inf') return Infinity;
  const n = Number(text);
  if (!(n > 0 && Number.isFinite(n))) throw new UsageError(`${flag}: expected a rate per second above 0 or inf, got "${text}"`);
  return n;
};

/** The serving benchmark's workloads (serving-workloads.mjs). */
export const WORKLOADS = ['long', 'shared-doc', 'multi-turn'];
