import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import type { Nats } from '../../streams/connect.ts'
import { hashHex } from '../../streams/ids.ts'
import { UserId } from '../../streams/schemas.ts'
import { jsonDepth } from '../body.ts'
import { HttpError } from '../errors.ts'
import { ingestRawBatch, traceparentOf } from '../../ingest/raw-batch.ts'
import { errors, GUARDED_ERRORS, recognising, refusing, UserParams, v1 } from '../openapi.ts'
import { batchEnvelopeSchema, isPlainBatchEnvelope } from '../../processors/normalize/healthkit.ts'

export interface SamplesRouteDeps {
  nats: Nats
  prefix: string
  maxSamples: number
  /** deeper JSON is refused before parsing (api/body.ts) */
  maxJsonDepth: number
}

declare module 'fastify' {
  interface FastifyRequest {
    /** the hash of the body as received (computed when asked: only a batch without a batchId needs it) */
    rawBodyHash?: () => string
    /** the JSON body as received: the raw event is written around it instead of stringifying the parsed body again */
    rawBody?: string
  }
}

export const IngestAnswer = z.object({
  eventId: z.string().describe("the batch's event id (of its first part when it needed several)"),
  stream: z.string(),
  seq: z.number().int().describe('the stream sequence of its (first) event'),
  duplicate: z.boolean(),
  parts: z.number().int().min(2).optional().describe('how many events hold the batch, when more than one'),
  accepted: z.number().int(),
  ignored: z.number().int().describe('samples of types not normalised (kept in the raw event)'),
  rejected: z.array(z.object({ index: z.number().int(), problem: z.string() })),
})

export function checkUserId(userId: string): string {
  const r = UserId.safeParse(userId)
  if (!r.success) throw new HttpError(400, 'invalid_user_id', 'userId must be 1–64 characters of [A-Za-z0-9_-]', [{ path: 'userId', problem: 'must match [A-Za-z0-9_-]{1,64}' }])
  return r.data
}

/** POST /v1/users/:userId/samples (docs/api.md §3). */
export function samplesRoutes(app: FastifyInstance, deps: SamplesRouteDeps): void {
  // keep the body as received: without a batchId its hash is the idempotency key
  const parseJson = app.getDefaultJsonParser('error', 'error')
  // JSON only (415 for anything else); prototype-polluting keys are refused by the parser (400)
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    // a content type and no body (what many clients send with a DELETE) is no body: a route that needs one says so
    if (body === '') {
      done(null, undefined)
      return
    }
    req.rawBodyHash = () => hashHex(body as string)
    // JSON.parse of it is the parsed body (the parser refuses the keys where they differ); a byte-order mark,
    // which the parser skips, is no JSON inside an event
    req.rawBody = (body as string).charCodeAt(0) === 0xfeff ? (body as string).slice(1) : (body as string)
    if (jsonDepth(body as string, deps.maxJsonDepth) > deps.maxJsonDepth) {
      done(new HttpError(400, 'invalid_json', `body is nested deeper than ${deps.maxJsonDepth} levels`), undefined)
      return
    }
    // fastify's default JSON parser answers through `done`; its type also allows the async kind, answered the same way
    const parsed = parseJson(req, body as string, done)
    if (parsed instanceof Promise)
      parsed.then(
        (value: unknown) => done(null, value),
        (err: Error) => done(err, undefined),
      )
  })

  const body = recognising(refusing(batchEnvelopeSchema(deps.maxSamples), 'validation_failed', 'the body is not a batch'), (b) => isPlainBatchEnvelope(b, deps.maxSamples))
  const schema = {
    ...v1('samples'),
    summary: "post a batch of HealthKit samples for the user (stored whole; each sample's problems are listed in `rejected`)",
    params: UserParams,
    body,
    response: {
      202: IngestAnswer.describe('stored'),
      200: IngestAnswer.describe('the same batch was already stored: `duplicate` is true'),
      ...errors(...GUARDED_ERRORS, 413, 415),
    },
  }
  app.post<{ Params: { userId: string } }>('/v1/users/:userId/samples', { schema }, async (req, reply) => {
    // authenticated and authorised for this user by the access hook (api/access.ts)
    const userId = checkUserId(req.params.userId)
    const r = await ingestRawBatch(
      { js: deps.nats.js, nc: deps.nats.nc, prefix: deps.prefix, maxSamples: deps.maxSamples },
      {
        userId,
        payload: req.body,
        payloadJson: req.rawBody,
        bodyHash: req.rawBodyHash ?? (() => ''),
        receivedAt: new Date(),
        source: 'api',
        traceparent: traceparentOf(req.headers.traceparent),
      },
    )
    return reply.status(r.duplicate ? 200 : 202).send({
      eventId: r.eventId,
      stream: r.stream,
      seq: r.seq,
      duplicate: r.duplicate,
      ...(r.parts > 1 ? { parts: r.parts } : {}),
      accepted: r.accepted,
      ignored: r.ignored,
      rejected: r.rejected,
    })
  })
}
