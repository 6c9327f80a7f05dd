import { z } from 'zod'
import { typedEnvelope, type Envelope } from './envelope.ts'
import { isPlainSampleEvent } from './plain.ts'
import { groupOf, Insight, INSIGHT_TYPE, INSIGHT_V1_TYPE, InsightBatch, Sample, SAMPLE_TYPE, SAMPLE_V1_TYPE, SampleBatch, type InsightEntry, type SampleItem } from './schemas.ts'

// docs/architecture.md §4: an event type that changes adds a version and an upcaster; old events stay
// readable forever. Every reader of HPH_SAMPLES and HPH_INSIGHTS (the writers, rebuild, replay, a user's
// export) reads through these, so a stream written before `.v2` replays into the same rows.

/** A one-sample `hph.sample.v1` event as the one-sample `hph.sample.v2` event it stands for. */
export function upcastSampleV1(e: Envelope<Sample>): Envelope<SampleBatch> {
  const { userId, metric, ingestId, ...rest } = e.data
  const item: SampleItem = { id: e.id, ...rest }
  return { ...e, type: SAMPLE_TYPE, data: { userId, metric, ingestId, samples: [item] } }
}

/** A one-row `hph.insight.v1` event as the one-row `hph.insight.v2` event it stands for. */
export function upcastInsightV1(e: Envelope<Insight>): Envelope<InsightBatch> {
  const { userId, ...row } = e.data
  return { ...e, type: INSIGHT_TYPE, data: { userId, group: groupOf(row.kind), rows: [row as InsightEntry] } }
}

const SampleV2Event = typedEnvelope(SAMPLE_TYPE, SampleBatch)
const SampleV1Event = typedEnvelope(SAMPLE_V1_TYPE, Sample)
const InsightV2Event = typedEnvelope(INSIGHT_TYPE, InsightBatch)
const InsightV1Event = typedEnvelope(INSIGHT_V1_TYPE, Insight)

/**
 * Picks the schema by the event's `type` (one parse, not a union's trial of each). `plain` recognises a current
 * event the schema would return unchanged (streams/plain.ts), which then skips the schema.
 */
function byType<V2, V1>(
  v2Type: string,
  v2: z.ZodType<Envelope<V2>>,
  v1Type: string,
  v1: z.ZodType<Envelope<V1>>,
  up: (e: Envelope<V1>) => Envelope<V2>,
  plain?: (input: unknown) => input is Envelope<V2>,
): z.ZodType<Envelope<V2>> {
  return z.unknown().transform((input, ctx): Envelope<V2> => {
    if (plain?.(input)) return input
    const type = typeof input === 'object' && input !== null ? (input as { type?: unknown }).type : undefined
    const r = type === v1Type ? v1.safeParse(input) : v2.safeParse(input)
    if (!r.success) {
      for (const issue of r.error.issues) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message })
      return z.NEVER
    }
    return type === v1Type ? up(r.data as Envelope<V1>) : (r.data as Envelope<V2>)
  }) as unknown as z.ZodType<Envelope<V2>>
}

/** What HPH_SAMPLES holds, read as `hph.sample.v2`. */
export const SampleEvent = byType(SAMPLE_TYPE, SampleV2Event, SAMPLE_V1_TYPE, SampleV1Event, upcastSampleV1, isPlainSampleEvent)
/** What HPH_INSIGHTS holds, read as `hph.insight.v2`. */
export const InsightEvent = byType(INSIGHT_TYPE, InsightV2Event, INSIGHT_V1_TYPE, InsightV1Event, upcastInsightV1)

/**
 * A decoded event as its current version, without validating it (a user's export shows what is stored in
 * the shape of today; an event that is not of a known old type is returned as it is).
 */
export function upcastStored(event: unknown): unknown {
  if (typeof event !== 'object' || event === null) return event
  const type = (event as { type?: unknown }).type
  const data = (event as { data?: unknown }).data
  if (typeof data !== 'object' || data === null) return event
  if (type === SAMPLE_V1_TYPE) return upcastSampleV1(event as Envelope<Sample>)
  if (type === INSIGHT_V1_TYPE && typeof (data as { kind?: unknown }).kind === 'string') return upcastInsightV1(event as Envelope<Insight>)
  return event
}
