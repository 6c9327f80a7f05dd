import { randomBytes } from 'node:crypto'
import type { JetStreamClient } from '@nats-io/jetstream'
import { encodeEnvelopeWithPayload, envelope } from '../streams/envelope.ts'
import { hashUuid } from '../streams/ids.ts'
import { publishEvent } from '../streams/publish.ts'
import { INGEST_TYPE, type RawBatch } from '../streams/schemas.ts'
import { subjects } from '../streams/subjects.ts'
import { normalizeBatch, parseBatchEnvelope, type Rejection } from '../processors/normalize/healthkit.ts'

// The one raw-event path (DESIGN.md §2, §4): a HealthKit-shaped batch → one `hph.ingest.v1` event in HPH_INGEST
// with a deterministic id. POST /samples and the export backfill (HTTP and CLI) all publish through it.

export interface IngestDeps {
  js: JetStreamClient
  prefix: string
  maxSamples: number
}

export interface RawIngest {
  userId: string
  /** the batch as received: `{batchId?, source?, samples}` */
  payload: unknown
  /** `payload` as JSON text, when the caller has it (an export batch): the event is written around it */
  payloadJson?: string | undefined
  /** when there is no batchId: the hash of the body, the idempotency key then */
  bodyHash: string
  /** "now" of the date checks, stored in the event so that a replay gives the same samples */
  receivedAt: Date
  /** which component published it: `api`, `cli` */
  source: string
  traceparent?: string | undefined
}

export interface IngestResult {
  eventId: string
  stream: string
  seq: number
  duplicate: boolean
  accepted: number
  ignored: number
  rejected: Rejection[]
}

const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/

/** The caller's W3C traceparent when it is well formed, else a new trace (DESIGN.md §4). */
export function traceparentOf(incoming: unknown): string {
  return typeof incoming === 'string' && TRACEPARENT.test(incoming) ? incoming : `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`
}

/**
 * Validates the envelope (ValidationError when the body is not a batch), counts what normalize will accept,
 * and publishes the raw batch; resolves once JetStream has stored it (or recognised it as a duplicate).
 */
export async function ingestRawBatch(deps: IngestDeps, input: RawIngest): Promise<IngestResult> {
  const { userId } = input
  const batch = parseBatchEnvelope(input.payload, { maxSamples: deps.maxSamples })
  // a batchId is scoped to its user, so two users' batch ids can never collide
  const eventId = hashUuid('ingest', userId, batch.batchId ?? `body:${input.bodyHash}`)
  // the answer's counts: every check, without building the samples (normalize does that)
  const counts = normalizeBatch(batch, { userId, ingestId: eventId, now: input.receivedAt }, { build: false })
  const data: RawBatch = { userId, receivedAt: input.receivedAt.toISOString(), payload: input.payload, ...(batch.batchId ? { batchId: batch.batchId } : {}) }
  const event = envelope({ id: eventId, type: INGEST_TYPE, source: input.source, subject: userId, data, time: data.receivedAt })
  const ack = await publishEvent(deps.js, {
    subject: subjects.ingest(deps.prefix, 'healthkit', userId),
    event,
    traceparent: input.traceparent ?? traceparentOf(undefined),
    encoded: input.payloadJson === undefined ? undefined : encodeEnvelopeWithPayload(event, input.payloadJson),
  })
  return { eventId, stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate, accepted: counts.accepted, ignored: counts.ignored, rejected: counts.rejected }
}
