// esbuild settings for the one-file Node bundles of tools/ (pnpm bundle, the GPU
// check): ES modules for Node 20 with a require() for bundled CommonJS, and the kernel
// generator (ts-morph, kernel sources) left out: only `arkvale codegen` needs it.
import { build } from 'esbuild';

export function bundleForNode(entry, outfile) {
  return build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
    banner: { js: "import { createRequire as __arkvaleRequire } from 'node:module'; const require = __arkvaleRequire(import.meta.url);" },
    plugins: [
      {
        name: 'no-kernel-generator',
        setup(b) {
          // Exactly the generator's entry point: @arkvale/kernels-codegen/launch is bundled.
          b.onResolve({ filter: /^@arkvale\/kernels-codegen$/ }, (args) => ({ path: args.path, external: true }));
        },
      },
    ],
  });
}
