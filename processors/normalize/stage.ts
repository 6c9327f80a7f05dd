import type { Nats } from '../../streams/connect.ts'
import type { BatchHandler, Poison } from '../../streams/consumer.ts'
import { boundedLetter } from '../../streams/dead-letter.ts'
import { encodeEnvelopeWithField, envelope, jsonParts, typedEnvelope } from '../../streams/envelope.ts'
import { hashHex } from '../../streams/ids.ts'
import { publishAll, type Outgoing } from '../../streams/publish.ts'
import {
  DLQ_TYPE,
  INGEST_TYPE,
  MAX_SAMPLES_PER_EVENT,
  METRICS,
  RawBatch,
  SAMPLE_TYPE,
  type Metric,
  type Sample,
  type SampleBatch,
  type SampleItem,
  type SampleSource,
} from '../../streams/schemas.ts'
import { EVENT_FIELDS_BYTES, eventByteLimit } from '../../streams/sizing.ts'
import { streamName, subjects } from '../../streams/subjects.ts'
import type { Logger } from '../../log.ts'
import { ValidationError } from '../../errors.ts'
import { normalizeBatch, parseBatchEnvelope, type NormalizedSample } from './healthkit.ts'

export const IngestEvent = typedEnvelope(INGEST_TYPE, RawBatch)

export interface NormalizeDeps {
  nats: Nats
  prefix: string
  maxSamples: number
  /** HPH_EVENT_MAX_BYTES: an event's bound, lowered to the server's max_payload */
  eventMaxBytes: number
  log: Logger
}

/**
 * A sample as an item of its event: its fields but the event's (user, metric, ingest id), in the order of the
 * schema, which is the order normalizeSample writes them in. Built field by field: with a rest spread
 * (`{ id, ...rest }`) here, this function was the largest allocation a heap profile found on the HTTP path (383 MB
 * of the 4 GB allocated for 308k samples; docs/benchmarks.md §2).
 */
export function sampleItemOf(id: string, s: Sample): SampleItem {
  // source is set below, after value or stage, where the schema (and JSON) has it
  const item = { id, start: s.start, end: s.end, utcOffsetMinutes: s.utcOffsetMinutes } as SampleItem
  if (s.value !== undefined) item.value = s.value
  if (s.stage !== undefined) item.stage = s.stage
  item.source = s.source
  if (s.externalId !== undefined) item.externalId = s.externalId
  return item
}

/**
 * JSON.stringify(item) of the items sampleItemOf makes (keys in its order, a source's as normalize builds it: name,
 * bundleId, device), written field by field: a source's JSON is made once for a run of samples with an equal
 * source — nearly every sample of a raw batch, with a device text of a hundred characters or more. Half the cost of
 * JSON.stringify here (docs/benchmarks.md §2); test/unit/streams/batches.test.ts holds it to JSON.stringify.
 */
export function sampleItemWriter(): (item: SampleItem) => string {
  let source: SampleSource | undefined
  let sourceJson = ''
  return (item) => {
    const s = item.source
    if (source === undefined || s.name !== source.name || s.bundleId !== source.bundleId || s.device !== source.device) {
      source = s
      sourceJson = JSON.stringify(s)
    }
    let json = `{"id":${JSON.stringify(item.id)},"start":${JSON.stringify(item.start)},"end":${JSON.stringify(item.end)},"utcOffsetMinutes":${JSON.stringify(item.utcOffsetMinutes)}`
    if (item.value !== undefined) json += `,"value":${JSON.stringify(item.value)}`
    if (item.stage !== undefined) json += `,"stage":${JSON.stringify(item.stage)}`
    json += `,"source":${sourceJson}`
    if (item.externalId !== undefined) json += `,"externalId":${JSON.stringify(item.externalId)}`
    return `${json}}`
  }
}

/**
 * The `hph.sample.v2` events of one raw batch (docs/architecture.md §5): its samples grouped by metric,
 * each group cut into parts of at most 1000 samples and `maxBytes`. Deterministic: the same raw batch always
 * gives the same events with the same ids, so a redelivered raw batch is dropped by JetStream.
 */
export function sampleEventsOf(
  prefix: string,
  raw: { userId: string; ingestId: string; receivedAt: string; traceparent?: string | undefined },
  samples: readonly NormalizedSample[],
  maxBytes: number,
): Outgoing[] {
  const byMetric = new Map<Metric, SampleItem[]>()
  for (const { id, sample } of samples) {
    let list = byMetric.get(sample.metric)
    if (!list) byMetric.set(sample.metric, (list = []))
    list.push(sampleItemOf(id, sample))
  }
  const out: Outgoing[] = []
  const itemJson = sampleItemWriter()
  for (const metric of METRICS) {
    const items = byMetric.get(metric)
    if (!items) continue
    jsonParts(items, MAX_SAMPLES_PER_EVENT, maxBytes - EVENT_FIELDS_BYTES, itemJson).forEach((part, n) => {
      const data: SampleBatch = { userId: raw.userId, metric, ingestId: raw.ingestId, samples: part.items }
      const event = envelope({ id: hashHex('samples', raw.ingestId, metric, n), type: SAMPLE_TYPE, source: 'normalize', subject: raw.userId, data, time: raw.receivedAt })
      out.push({ subject: subjects.sample(prefix, metric, raw.userId), event, traceparent: raw.traceparent, encoded: encodeEnvelopeWithField(event, 'samples', part) })
    })
  }
  return out
}

/**
 * The bytes of raw events normalize handles at once (BatchHandler.maxBatchBytes), below HPH_PULL_MAX_BYTES: each raw
 * batch is a whole unit of work, and a batch of many held every one of their samples decoded, normalised and encoded
 * until the last event was published, live long enough to be copied and promoted by the collector. Measured
 * (docs/benchmarks.md §2): draining 93k samples of an export, 512 KiB against 8 MiB took 8 % less of the process's CPU.
 */
export const NORMALIZE_BATCH_BYTES = 512 * 1024

/**
 * normalize (docs/architecture.md §7): raw batch → its valid samples as `hph.sample.v2` events. The dates are checked
 * against the batch's `receivedAt`, not the clock, so a replay years later gives the same samples.
 * Rejected samples are reported to the DLQ once per batch (kind `rejected_samples`); the raw batch
 * stays in HPH_INGEST, so nothing is lost.
 */
export function normalizeStage(deps: NormalizeDeps): BatchHandler<RawBatch> {
  const log = deps.log.child({ stage: 'normalize' })
  return {
    stage: 'normalize',
    schema: IngestEvent,
    maxBatchBytes: NORMALIZE_BATCH_BYTES,
    itemsOf: (raw) => {
      const samples = (raw.payload as { samples?: unknown } | null)?.samples
      return Array.isArray(samples) ? samples.length : 0
    },
    async handle(batch) {
      const out: Outgoing[] = []
      const poison: Poison[] = []
      const maxBytes = eventByteLimit(deps.nats.nc, deps.eventMaxBytes)
      batch.forEach((d, index) => {
        const raw = d.data
        let parsed
        try {
          parsed = parseBatchEnvelope(raw.payload, { maxSamples: deps.maxSamples })
        } catch (err) {
          if (!(err instanceof ValidationError)) throw err
          poison.push({ index, error: err })
          return
        }
        const r = normalizeBatch(parsed, { userId: raw.userId, ingestId: d.event.id, now: new Date(raw.receivedAt) })
        out.push(...sampleEventsOf(deps.prefix, { userId: raw.userId, ingestId: d.event.id, receivedAt: raw.receivedAt, traceparent: d.traceparent }, r.samples, maxBytes))
        if (r.rejected.length > 0) {
          const id = hashHex('rejected', d.event.id)
          // bounded like every dead letter (streams/dead-letter.ts): 10,000 rejections still make one message
          const letter = boundedLetter(
            {
              stage: 'normalize',
              kind: 'rejected_samples',
              reason: `${r.rejected.length} of ${parsed.samples.length} samples rejected`,
              // a part's samples are numbered as in the whole batch the client sent
              details: r.rejected.map((x) => ({ path: `samples[${x.index + (raw.part?.offset ?? 0)}]`, problem: x.problem })),
              originalStream: streamName(deps.prefix, 'INGEST'),
              originalSubject: d.subject,
              originalSeq: d.seq,
              deliveries: d.deliveries,
              firstSeen: raw.receivedAt,
              headers: {},
            },
            undefined, // the raw batch stays in HPH_INGEST at originalSeq
            maxBytes,
            { id, source: 'normalize', subject: raw.userId },
          )
          out.push({
            subject: subjects.dlq(deps.prefix, 'normalize', raw.userId),
            event: envelope({ id, type: DLQ_TYPE, source: 'normalize', subject: raw.userId, data: letter }),
          })
        }
        log.debug({ ingestId: d.event.id, samples: r.samples.length, rejected: r.rejected.length, ignored: r.ignored }, 'normalized')
      })
      await publishAll(deps.nats.js, out)
      return { poison }
    },
  }
}
