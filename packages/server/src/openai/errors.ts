import type { FastifyError, FastifyReply } from 'fastify';
import { EngineError } from '@arkvale/engine';
import { explainValidation } from './validation.js';

/** The error body of the OpenAI API. */
export interface OpenAiErrorBody {
  readonly error: { readonly message: string; readonly type: string; readonly param: string | null; readonly code: string | null };
}

export function errorBody(message: string, type: string, param: string | null = null, code: string | null = null): OpenAiErrorBody {
  return { error: { message, type, param, code } };
}

const TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  404: 'invalid_request_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  429: 'rate_limit_error',
  503: 'service_unavailable',
};

/** Sends an OpenAI-shaped error. */
export function sendError(reply: FastifyReply, status: number, message: string, param: string | null = null, code: string | null = null): FastifyReply {
  return reply
    .code(status)
    .type('application/json')
    .send(errorBody(message, TYPES[status] ?? 'server_error', param, code));
}

/** The schema and the value a validation error is about (`context` is Fastify's: body, params, querystring, headers). */
function validated(reply: FastifyReply, context: string | undefined): { schema: unknown; data: unknown } {
  const req = reply.request;
  const key = context ?? 'body';
  const data = key === 'body' ? req.body : key === 'params' ? req.params : key === 'querystring' ? req.query : req.headers;
  return { schema: (req.routeOptions?.schema as Record<string, unknown> | undefined)?.[key], data };
}

/** A message as one sentence: capitalized, ending with a period. */
const sentence = (m: string) => {
  const s = m.trim();
  return `${s.charAt(0).toUpperCase()}${s.slice(1)}${/[.!?]$/.test(s) ? '' : '.'}`;
};

/** Maps every error of the OpenAI routes to OpenAI's shape and status (500 only for bugs). */
export function handleRouteError(e: FastifyError | EngineError | Error, reply: FastifyReply): FastifyReply {
  if (e instanceof EngineError) return sendError(reply, e.status, e.message, e.param, e.code);
  const f = e as FastifyError;
  if (f.validation) {
    const { schema, data } = validated(reply, f.validationContext);
    const problem = explainValidation(f.validation, schema, data);
    return sendError(reply, 400, problem.message, problem.param, problem.code);
  }
  const status = f.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    const code = f.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'request_too_large' : 'invalid_request';
    return sendError(reply, status, sentence(f.message), null, code);
  }
  reply.log.error(e);
  return sendError(reply, 500, 'internal server error (please report)', null, 'internal_error');
}
