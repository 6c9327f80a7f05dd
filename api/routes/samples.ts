import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { Nats } from '../../streams/connect.ts'
import { envelope } from '../../streams/envelope.ts'
import { hashHex, hashUuid } from '../../streams/ids.ts'
import { publishEvent } from '../../streams/publish.ts'
import { INGEST_TYPE, UserId, type RawBatch } from '../../streams/schemas.ts'
import { subjects } from '../../streams/subjects.ts'
import { normalizeBatch, parseBatchEnvelope } from '../../processors/normalize/healthkit.ts'
import { jsonDepth } from '../body.ts'
import { HttpError } from '../errors.ts'

export interface SamplesRouteDeps {
  nats: Nats
  prefix: string
  maxSamples: number
  /** deeper JSON is refused before parsing (api/body.ts) */
  maxJsonDepth: number
}

declare module 'fastify' {
  interface FastifyRequest {
    rawBodyHash?: string
  }
}

const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/

export function checkUserId(userId: string): string {
  const r = UserId.safeParse(userId)
  if (!r.success) throw new HttpError(400, 'invalid_user_id', 'userId must be 1–64 characters of [A-Za-z0-9_-]', [{ path: 'userId', problem: 'must match [A-Za-z0-9_-]{1,64}' }])
  return r.data
}

/** POST /v1/users/:userId/samples (spec/api.md "Posting samples"). */
export function samplesRoutes(app: FastifyInstance, deps: SamplesRouteDeps): void {
  // keep the body's hash: without a batchId it is the idempotency key
  const parseJson = app.getDefaultJsonParser('error', 'error')
  // JSON only (415 for anything else); prototype-polluting keys are refused by the parser (400)
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    req.rawBodyHash = hashHex(body as string)
    if (jsonDepth(body as string, deps.maxJsonDepth) > deps.maxJsonDepth) {
      done(new HttpError(400, 'invalid_json', `body is nested deeper than ${deps.maxJsonDepth} levels`), undefined)
      return
    }
    parseJson(req, body as string, done)
  })

  app.post<{ Params: { userId: string } }>('/v1/users/:userId/samples', async (req, reply) => {
    // authenticated and authorised for this user by the access hook (api/access.ts)
    const userId = checkUserId(req.params.userId)
    const batch = parseBatchEnvelope(req.body, { maxSamples: deps.maxSamples })
    const receivedAt = new Date()
    // a batchId is scoped to its user, so two users' batch ids can never collide
    const eventId = hashUuid('ingest', userId, batch.batchId ?? `body:${req.rawBodyHash}`)
    // the answer's counts: every check, without building the samples (normalize does that)
    const counts = normalizeBatch(batch, { userId, ingestId: eventId, now: receivedAt }, { build: false })
    const data: RawBatch = { userId, receivedAt: receivedAt.toISOString(), payload: req.body, ...(batch.batchId ? { batchId: batch.batchId } : {}) }
    const incoming = req.headers.traceparent
    const traceparent = typeof incoming === 'string' && TRACEPARENT.test(incoming) ? incoming : `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`
    const ack = await publishEvent(deps.nats.js, {
      subject: subjects.ingest(deps.prefix, 'healthkit', userId),
      event: envelope({ id: eventId, type: INGEST_TYPE, source: 'api', subject: userId, data, time: data.receivedAt }),
      traceparent,
    })
    return reply.status(ack.duplicate ? 200 : 202).send({
      eventId,
      stream: ack.stream,
      seq: ack.seq,
      duplicate: ack.duplicate,
      accepted: counts.accepted,
      ignored: counts.ignored,
      rejected: counts.rejected,
    })
  })
}
