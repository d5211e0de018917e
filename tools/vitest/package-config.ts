/** The test settings every package shares (each package's vitest.config.ts re-exports them). */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    testTimeout: 30_000,
    globalSetup: [fileURLToPath(new URL('./temp-root.ts', import.meta.url))],
  },
});
