/** What the package's build left on this machine, for tests that adapt to it. */
import { fileURLToPath } from 'node:url';
import { readBuildStatus } from '../load.js';

export const packageDir = fileURLToPath(new URL('../../', import.meta.url));
export const buildStatus = readBuildStatus(fileURLToPath(new URL('../../build/status.json', import.meta.url)));
/** True when the last build compiled the addon (nvcc was found). */
export const addonBuilt = buildStatus?.built === true;
export const nativeTestsBinary = fileURLToPath(new URL('../../build/Release/arkvale_native_tests', import.meta.url));
