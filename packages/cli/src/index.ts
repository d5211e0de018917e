export { runCli } from './program.js';
export type { CliIo } from './io.js';
export { buildPasskeyPrompt, answerMatches, depths, readFiller } from './passkey/prompt.js';
export type { PasskeyPrompt } from './passkey/prompt.js';
export { evaluatePasskey } from './passkey/evaluate.js';
export type { PasskeyEvalOptions, PasskeyRow, PromptResult } from './passkey/evaluate.js';
