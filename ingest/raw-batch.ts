import { randomBytes } from 'node:crypto'
import type { JetStreamClient } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { HphError } from '../errors.ts'
import { arrayPieces, encodeEnvelope, encodeEnvelopeWithPayload, envelope, jsonParts, type Envelope, type JsonPieces } from '../streams/envelope.ts'
import { hashUuid } from '../streams/ids.ts'
import { publishEvent } from '../streams/publish.ts'
import { INGEST_TYPE, type RawBatch } from '../streams/schemas.ts'
import { HEADROOM_BYTES, serverMaxPayload } from '../streams/sizing.ts'
import { subjects } from '../streams/subjects.ts'
import { normalizeBatch, parseBatchEnvelope, type Rejection } from '../processors/normalize/healthkit.ts'

// The one raw-event path (docs/architecture.md §2, §4): a HealthKit-shaped batch → one `hph.ingest.v1` event in HPH_INGEST
// with a deterministic id. POST /samples and the export backfill (HTTP and CLI) all publish through it.

export interface IngestDeps {
  js: JetStreamClient
  /** the connection whose server's max_payload sizes the raw events */
  nc: Pick<NatsConnection, 'info'>
  prefix: string
  maxSamples: number
}

export interface RawIngest {
  userId: string
  /** the batch as received: `{batchId?, source?, samples}` */
  payload: unknown
  /** `payload` as JSON text, when the caller has it (a request's body; an export batch's, in pieces): the event is written around it */
  payloadJson?: string | JsonPieces | undefined
  /** when there is no batchId: the hash of the body, the idempotency key then (asked for only then) */
  bodyHash: () => string
  /** "now" of the date checks, stored in the event so that a replay gives the same samples */
  receivedAt: Date
  /** which component published it: `api`, `cli` */
  source: string
  traceparent?: string | undefined
}

export interface IngestResult {
  /** the batch's id (of its first part's event when it is one event) */
  eventId: string
  stream: string
  /** the stream sequence of the batch's (first) event */
  seq: number
  /** every event of the batch was already stored */
  duplicate: boolean
  /** how many raw events hold the batch: 1 unless it is larger than one message */
  parts: number
  accepted: number
  ignored: number
  rejected: Rejection[]
  /** hrv_rmssd samples normalize derives from beat lists */
  derived: number
}

const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/

/** The caller's W3C traceparent when it is well formed, else a new trace (docs/architecture.md §4). */
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
  const eventId = hashUuid('ingest', userId, batch.batchId ?? `body:${input.bodyHash()}`)
  // the answer's counts: every check, without building the samples (normalize does that)
  const counts = normalizeBatch(batch, { userId, ingestId: eventId, now: input.receivedAt }, { build: false })
  const data: RawBatch = { userId, receivedAt: input.receivedAt.toISOString(), payload: input.payload, ...(batch.batchId ? { batchId: batch.batchId } : {}) }
  const event = envelope({ id: eventId, type: INGEST_TYPE, source: input.source, subject: userId, data, time: data.receivedAt })
  const whole = input.payloadJson === undefined ? encodeEnvelope(event) : encodeEnvelopeWithPayload(event, input.payloadJson)
  const limit = serverMaxPayload(deps.nc) - HEADROOM_BYTES
  const events = whole.length <= limit ? [{ event, encoded: whole }] : rawParts(event, batch.samples, limit)
  const subject = subjects.ingest(deps.prefix, 'healthkit', userId)
  const traceparent = input.traceparent ?? traceparentOf(undefined)
  // every part at once; the answer only once all of them are stored (a failed part fails the request, and the
  // client's retry stores what is missing: the parts' ids are deterministic, the stored ones are duplicates)
  const acks = await Promise.all(events.map((e) => publishEvent(deps.js, { subject, event: e.event, traceparent, encoded: e.encoded })))
  const first = acks[0] as (typeof acks)[number]
  return {
    eventId,
    stream: first.stream,
    seq: first.seq,
    duplicate: acks.every((a) => a.duplicate),
    parts: events.length,
    accepted: counts.accepted,
    ignored: counts.ignored,
    rejected: counts.rejected,
    derived: counts.derived,
  }
}

/**
 * A raw batch too large for one message as several raw events of the same batch
 * (docs/architecture.md §6): each holds a run of its samples, the batch's other fields, and its place (index, count, offset
 * of its first sample). Deterministic for a given server limit: a resent batch gives the same parts.
 */
export function rawParts(event: Envelope<RawBatch>, samples: readonly unknown[], limit: number): Array<{ event: Envelope<RawBatch>; encoded: Uint8Array }> {
  const { samples: _all, ...rest } = event.data.payload as { samples: unknown[] }
  const restJson = JSON.stringify(rest)
  const shell = encodeEnvelope({ ...event, data: { ...event.data, part: { index: 0, count: 0, offset: 0 }, payload: { ...rest, samples: [] } } })
  // the part numbers and the id may take a few more characters than the shell's
  const room = limit - shell.length - 128
  const runs = jsonParts(samples, Number.MAX_SAFE_INTEGER, room)
  let offset = 0
  return runs.map((run, index) => {
    if (run.bytes > room) {
      throw new HphError('sample_too_large', `samples[${offset}] takes ${run.bytes} bytes, more than one message of this server holds (${room})`, [
        { path: `samples[${offset}]`, problem: `larger than ${room} bytes` },
      ])
    }
    const part = { index, count: runs.length, offset }
    offset += run.items.length
    const payload = { ...rest, samples: run.items }
    const e = envelope({ ...event, id: hashUuid(event.id, 'part', index, runs.length), data: { ...event.data, part, payload } })
    // the part's samples in pieces, never joined into one large string (streams/envelope.ts: JsonPieces)
    const head = restJson === '{}' ? '{"samples":' : `${restJson.slice(0, -1)},"samples":`
    return { event: e, encoded: encodeEnvelopeWithPayload(e, { pieces: [head, ...arrayPieces(run), '}'] }) }
  })
}
