import { randomUUID } from 'node:crypto';
import { Ajv } from 'ajv';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { asEngineError } from '@arkvale/engine';
import type { AsyncEngine, EngineRequest } from '@arkvale/engine';
import { collectChoices, streamChoices, usageOf, type ChoiceOptions, type ChoiceRun, type Kind } from './choices.js';
import { callableTools, callSchema, mustCall, type ToolDef } from './tools.js';
import { handleRouteError, sendError } from './errors.js';
import {
  chatMaxTokens,
  chatFormat,
  chatScoring,
  checkModel,
  completionPrompts,
  completionScoring,
  engineRequest,
  type ChatBody,
  type CompletionBody,
} from './request-map.js';
import { chatBody, completionBody, modelParams } from './schemas.js';
import { SseWriter } from './sse.js';

export interface OpenAiRoutesOptions {
  /** The engine, or a getter that returns null while it loads (requests then get 503). */
  readonly engine: AsyncEngine | (() => AsyncEngine | null);
  /** When set, every route needs `Authorization: Bearer <apiKey>` (401 otherwise). */
  readonly apiKey?: string;
  /** Largest request body in bytes (413 beyond). Default 1 MiB. */
  readonly bodyLimit?: number;
}

function badBody(message: string): Error {
  return Object.assign(new Error(message), { statusCode: 400, code: 'FST_ERR_CTP_INVALID_JSON' });
}

/** JSON bodies must be valid UTF-8 (a lenient decode would turn bad bytes into U+FFFD) and plain data. */
function parseJson(_req: FastifyRequest, body: Buffer, done: (err: Error | null, value?: unknown) => void): void {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return done(badBody('the request body is not valid UTF-8'));
  }
  if (text.trim() === '') return done(badBody('the request body is empty; expected a JSON object'));
  try {
    done(
      null,
      JSON.parse(text, (key, value: unknown) => {
        if (key === '__proto__') throw new SyntaxError('"__proto__" is not allowed as a key');
        return value;
      }),
    );
  } catch (e) {
    done(badBody(`the request body is not valid JSON: ${(e as Error).message}`));
  }
}

/**
 * The OpenAI routes as a Fastify plugin: POST /completions, POST /chat/completions
 * (streaming over server-sent events or not), GET /models. Register it under a prefix
 * (`{ prefix: '/v1' }`). Every body is checked against its JSON schema (no type
 * coercion), every error has OpenAI's shape, and a client that goes away aborts its
 * request, freeing its pages.
 */
export const openaiRoutes: FastifyPluginAsync<OpenAiRoutesOptions> = async (app, opts) => {
  const getEngine = typeof opts.engine === 'function' ? opts.engine : () => opts.engine as AsyncEngine;
  const ajv = new Ajv({ coerceTypes: false, useDefaults: false, removeAdditional: false, allErrors: false, strict: false });
  app.setValidatorCompiler(({ schema }) => ajv.compile(schema));
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: opts.bodyLimit ?? 1 << 20 }, parseJson);
  app.setErrorHandler((e, _req, reply) => handleRouteError(e as Error, reply));
  app.setNotFoundHandler((req, reply) => sendError(reply, 404, `Unknown request URL: ${req.method} ${req.url}`, null, 'unknown_url'));
  if (opts.apiKey !== undefined) {
    const expected = `Bearer ${opts.apiKey}`;
    app.addHook('onRequest', async (req, reply) => {
      if (req.headers.authorization !== expected) return sendError(reply, 401, 'Incorrect API key provided', null, 'invalid_api_key');
    });
  }

  const ready = (reply: FastifyReply): AsyncEngine | null => {
    const engine = getEngine();
    if (!engine) sendError(reply, 503, 'the model is still loading; retry shortly', null, 'model_loading');
    return engine;
  };

  app.get('/models', async (_req, reply) => {
    const engine = ready(reply);
    if (!engine) return reply;
    return { object: 'list', data: [modelCard(engine)] };
  });
  app.get<{ Params: { model: string } }>('/models/:model', { schema: { params: modelParams } }, async (req, reply) => {
    const engine = ready(reply);
    if (!engine) return reply;
    if (req.params.model !== engine.model.id) return sendError(reply, 404, `The model \`${req.params.model}\` does not exist`, 'model', 'model_not_found');
    return modelCard(engine);
  });
  app.post<{ Body: CompletionBody }>('/completions', { schema: { body: completionBody } }, (req, reply) => generate('completion', req, reply));
  app.post<{ Body: ChatBody }>('/chat/completions', { schema: { body: chatBody } }, (req, reply) => generate('chat', req, reply));

  async function generate(kind: Kind, req: FastifyRequest<{ Body: CompletionBody | ChatBody }>, reply: FastifyReply): Promise<unknown> {
    const engine = ready(reply);
    if (!engine) return reply;
    const body = req.body;
    try {
      checkModel(body.model, engine.model.id);
    } catch (e) {
      return sendError(reply, 404, (e as Error).message, 'model', 'model_not_found');
    }
    const controller = new AbortController();
    // The client went away before the response ended: abort, which frees the pages now.
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) controller.abort();
    });
    let requests: EngineRequest[];
    let tools: ToolDef[] = [];
    let callRequired = false;
    try {
      if (kind === 'chat') {
        const chat = body as ChatBody;
        const given = chat.tools ?? [];
        tools = callableTools(given, chat.tool_choice ?? undefined);
        const messages = chat.messages.map((m) => ({ ...m, content: m.content ?? '' }));
        const ids = engine.encodeChat(messages, given.length ? { tools: given } : undefined);
        // A required call is held to the call's JSON by constrained sampling.
        callRequired = mustCall(given, chat.tool_choice ?? undefined);
        const format = callRequired ? { responseFormat: { type: 'json_schema' as const, schema: callSchema(tools) } } : chatFormat(chat);
        requests = [
          {
            ...engineRequest(body, ids, chatMaxTokens(chat, ids.length, engine.model.maxPositions), controller.signal),
            ...chatScoring(chat),
            ...format,
          },
        ];
      } else {
        const completion = body as CompletionBody;
        const scoring = completionScoring(completion);
        requests = completionPrompts(completion).map((prompt) => ({ ...engineRequest(body, prompt, body.max_tokens, controller.signal), ...scoring }));
      }
    } catch (e) {
      throw asEngineError(e, kind === 'chat' ? 'messages' : 'prompt');
    }
    // n choices of each prompt: the first prefills it, the others fork its sequence
    // (sharePromptWith), each with its own seed (seed + j when a seed is given). A batch
    // is checked whole before anything is queued.
    const n = body.n ?? 1;
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
    const all = requests.flatMap((request, p) =>
      Array.from({ length: n }, (_, j): EngineRequest => {
        const seed = request.seed === undefined ? undefined : request.seed + j;
        return { ...request, id: `${id}/${p * n + j}`, seed, ...(j > 0 ? { sharePromptWith: `${id}/${p * n}` } : {}) };
      }),
    );
    let runs: ChoiceRun[];
    try {
      // Queued together, so that the choices of one prompt find its first still prefilling.
      runs = engine.submitAll(all).map((handle, index) => ({ index, handle }));
    } catch (e) {
      controller.abort();
      throw asEngineError(e, kind === 'chat' ? 'messages' : 'prompt');
    }
    const o: ChoiceOptions = {
      kind,
      echo: kind === 'completion' && (body as CompletionBody).echo === true,
      // What chatScoring / completionScoring asked of the engine (the same for every prompt of a batch).
      logprobs: requests[0].logprobs ?? null,
      withIds: body.return_token_ids === true,
      tools,
      holdText: callRequired,
    };
    const meta = { id, created: Math.floor(Date.now() / 1000), model: engine.model.id };
    if (!body.stream) {
      const result = await collectChoices(engine, o, runs);
      if (!result || reply.raw.destroyed) return reply;
      return { ...meta, object: kind === 'chat' ? 'chat.completion' : 'text_completion', choices: result.choices, usage: usageOf(result.done) };
    }
    reply.hijack();
    const sse = new SseWriter(reply.raw);
    try {
      await streamChoices(engine, o, runs, sse, meta, body.stream_options?.include_usage === true);
    } catch (e) {
      controller.abort();
      const err = asEngineError(e);
      await sse.data({ error: { message: err.message, type: 'server_error', param: null, code: err.code } });
    }
    await sse.data('[DONE]');
    sse.end();
    return reply;
  }
};

function modelCard(engine: AsyncEngine) {
  return { id: engine.model.id, object: 'model', created: 0, owned_by: 'arkvale', max_model_len: engine.model.maxPositions };
}
