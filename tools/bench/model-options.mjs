// The options every model-shape bench takes, written once (parseCommand specs, tools/lib/args.mjs).
import { BACKENDS, GPU_DTYPES } from '@arkvale/engine';
import { LLAMA_SHAPES } from '@arkvale/model-llama';
import { oneOf } from '../lib/args.mjs';

const shapes = Object.keys(LLAMA_SHAPES);

/** --shape NAME: a random-weight model shape (default llama2-7b). */
export const shapeOption = { type: 'string', value: 'NAME', default: 'llama2-7b', parse: oneOf(...shapes), help: `the model shape (${shapes.join(', ')})` };

/** --backend NAME (loadBackend's names; default auto). */
export const backendOption = { type: 'string', value: 'NAME', default: 'auto', parse: oneOf(...BACKENDS), help: BACKENDS.join(', ') };

/** --dtype TYPE on CUDA. */
export const dtypeOption = { type: 'string', value: 'TYPE', parse: oneOf(...GPU_DTYPES), help: `${GPU_DTYPES.join(' or ')} on CUDA (default f16)` };
