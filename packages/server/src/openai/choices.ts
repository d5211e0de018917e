import type { AsyncEngine, DoneEvent, EngineEvent, PositionLogprobs, RequestHandle } from '@arkvale/engine';
import type { SseWriter } from './sse.js';
import { parseToolCall, type ToolDef } from './tools.js';

/*
 * The choices of one OpenAI request, each an engine request: a completions batch gives
 * one per prompt. Non-streamed, they are gathered and returned in order; streamed, their
 * chunks go out as they come, each naming its choice's index, through one writer.
 */

export type Kind = 'chat' | 'completion';

/** What the client asked to see beside the text. */
export interface ChoiceOptions {
  readonly kind: Kind;
  /** Completions: the prompt's text goes first (`echo`). */
  readonly echo: boolean;
  /** Log-probabilities of each token: completions (`logprobs: N`) or chat (`logprobs: true`); null: none. */
  readonly logprobs: number | null;
  readonly withIds: boolean;
  /** Chat: the tools a reply may call (a reply that is a call to one comes back as tool_calls). */
  readonly tools: readonly ToolDef[];
  /** Chat, a call required: the text is not streamed, the call goes out whole at the end. */
  readonly holdText: boolean;
}

export interface ChoiceRun {
  readonly index: number;
  readonly handle: RequestHandle;
}

/** One position as the client sees it: a token, its log-probability (null for the prompt's first) and the most likely ones. */
interface Scored {
  readonly tokenId: number;
  readonly logprob: number | null;
  readonly top: PositionLogprobs['top'] | null;
}

const finishReason = (r: DoneEvent['finishReason']) => (r === 'eos' ? 'stop' : r);

export function usageOf(done: readonly DoneEvent[]) {
  const sum = (f: (d: DoneEvent) => number) => done.reduce((n, d) => n + f(d), 0);
  const prompt = sum((d) => d.usage.promptTokens);
  const completion = sum((d) => d.usage.completionTokens);
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: sum((d) => d.usage.cachedTokens) },
  };
}

/** The prompt's positions as echo shows them: its first token unscored, then each scored one. */
function promptPositions(handle: RequestHandle, scored: readonly PositionLogprobs[] | undefined): Scored[] {
  if (handle.promptIds.length === 0) return [];
  return [{ tokenId: handle.promptIds[0], logprob: null, top: null }, ...(scored ?? []).map((p) => ({ tokenId: p.tokenId, logprob: p.logprob, top: p.top }))];
}

/** OpenAI's completions logprobs: tokens, their log-probabilities, the top ones by text, and text offsets from `offset`. */
function completionLogprobs(engine: AsyncEngine, positions: readonly Scored[], offset: number) {
  const tokens = positions.map((p) => engine.tokenText(p.tokenId));
  const textOffset: number[] = [];
  for (const t of tokens) {
    textOffset.push(offset);
    offset += t.length;
  }
  return {
    tokens,
    token_logprobs: positions.map((p) => p.logprob),
    top_logprobs: positions.map((p) => (p.top ? Object.fromEntries(p.top.map((t) => [engine.tokenText(t.tokenId), t.logprob])) : null)),
    text_offset: textOffset,
  };
}

/** OpenAI's chat logprobs: each token with its bytes and its top alternatives. */
function chatLogprobs(engine: AsyncEngine, positions: readonly Scored[]) {
  const entry = (tokenId: number, logprob: number) => {
    const token = engine.tokenText(tokenId);
    return { token, logprob, bytes: [...Buffer.from(token, 'utf8')] };
  };
  return {
    content: positions.map((p) => ({ ...entry(p.tokenId, p.logprob ?? 0), top_logprobs: (p.top ?? []).map((t) => entry(t.tokenId, t.logprob)) })),
  };
}

function logprobsOf(engine: AsyncEngine, o: ChoiceOptions, positions: readonly Scored[], offset: number) {
  return o.kind === 'chat' ? chatLogprobs(engine, positions) : completionLogprobs(engine, positions, offset);
}

const generated = (ev: EngineEvent & { type: 'token' }): Scored => ({
  tokenId: ev.tokenId,
  logprob: ev.logprobs?.logprob ?? null,
  top: ev.logprobs?.top ?? null,
});

/** Runs one choice to its end (not streamed): its text, logprobs and done event. */
async function collect(engine: AsyncEngine, o: ChoiceOptions, run: ChoiceRun) {
  const echoed = o.echo ? engine.decode(run.handle.promptIds) : '';
  let text = '';
  const ids: number[] = [];
  const positions: Scored[] = [];
  let done: DoneEvent | null = null;
  for await (const ev of run.handle) {
    text += ev.text;
    if (ev.type === 'token') {
      ids.push(ev.tokenId);
      positions.push(generated(ev));
    } else done = ev;
  }
  if (!done) return null;
  const scored = o.echo ? [...promptPositions(run.handle, done.promptLogprobs), ...positions] : positions;
  const logprobs = o.logprobs === null ? null : logprobsOf(engine, o, scored, 0);
  const tokenIds = o.withIds ? { token_ids: ids } : {};
  const calls = o.tools.length ? parseToolCall(text, o.tools) : null;
  const reason = calls ? 'tool_calls' : finishReason(done.finishReason);
  const message = calls ? { role: 'assistant', content: null, tool_calls: calls } : { role: 'assistant', content: text };
  const choice =
    o.kind === 'chat'
      ? { index: run.index, message, logprobs, finish_reason: reason, ...tokenIds }
      : { index: run.index, text: echoed + text, logprobs, finish_reason: reason, ...tokenIds };
  return { choice, done };
}

/** Every choice, not streamed: the choices in order and their done events (null when one ended without one). */
export async function collectChoices(engine: AsyncEngine, o: ChoiceOptions, runs: readonly ChoiceRun[]) {
  const results = await Promise.all(runs.map((run) => collect(engine, o, run)));
  if (results.some((r) => r === null)) return null;
  return { choices: results.map((r) => r!.choice), done: results.map((r) => r!.done) };
}

/**
 * Streams every choice through `sse`, each chunk naming its index; the chunks of one
 * choice stay in order, and chunks of different choices interleave as they come.
 * Returns each choice's done event (or throws the engine's error).
 */
export async function streamChoices(
  engine: AsyncEngine,
  o: ChoiceOptions,
  runs: readonly ChoiceRun[],
  sse: SseWriter,
  meta: object,
  includeUsage: boolean,
): Promise<DoneEvent[]> {
  const object = o.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  const usage = includeUsage ? { usage: null } : {};
  let queue = Promise.resolve();
  const send = (data: unknown) => (queue = queue.then(() => (sse.open ? sse.data(data) : undefined)));
  const chunk = (index: number, text: string, finish: string | null, extra: { role?: boolean; token?: number | null; logprobs?: unknown } = {}) => {
    const tokenIds = o.withIds ? { token_ids: extra.token === undefined || extra.token === null ? [] : [extra.token] } : {};
    const logprobs = extra.logprobs ?? null;
    const choice =
      o.kind === 'chat'
        ? { index, delta: finish && !text ? {} : { ...(extra.role ? { role: 'assistant' } : {}), content: text }, logprobs, finish_reason: finish, ...tokenIds }
        : { index, text, logprobs, finish_reason: finish, ...tokenIds };
    return send({ ...meta, object, choices: [choice], ...usage });
  };
  const one = async (run: ChoiceRun): Promise<DoneEvent> => {
    let offset = 0;
    let echoed = false;
    // The prompt first when echoed: with its log-probabilities, which come with the first token (or the done event).
    const echo = (scored: readonly PositionLogprobs[] | undefined) => {
      if (!o.echo || echoed) return;
      echoed = true;
      const text = engine.decode(run.handle.promptIds);
      const logprobs = o.logprobs === null ? null : logprobsOf(engine, o, promptPositions(run.handle, scored), 0);
      offset = text.length;
      chunk(run.index, text, null, { logprobs });
    };
    if (o.kind === 'chat') chunk(run.index, '', null, { role: true });
    let held = '';
    for await (const ev of run.handle) {
      if (!sse.open) break;
      if (o.holdText) {
        // A required call goes out whole, as one tool_calls delta, once its JSON is complete.
        held += ev.text;
        if (ev.type === 'token') continue;
        const calls = parseToolCall(held, o.tools);
        if (calls) {
          send({
            ...meta,
            object,
            choices: [{ index: run.index, delta: { tool_calls: calls.map((c, i) => ({ index: i, ...c })) }, logprobs: null, finish_reason: null }],
            ...usage,
          });
          send({ ...meta, object, choices: [{ index: run.index, delta: {}, logprobs: null, finish_reason: 'tool_calls' }], ...usage });
        } else {
          if (held) chunk(run.index, held, null);
          chunk(run.index, '', finishReason(ev.finishReason));
        }
        await queue;
        return ev;
      }
      if (ev.type === 'token') {
        echo(ev.promptLogprobs);
        // One chunk per token, as OpenAI streams: its text may be empty (held back for a stop
        // string, or a model of token ids only), and clients time tokens by chunks.
        const logprobs = o.logprobs === null ? null : logprobsOf(engine, o, [generated(ev)], offset);
        offset += ev.text.length;
        chunk(run.index, ev.text, null, { token: ev.tokenId, logprobs });
        continue;
      }
      echo(ev.promptLogprobs);
      if (ev.text) chunk(run.index, ev.text, null);
      chunk(run.index, '', finishReason(ev.finishReason));
      await queue;
      return ev;
    }
    await queue;
    throw new Error('the stream ended before its done event');
  };
  const done = await Promise.all(runs.map(one));
  if (includeUsage) send({ ...meta, object, choices: [], usage: usageOf(done) });
  await queue;
  return done;
}
