import { fileURLToPath } from 'node:url';

/** The bundled 13.5M-parameter model. */
export const MODEL_DIR = fileURLToPath(new URL('../../../../models/tiny-retrieval', import.meta.url));
