import type { Nats } from '../../streams/connect.ts'
import type { BatchHandler, Poison } from '../../streams/consumer.ts'
import { envelope, typedEnvelope } from '../../streams/envelope.ts'
import { hashHex } from '../../streams/ids.ts'
import { publishAll, type Outgoing } from '../../streams/publish.ts'
import { DLQ_TYPE, INGEST_TYPE, RawBatch, SAMPLE_TYPE, type DeadLetter } from '../../streams/schemas.ts'
import { streamName, subjects } from '../../streams/subjects.ts'
import type { Logger } from '../../log.ts'
import { ValidationError } from '../../errors.ts'
import { normalizeBatch, parseBatchEnvelope } from './healthkit.ts'

export const IngestEvent = typedEnvelope(INGEST_TYPE, RawBatch)

export interface NormalizeDeps {
  nats: Nats
  prefix: string
  maxSamples: number
  log: Logger
}

/**
 * normalize (DESIGN.md §5): raw batch → one `hph.sample.v1` per valid sample. The dates are checked
 * against the batch's `receivedAt`, not the clock, so a replay years later gives the same samples.
 * Rejected samples are reported to the DLQ once per batch (kind `rejected_samples`); the raw batch
 * stays in HPH_INGEST, so nothing is lost.
 */
export function normalizeStage(deps: NormalizeDeps): BatchHandler<RawBatch> {
  const log = deps.log.child({ stage: 'normalize' })
  return {
    stage: 'normalize',
    schema: IngestEvent,
    async handle(batch) {
      const out: Outgoing[] = []
      const poison: Poison[] = []
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
        for (const s of r.samples) {
          out.push({
            subject: subjects.sample(deps.prefix, s.sample.metric, raw.userId),
            event: envelope({ id: s.id, type: SAMPLE_TYPE, source: 'normalize', subject: raw.userId, data: s.sample, time: raw.receivedAt }),
            traceparent: d.traceparent,
          })
        }
        if (r.rejected.length > 0) {
          const letter: DeadLetter = {
            stage: 'normalize',
            kind: 'rejected_samples',
            reason: `${r.rejected.length} of ${parsed.samples.length} samples rejected`,
            details: r.rejected.map((x) => ({ path: `samples[${x.index}]`, problem: x.problem })),
            originalStream: streamName(deps.prefix, 'INGEST'),
            originalSubject: d.subject,
            originalSeq: d.seq,
            deliveries: d.deliveries,
            firstSeen: raw.receivedAt,
            payloadBase64: '', // the raw batch stays in HPH_INGEST at originalSeq
            headers: {},
          }
          out.push({
            subject: subjects.dlq(deps.prefix, 'normalize', raw.userId),
            event: envelope({ id: hashHex('rejected', d.event.id), type: DLQ_TYPE, source: 'normalize', subject: raw.userId, data: letter }),
          })
        }
        log.debug({ ingestId: d.event.id, samples: r.samples.length, rejected: r.rejected.length, ignored: r.ignored }, 'normalized')
      })
      await publishAll(deps.nats.js, out)
      return { poison }
    },
  }
}
