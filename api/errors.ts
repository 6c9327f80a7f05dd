import type { FastifyError, FastifyInstance } from 'fastify'
import { HphError } from '../errors.ts'
import { ImportError } from '../ingest/healthkit-export/import.ts'
import { isTransient } from '../streams/transient.ts'

// docs/api.md §1: every error body is {error, message, details}. One place maps errors to HTTP.

export interface ErrorBody {
  error: string
  message: string
  details: Array<{ path: string; problem: string }>
}

export class HttpError extends HphError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
    details: Array<{ path: string; problem: string }> = [],
    /** response headers the answer needs (`retry-after` on a 429) */
    readonly headers: Record<string, string> = {},
  ) {
    super(code, message, details)
  }
}

const FASTIFY_CODES: Record<string, { status: number; error: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, error: 'payload_too_large' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, error: 'unsupported_media_type' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, error: 'invalid_json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, error: 'invalid_content_length' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, error: 'invalid_json' },
}

/** Input errors of the core, by their stable code. */
const HPH_CODES: Record<string, number> = { validation_failed: 400, export_malformed: 400, sample_too_large: 413, export_limit_exceeded: 413 }

export function toHttp(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof HttpError) return { status: err.status, body: { error: err.code, message: err.message, details: err.details } }
  // an import that stopped half-way answers as its cause would, and says which whole batches it stored before
  if (err instanceof ImportError) {
    const inner = toHttp(err.cause)
    return { status: inner.status, body: { ...inner.body, message: `${inner.body.message}; ${err.kept}` } }
  }
  const known = err instanceof HphError ? HPH_CODES[err.code] : undefined
  if (known !== undefined && err instanceof HphError) return { status: known, body: { error: err.code, message: err.message, details: err.details } }
  const fe = err as Partial<FastifyError>
  const fastify = fe.code ? FASTIFY_CODES[fe.code] : undefined
  if (fastify) return { status: fastify.status, body: { error: fastify.error, message: fe.message ?? fastify.error, details: [] } }
  if (err instanceof SyntaxError || (fe.statusCode === 400 && /JSON|prototype|constructor/i.test(fe.message ?? ''))) {
    return { status: 400, body: { error: 'invalid_json', message: `body is not valid JSON: ${fe.message}`, details: [] } }
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { status: fe.statusCode, body: { error: 'bad_request', message: fe.message ?? 'bad request', details: [] } }
  }
  if (isTransient(err)) return { status: 503, body: { error: 'unavailable', message: 'the event store or the database is unreachable; retry later', details: [] } }
  return { status: 500, body: { error: 'internal', message: 'internal error', details: [] } }
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => {
    const { status, body } = toHttp(err)
    if (status >= 500) req.log.error({ err }, 'request failed')
    const headers = { ...(status === 503 ? { 'retry-after': '5' } : {}), ...(err instanceof HttpError ? err.headers : {}) }
    return reply.status(status).headers(headers).send(body)
  })
  app.setNotFoundHandler((req, reply) => {
    return reply.status(404).send({ error: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}`, details: [] })
  })
}
