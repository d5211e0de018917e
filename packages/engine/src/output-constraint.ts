import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Tokenizer } from '@arkvale/model-llama';
import { EngineError } from './errors.js';

/** Output the sampler is held to: any JSON object, or JSON valid under a JSON Schema. */
export type OutputConstraint = { readonly type: 'json_object' } | { readonly type: 'json_schema'; readonly schema: Record<string, unknown> };

/*
 * Constrained sampling (docs/DESIGN.md, "Structured output"): at each step only tokens
 * that keep the output a valid prefix of the grammar's language may be drawn. The
 * grammar engine is XGrammar, through its maintained npm build (@mlc-ai/web-xgrammar,
 * WebAssembly, the one WebLLM uses): JSON Schema compiled against the model's
 * vocabulary, then a matcher per request that gives the next token's bitmask and
 * accepts the token drawn.
 */

interface Matcher {
  getNextTokenBitmask(): Promise<Int32Array>;
  acceptToken(id: number): boolean;
  isTerminated(): boolean;
  dispose?(): void;
}

interface Compiler {
  compileJSONSchema(schema: string, anyWhitespace?: boolean, indent?: number, separators?: [string, string], strictMode?: boolean): Promise<unknown>;
}

interface XGrammar {
  TokenizerInfo: { createTokenizerInfo(vocab: string[], type: string, prependSpace: boolean, vocabSize: number, stop: number[]): Promise<unknown> };
  GrammarCompiler: { createGrammarCompiler(info: unknown): Promise<Compiler> };
  GrammarMatcher: { createGrammarMatcher(grammar: unknown): Promise<Matcher> };
}

let loading: Promise<XGrammar> | null = null;

/**
 * The package is a UMD script in a package marked as ES modules: on Node its loader
 * reads `require` and `__filename`, which an ES module does not have, and it defines
 * the global `xgrammar` instead of exporting. They are given while it loads and starts
 * its WebAssembly module (at its first call), and taken away again.
 */
function loadXGrammar(): Promise<XGrammar> {
  loading ??= (async () => {
    const req = createRequire(import.meta.url);
    const file = req.resolve('@mlc-ai/web-xgrammar');
    const g = globalThis as Record<string, unknown>;
    const saved = { require: g.require, __filename: g.__filename, __dirname: g.__dirname };
    Object.assign(g, { require: req, __filename: file, __dirname: dirname(file) });
    try {
      await import(pathToFileURL(file).href);
      const x = g.xgrammar as XGrammar | undefined;
      if (!x?.GrammarMatcher) throw new EngineError('engine_failed', 'the grammar engine (@mlc-ai/web-xgrammar) did not load');
      // Its WebAssembly module starts at the first call, and reads them then: start it now.
      await x.TokenizerInfo.createTokenizerInfo(['a'], 'raw', false, 1, []);
      return x;
    } finally {
      Object.assign(g, saved);
    }
  })();
  return loading;
}

/** The model's vocabulary compiled for grammars (once per model). */
export class GrammarCompilerCache {
  private compiler: Promise<{ x: XGrammar; compiler: Compiler }> | null = null;

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly vocabSize: number,
    private readonly eosIds: readonly number[],
  ) {}

  private get(): Promise<{ x: XGrammar; compiler: Compiler }> {
    this.compiler ??= (async () => {
      const x = await loadXGrammar();
      const vocab = Array.from({ length: this.tokenizer.vocabSize }, (_, id) => this.tokenizer.idToToken(id) ?? '');
      const info = await x.TokenizerInfo.createTokenizerInfo(vocab, this.tokenizer.vocabType, false, this.vocabSize, [...this.eosIds]);
      return { x, compiler: await x.GrammarCompiler.createGrammarCompiler(info) };
    })();
    return this.compiler;
  }

  /** A matcher for one request's output; refuses a schema the grammar engine cannot compile. */
  async matcher(c: OutputConstraint): Promise<ConstrainedOutput> {
    const { x, compiler } = await this.get();
    // OpenAI's json_object: any JSON object. No free whitespace between tokens: a model could pad forever.
    const schema = c.type === 'json_object' ? { type: 'object' } : c.schema;
    let grammar: unknown;
    try {
      // On one line (indent -1): fewer tokens than pretty-printed JSON. json_object allows any properties.
      grammar = await compiler.compileJSONSchema(JSON.stringify(schema), false, -1, undefined, c.type === 'json_schema');
    } catch (e) {
      throw new EngineError('invalid_request', `the JSON schema cannot be used: ${e instanceof Error ? e.message : String(e)}`, 'response_format');
    }
    const out = new ConstrainedOutput(await x.GrammarMatcher.createGrammarMatcher(grammar));
    await out.refresh();
    return out;
  }
}

/** One request's grammar state: the mask of the next token, refreshed after each token accepted. */
export class ConstrainedOutput {
  private mask: Int32Array | null = null;

  constructor(private readonly matcher: Matcher) {}

  /** Whether the next token's mask is known (a step may sample this request). */
  get ready(): boolean {
    return this.mask !== null;
  }

  refresh(): Promise<void> {
    this.mask = null;
    return this.matcher.getNextTokenBitmask().then(
      (m) => {
        this.mask = m;
      },
      () => {
        // A matcher that cannot say leaves the request unready: it sits out every step until aborted.
      },
    );
  }

  /** Sets every token the grammar does not allow next to -Infinity (logits read to the host). */
  apply(logits: Float32Array): Float32Array {
    const mask = this.mask;
    if (!mask) throw new EngineError('engine_failed', 'a constrained request was sampled before its mask was ready');
    for (let id = 0; id < logits.length; id++) if (((mask[id >>> 5] >>> (id & 31)) & 1) === 0) logits[id] = Number.NEGATIVE_INFINITY;
    return logits;
  }

  /** Whether the output is complete (the grammar took its end). */
  get done(): boolean {
    return this.matcher.isTerminated();
  }

  /** Takes the token drawn; the next mask is computed in the background. */
  accept(tokenId: number): void {
    if (!this.matcher.acceptToken(tokenId)) throw new EngineError('engine_failed', `the grammar refused token ${tokenId}, which its mask allowed`);
    if (!this.matcher.isTerminated()) void this.refresh();
  }

  dispose(): void {
    this.matcher.dispose?.();
  }
}
