import { z } from 'zod'

// The event types of DESIGN.md §4, each defined once; every publisher and consumer uses these.

export const UserId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'userId must be 1–64 characters of [A-Za-z0-9_-]')
export const LocalDate = z.string().regex(/^\d{4}-\d{2}-\d{2}$/)

export const METRICS = ['hrv_sdnn', 'hrv_rmssd', 'resting_hr', 'heart_rate', 'sleep_stage'] as const
export const Metric = z.enum(METRICS)
export type Metric = z.infer<typeof Metric>

export const STAGES = ['in_bed', 'awake', 'asleep', 'core', 'deep', 'rem'] as const
export const SleepStage = z.enum(STAGES)
export type SleepStage = z.infer<typeof SleepStage>

export const SampleSource = z.object({
  name: z.string().min(1).max(256),
  bundleId: z.string().max(256).optional(),
  device: z.string().max(1024).optional(),
})
export type SampleSource = z.infer<typeof SampleSource>

/** `hph.sample.v1`: one canonical sample; `start`/`end` are UTC instants. */
export const Sample = z
  .object({
    userId: UserId,
    metric: Metric,
    start: z.string().datetime({ offset: true }),
    end: z.string().datetime({ offset: true }),
    utcOffsetMinutes: z.number().int().min(-840).max(840),
    value: z.number().finite().optional(),
    stage: SleepStage.optional(),
    source: SampleSource,
    externalId: z.string().max(256).optional(),
    ingestId: z.string().min(1),
  })
  .refine((s) => (s.metric === 'sleep_stage') === (s.stage !== undefined) && (s.metric === 'sleep_stage') === (s.value === undefined), {
    message: 'a sleep sample has a stage and no value; every other sample has a value and no stage',
  })
export type Sample = z.infer<typeof Sample>
export const SAMPLE_TYPE = 'hph.sample.v1'

/**
 * `hph.ingest.v1`: a raw batch exactly as received (`payload` is the parsed request body;
 * `receivedAt` is the "now" of the date checks, so that a replay gives the same result).
 */
export const RawBatch = z.object({
  userId: UserId,
  receivedAt: z.string().datetime({ offset: true }),
  batchId: z.string().max(128).optional(),
  payload: z.unknown(),
})
export type RawBatch = z.infer<typeof RawBatch>
export const INGEST_TYPE = 'hph.ingest.v1'

/** `hph.changes.v1`: "user U changed on local days D…", the insights engine's work list. */
export const DaysChanged = z.object({
  userId: UserId,
  days: z.array(LocalDate).min(1),
  maxSeq: z.number().int().nonnegative(),
})
export type DaysChanged = z.infer<typeof DaysChanged>
export const CHANGES_TYPE = 'hph.changes.v1'

/** `hph.dlq.v1`: a message a stage could not process, with the reason and the original bytes. */
export const DeadLetter = z.object({
  stage: z.string(),
  kind: z.enum(['poison', 'rejected_samples']),
  reason: z.string(),
  details: z.array(z.object({ path: z.string(), problem: z.string() })).default([]),
  originalStream: z.string(),
  originalSubject: z.string(),
  originalSeq: z.number().int().nonnegative(),
  deliveries: z.number().int().nonnegative(),
  firstSeen: z.string().datetime({ offset: true }),
  payloadBase64: z.string(),
  headers: z.record(z.string(), z.array(z.string())).default({}),
})
export type DeadLetter = z.infer<typeof DeadLetter>
export const DLQ_TYPE = 'hph.dlq.v1'
