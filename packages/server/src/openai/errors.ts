import type { FastifyError, FastifyReply } from 'fastify';
import { EngineError } from '../errors.js';

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
  return reply.code(status).type('application/json').send(errorBody(message, TYPES[status] ?? 'server_error', param, code));
}

/** The parameter a JSON-schema error is about: `/messages/0/role` -> `messages[0].role`. */
function paramOf(e: FastifyError): string | null {
  const v = e.validation?.[0];
  if (!v) return null;
  const path = v.instancePath.split('/').filter(Boolean);
  const missing = (v.params as { missingProperty?: string }).missingProperty;
  if (missing) path.push(missing);
  return path.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i ? `.${p}` : p)).join('') || null;
}

/** Maps every error of the OpenAI routes to OpenAI's shape and status (500 only for bugs). */
export function handleRouteError(e: FastifyError | EngineError | Error, reply: FastifyReply): FastifyReply {
  if (e instanceof EngineError) return sendError(reply, e.status, e.message, e.param, e.code);
  const f = e as FastifyError;
  if (f.validation) {
    const param = paramOf(f);
    return sendError(reply, 400, `invalid request: ${f.message}`, param, 'invalid_request');
  }
  const status = f.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    const code = f.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'request_too_large' : 'invalid_request';
    return sendError(reply, status, f.message, null, code);
  }
  reply.log.error(e);
  return sendError(reply, 500, 'internal server error (please report)', null, 'internal_error');
}
