export { default } from '../../tools/vitest/package-config.ts';
