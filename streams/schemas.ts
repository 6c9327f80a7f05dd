import { z } from 'zod'

// The event types of docs/architecture.md §4, each defined once; every publisher and consumer uses these.

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

/** A canonical sample's own facts; `start`/`end` are UTC instants. */
const sampleFacts = {
  start: z.string().datetime({ offset: true }),
  end: z.string().datetime({ offset: true }),
  utcOffsetMinutes: z.number().int().min(-840).max(840),
  value: z.number().finite().optional(),
  stage: SleepStage.optional(),
  source: SampleSource,
  externalId: z.string().max(256).optional(),
}
const STAGE_OR_VALUE = 'a sleep sample has a stage and no value; every other sample has a value and no stage'
/** A sleep sample has a stage and no value; every other sample has a value and no stage. */
const stageFitsMetric = (metric: Metric, s: { stage?: SleepStage | undefined; value?: number | undefined }) =>
  (metric === 'sleep_stage') === (s.stage !== undefined) && (metric === 'sleep_stage') === (s.value === undefined)

/** `hph.sample.v1`: one canonical sample with its user, metric and ingest id. */
export const Sample = z
  .object({ userId: UserId, metric: Metric, ...sampleFacts, ingestId: z.string().min(1) })
  .refine((s) => stageFitsMetric(s.metric, s), { message: STAGE_OR_VALUE })
export type Sample = z.infer<typeof Sample>
/** The type of one-sample events, read through an upcaster (streams/upcast.ts); nothing publishes it any more. */
export const SAMPLE_V1_TYPE = 'hph.sample.v1'
/** What the insights read of a canonical sample (docs/insights.md §0: it never looks at sources or ids). */
export type SampleFacts = Pick<Sample, 'metric' | 'start' | 'end' | 'utcOffsetMinutes' | 'value' | 'stage'>

const SAMPLE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** One canonical sample inside an `hph.sample.v2` event: the user, metric and ingest id are the event's. */
export const SampleItem = z.object({ id: z.string().regex(SAMPLE_ID, 'a sample id is a uuid'), ...sampleFacts })
export type SampleItem = z.infer<typeof SampleItem>

/** At most this many samples in one `hph.sample.v2` event (docs/architecture.md §5). */
export const MAX_SAMPLES_PER_EVENT = 1000

/**
 * `hph.sample.v2`: the canonical samples of one raw batch, one user and one metric
 * (docs/architecture.md §5). Each sample keeps its own id; the event is only the unit of work.
 */
export const SampleBatch = z
  .object({
    userId: UserId,
    metric: Metric,
    ingestId: z.string().min(1),
    samples: z.array(SampleItem).min(1),
  })
  .superRefine((b, ctx) => {
    b.samples.forEach((s, i) => {
      if (!stageFitsMetric(b.metric, s)) ctx.addIssue({ code: 'custom', path: ['samples', i], message: STAGE_OR_VALUE })
    })
  })
export type SampleBatch = z.infer<typeof SampleBatch>
export const SAMPLE_TYPE = 'hph.sample.v2'

/**
 * `hph.ingest.v1`: a raw batch exactly as received (`payload` is the parsed request body;
 * `receivedAt` is the "now" of the date checks, so that a replay gives the same result).
 */
export const RawBatch = z.object({
  userId: UserId,
  receivedAt: z.string().datetime({ offset: true }),
  batchId: z.string().max(128).optional(),
  /** a batch too large for one message is stored as parts (docs/architecture.md §6): this one's place */
  part: z.object({ index: z.number().int().nonnegative(), count: z.number().int().positive(), offset: z.number().int().nonnegative() }).optional(),
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

// `hph.insight.v1`: one derived row (docs/insights.md §0), or a tombstone (`row: null`) when the row must go.
const num = z.number().finite()
const instant = z.string().datetime({ offset: true })
const baselineFigures = {
  hrv_metric: z.enum(['sdnn', 'rmssd']),
  hrv_baseline_sdnn: num,
  hrv_ln_mean: num,
  hrv_ln_sd: num,
  hrv_days: z.number().int().nonnegative(),
  sleep_baseline_hours: num,
  sleep_sd_hours: num,
  sleep_days: z.number().int().nonnegative(),
  baseline_source: z.enum(['default', 'blended', 'personal']),
  data_quality_score: num,
}
const State = z.enum(['good', 'medium', 'poor'])
/** A sleep_daily row's stage minutes, efficiency and episode times, in its column order (the view v_sleep passes them on). */
export const sleepNight = {
  deep_min: num,
  rem_min: num,
  core_min: num,
  asleep_unspecified_min: num,
  awake_min: num,
  nap_min: num,
  efficiency: num,
  episode_start: instant,
  episode_end: instant,
  sleep_onset: instant,
  wake_time: instant,
}

export const InsightRows = {
  hrv_daily: z.object({
    day: LocalDate,
    metric: z.enum(['sdnn', 'rmssd']),
    value_ms: num,
    ln_value: num,
    n: z.number().int().positive(),
    min_ms: num,
    max_ms: num,
    basis: z.enum(['sleep', 'day']),
  }),
  sleep_daily: z.object({ day: LocalDate, total_sleep_min: num, in_bed_min: num, ...sleepNight, valid: z.boolean() }),
  baseline_history: z.object({ day: LocalDate, ...baselineFigures }),
  readiness_daily: z.object({
    day: LocalDate,
    score: z.number().int(),
    label: z.enum(['high', 'medium', 'low']),
    p_high: num,
    p_medium: num,
    p_low: num,
    sleep_state: State.nullable(),
    hrv_state: State.nullable(),
  }),
  baseline: z.object({ as_of_day: LocalDate, ...baselineFigures }),
  cpt: z.object({
    as_of_day: LocalDate,
    sleep_good_threshold: num,
    sleep_medium_threshold: num,
    hrv_good_threshold: num,
    hrv_medium_threshold: num,
    cpt_probabilities: z.object({ states: z.array(z.string()), table: z.record(z.string(), z.array(num).length(3)) }),
  }),
} as const
export type InsightKind = keyof typeof InsightRows
export const INSIGHT_KINDS = Object.keys(InsightRows) as InsightKind[]
export type InsightRow<K extends InsightKind> = z.infer<(typeof InsightRows)[K]>

/** One row of an insight event, without its user (the event's). */
const insightRowOf = <K extends InsightKind>(kind: K) =>
  z.object({
    kind: z.literal(kind),
    /** the row's key inside the user: the day, `day|metric` for hrv_daily, '' for the current baseline and CPT */
    key: z.string(),
    /** the highest HPH_SAMPLES sequence of the user's samples when it was computed: newer never loses to older */
    dataVersion: z.number().int().nonnegative(),
    /** how many of the user's samples it read: breaks ties of equal versions (a later snapshot reads a superset) */
    dataCount: z.number().int().nonnegative().default(0),
    row: InsightRows[kind].nullable(),
    /** whether the engine recomputed the user's whole history or a touched range (user_baselines' last_*_update) */
    recompute: z.enum(['incremental', 'full']).optional(),
  })

const insightOf = <K extends InsightKind>(kind: K) => insightRowOf(kind).extend({ userId: UserId })

/** `hph.insight.v1`: one derived row of one user, read through an upcaster (streams/upcast.ts). */
export const Insight = z.discriminatedUnion('kind', [
  insightOf('hrv_daily'),
  insightOf('sleep_daily'),
  insightOf('baseline_history'),
  insightOf('readiness_daily'),
  insightOf('baseline'),
  insightOf('cpt'),
])
export type Insight = z.infer<typeof Insight>
export const INSIGHT_V1_TYPE = 'hph.insight.v1'

export const InsightEntry = z.discriminatedUnion('kind', [
  insightRowOf('hrv_daily'),
  insightRowOf('sleep_daily'),
  insightRowOf('baseline_history'),
  insightRowOf('readiness_daily'),
  insightRowOf('baseline'),
  insightRowOf('cpt'),
])
export type InsightEntry = z.infer<typeof InsightEntry>

/** The groups of `hph.insight.v2` (docs/architecture.md §5); groupOf says which row kinds each carries. */
export const InsightGroupName = z.enum(['daily', 'baseline', 'cpt'])
export type InsightGroup = z.infer<typeof InsightGroupName>
export function groupOf(kind: InsightKind): InsightGroup {
  return kind === 'baseline' ? 'baseline' : kind === 'cpt' ? 'cpt' : 'daily'
}

/**
 * `hph.insight.v2`: the rows of one recompute of one user of one group, each with its own data version
 * (the writer's guard works row by row), in the order the writer applies them.
 */
export const InsightBatch = z.object({ userId: UserId, group: InsightGroupName, rows: z.array(InsightEntry).min(1) }).superRefine((b, ctx) => {
  b.rows.forEach((r, i) => {
    if (groupOf(r.kind) !== b.group) ctx.addIssue({ code: 'custom', path: ['rows', i, 'kind'], message: `a ${r.kind} row does not belong in a ${b.group} event` })
  })
})
export type InsightBatch = z.infer<typeof InsightBatch>
export const INSIGHT_TYPE = 'hph.insight.v2'

/**
 * `hph.audit.v1` (docs/architecture.md §3, HPH_AUDIT): who did what to whose data, when, in which request, and how it
 * ended. Never a token, never a sample value. An erase names its user only by `userRef` (see privacy/erase.ts).
 */
export const AuditRecord = z.object({
  action: z.enum(['write', 'export', 'erase', 'denied']),
  /** the principal: `key#N` (a static key by position), `jwt:<sub>`, `anonymous`, `cli:<os user>`, or `unauthenticated` */
  actor: z.string().min(1).max(200),
  actorKind: z.enum(['admin', 'user', 'none']),
  userId: UserId.optional(),
  /** a one-way reference to the user (an HMAC with HPH_USER_REF_SECRET): what an erase event carries instead of the userId */
  userRef: z
    .string()
    .regex(/^[0-9a-f]{32}$/)
    .optional(),
  /** what was asked: `POST /v1/users/:userId/samples`, `hph user erase` */
  operation: z.string().max(300),
  requestId: z.string().max(200).optional(),
  ip: z.string().max(100).optional(),
  outcome: z.enum(['ok', 'rejected', 'denied', 'failed']),
  status: z.number().int().optional(),
  at: z.string().datetime({ offset: true }),
  /** denied requests are one event per address and window: how many, and since when (`at` is the last) */
  count: z.number().int().positive().optional(),
  since: z.string().datetime({ offset: true }).optional(),
  /** the fields that failed this schema and were left out or cut: the record was still written (streams/audit.ts) */
  reduced: z.array(z.string().max(32)).max(20).optional(),
})
export type AuditRecord = z.infer<typeof AuditRecord>
export const AUDIT_TYPE = 'hph.audit.v1'
