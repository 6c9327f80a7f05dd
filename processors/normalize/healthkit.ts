import { z } from 'zod'
import { ValidationError } from '../../errors.ts'
import { hashUuid, isUuid } from '../../streams/ids.ts'
import { digits, isRecord, keyCount, text as isText } from '../../streams/plain.ts'
import type { Metric, Sample, SampleSource, SleepStage } from '../../streams/schemas.ts'
import { civilDayNumber, dateAndTime, daysInMonth, isoInstant, type DateAndTime } from '../../streams/instants.ts'
import { placeExportBeats, rmssdOfSeries } from './beats.ts'

// docs/api.md §3: a HealthKit-shaped batch → canonical samples (docs/architecture.md §4).
// Pure: the clock comes in as `now` (the batch's receivedAt), so a replay gives the same samples.

export interface NormalizedSample {
  /** the sample event's id (docs/architecture.md §4): a uuid */
  id: string
  sample: Sample
}
export interface Rejection {
  index: number
  problem: string
}
export interface NormalizeResult {
  samples: NormalizedSample[]
  /** valid samples (those in `samples`, when they were built) */
  accepted: number
  rejected: Rejection[]
  ignored: number
  ignoredByType: Record<string, number>
  /** hrv_rmssd samples derived from beat lists (of heartbeat series, and of SDNN samples that carry one) */
  derived: number
}
export interface NormalizeContext {
  userId: string
  ingestId: string
  now: Date
}

// ── the envelope: a body that is not a batch is refused whole ──

const text = (max: number) => {
  const problem = `must be a string of 1..${max} characters`
  return z.string({ error: problem }).min(1, problem).max(max, problem)
}

/** The batch envelope with `samples` of 1..maxSamples entries; each sample is checked later, on its own. */
export function batchEnvelopeSchema(maxSamples: number) {
  const count = `must have 1..${maxSamples} entries`
  return z.object(
    {
      batchId: text(128).optional(),
      source: z.object({ name: text(256).optional(), bundleId: text(256).optional(), device: text(1024).optional() }, { error: 'must be an object' }).optional(),
      samples: z
        .array(
          z
            .unknown()
            .describe(
              'a HealthKit sample {uuid?, type, value | beats, unit, startDate, endDate, sourceName?, sourceBundleId?, device?}: each is checked on its own, and one that fails is listed in `rejected`',
            ),
          { error: (issue) => (issue.input === undefined ? 'is missing' : 'must be an array') },
        )
        .min(1, count)
        .max(maxSamples, count),
    },
    { error: 'must be an object with a samples array' },
  )
}
export type BatchEnvelope = z.infer<ReturnType<typeof batchEnvelopeSchema>>

/**
 * A batch envelope the schema above accepts unchanged, recognised by direct checks: the envelope is checked three
 * times a batch (the route, the raw event's counts, normalize) and zod copies the samples array each time. Anything
 * else — a key zod would strip, an undefined value, any doubt — is false, and left to the schema, which says what
 * is wrong (test/unit/normalize/healthkit.test.ts checks `true` against the schema on generated and mutated bodies).
 */
export function isPlainBatchEnvelope(body: unknown, maxSamples: number): body is BatchEnvelope {
  if (!isRecord(body)) return false
  let keys = 1
  if (!Array.isArray(body.samples) || body.samples.length < 1 || body.samples.length > maxSamples) return false
  if ('batchId' in body) {
    if (!isText(body.batchId, 1, 128)) return false
    keys++
  }
  if ('source' in body) {
    const source = body.source
    if (!isRecord(source)) return false
    let sourceKeys = 0
    for (const [key, max] of SOURCE_FIELDS) {
      if (!(key in source)) continue
      if (!isText(source[key], 1, max)) return false
      sourceKeys++
    }
    if (keyCount(source) !== sourceKeys) return false
    keys++
  }
  return keyCount(body) === keys
}
const SOURCE_FIELDS = [
  ['name', 256],
  ['bundleId', 256],
  ['device', 1024],
] as const

// zod compiles a schema on its first parse: build one per configured limit, not one per request
const envelopeSchemas = new Map<number, ReturnType<typeof batchEnvelopeSchema>>()

/** Validates the batch envelope; throws ValidationError with details [{path, problem}] when the body is not a batch. */
export function parseBatchEnvelope(body: unknown, opts: { maxSamples: number }): BatchEnvelope {
  if (isPlainBatchEnvelope(body, opts.maxSamples)) return body
  let schema = envelopeSchemas.get(opts.maxSamples)
  if (!schema) envelopeSchemas.set(opts.maxSamples, (schema = batchEnvelopeSchema(opts.maxSamples)))
  const parsed = schema.safeParse(body)
  if (parsed.success) return parsed.data
  const details = parsed.error.issues.map((i) => ({ path: i.path.map(String).join('.') || '(body)', problem: i.message }))
  throw new ValidationError(`the body is not a batch: ${details.map((d) => `${d.path} ${d.problem}`).join('; ')}`, details)
}

// ── the types understood ──

interface QuantityType {
  metric: Metric
  /** unit as HealthKit writes it → factor to the canonical unit (ms or bpm) */
  units: ReadonlyMap<string, number>
  min: number
  max: number
  /** how the range is named in a rejection */
  rangeUnit: string
}
const HRV = {
  units: new Map([
    ['ms', 1],
    ['s', 1000],
  ]),
  min: 1,
  max: 500,
  rangeUnit: 'ms',
}
const RATE = { units: new Map([['count/min', 1]]), min: 20, max: 250, rangeUnit: 'count/min' }
const QUANTITY_TYPES: ReadonlyMap<string, QuantityType> = new Map([
  ['HKQuantityTypeIdentifierHeartRateVariabilitySDNN', { metric: 'hrv_sdnn', ...HRV }],
  ['HPHQuantityTypeIdentifierHeartRateVariabilityRMSSD', { metric: 'hrv_rmssd', ...HRV }],
  ['HKQuantityTypeIdentifierRestingHeartRate', { metric: 'resting_hr', ...RATE }],
  ['HKQuantityTypeIdentifierHeartRate', { metric: 'heart_rate', ...RATE }],
])
const SLEEP_TYPE = 'HKCategoryTypeIdentifierSleepAnalysis'
/** HealthKit's HKHeartbeatSeriesSample: `beats` instead of a value, one derived hrv_rmssd sample (docs/insights.md §2a) */
export const HEARTBEAT_SERIES_TYPE = 'HKDataTypeIdentifierHeartbeatSeries'
const SDNN_TYPE = 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN'
const MIN_BEATS = 2
const MAX_BEATS = 10_000
/** a beat may lie up to this long after endDate (HealthKit's endDate is whole seconds) */
const BEAT_SLACK_MS = 1000
/** HKCategoryValueSleepAnalysis raw values 0…5 */
const SLEEP_CODES: readonly SleepStage[] = ['in_bed', 'asleep', 'awake', 'core', 'deep', 'rem']
const SLEEP_NAMES: ReadonlyMap<string, SleepStage> = new Map([
  ['HKCategoryValueSleepAnalysisInBed', 'in_bed'],
  ['HKCategoryValueSleepAnalysisAsleepUnspecified', 'asleep'],
  ['HKCategoryValueSleepAnalysisAsleep', 'asleep'],
  ['HKCategoryValueSleepAnalysisAwake', 'awake'],
  ['HKCategoryValueSleepAnalysisAsleepCore', 'core'],
  ['HKCategoryValueSleepAnalysisAsleepDeep', 'deep'],
  ['HKCategoryValueSleepAnalysisAsleepREM', 'rem'],
])

const MAX_AHEAD_MS = 10 * 60_000
const DAY_MS = 86_400_000
const MAX_SLEEP_MS = 24 * 3_600_000
// no wearable sample predates the epoch; the bound also keeps every instant a 4-digit-year ISO string
const EARLIEST_MS = Date.UTC(1970, 0, 1)
// ignoredByType is a per-type count: keys stay bounded whatever a client sends as `type`
const MAX_TYPE_KEY = 128

/** Why one sample is rejected; caught per sample, so one bad sample never fails its batch. */
export class SampleProblem extends Error {}

// ── dates ──

// 2026-03-01T02:14:00-08:00, …Z, …+0530, fractional seconds (isoDate); export.xml's 2026-03-01 02:14:00 -0800
// (exportDate). Both are read character by character, at a fraction of a regular expression's cost: a date is
// read twice a sample in the api and twice in normalize, and each match of a regular expression allocates an
// array of strings (≈ 1.4 KB a sample in all, an eighth of what the HTTP path allocated).

export interface ParsedDate {
  /** the instant, UTC epoch milliseconds */
  ms: number
  /** the offset written on the date */
  offsetMinutes: number
}

const isDigit = (c: number) => c >= 48 && c <= 57

/**
 * export.xml's `2026-03-01 02:14:00 -0800`, exactly `^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}$`; undefined when
 * the text is not of that form.
 */
function exportDate(s: string, field: string): ParsedDate | undefined {
  const sign = s.charCodeAt(20)
  if (s.length !== 25 || s.charCodeAt(19) !== 32 || (sign !== 43 && sign !== 45)) return undefined
  const dt = dateAndTime(s, 32)
  const zoneHours = digits(s, 21, 2)
  const zoneMinutes = digits(s, 23, 2)
  if (!dt || (zoneHours | zoneMinutes) < 0) return undefined
  return instant(field, dt, 0, sign === 45 ? -1 : 1, zoneHours, zoneMinutes)
}

/**
 * ISO 8601 with an offset, exactly `^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$` (the
 * fraction read to the millisecond); undefined when the text is not of that form.
 */
function isoDate(s: string, field: string): ParsedDate | undefined {
  const n = s.length
  if (n < 20) return undefined
  const dt = dateAndTime(s, 84)
  if (!dt) return undefined
  let at = 19
  let millis = 0
  if (s.charCodeAt(at) === 46) {
    let end = at + 1
    while (end < n && end - at <= 9 && isDigit(s.charCodeAt(end))) end++
    const count = end - at - 1
    if (count === 0) return undefined
    const kept = Math.min(3, count)
    millis = digits(s, at + 1, kept) * 10 ** (3 - kept)
    at = end
  }
  const zone = s.charCodeAt(at)
  if (zone === 90) return at + 1 === n ? instant(field, dt, millis, 1, 0, 0) : undefined
  if (zone !== 43 && zone !== 45) return undefined
  const colon = n - at === 6
  if (!colon && n - at !== 5) return undefined
  if (colon && s.charCodeAt(at + 3) !== 58) return undefined
  const zoneHours = digits(s, at + 1, 2)
  const zoneMinutes = digits(s, colon ? at + 4 : at + 3, 2)
  if ((zoneHours | zoneMinutes) < 0) return undefined
  return instant(field, dt, millis, zone === 45 ? -1 : 1, zoneHours, zoneMinutes)
}

/** A date with an explicit offset, parsed strictly; throws SampleProblem naming `field`. */
export function parseDate(value: unknown, field: string): ParsedDate {
  const parsed = typeof value === 'string' ? (isoDate(value, field) ?? exportDate(value, field)) : undefined
  if (!parsed) throw new SampleProblem(`${field} is not an ISO 8601 date with offset nor an export date`)
  return parsed
}

/** The instant a parsed date names; throws SampleProblem when it names none (Feb 30, 24:00, +14:01…). */
function instant(field: string, [year, month, day, hour, minute, second]: DateAndTime, millis: number, sign: 1 | -1, zoneHours: number, zoneMinutes: number): ParsedDate {
  if (zoneMinutes > 59) throw new SampleProblem(`${field} is not a valid calendar date and time`)
  // `|| 0`: -00:00 is UTC too, not -0
  const offsetMinutes = sign * (zoneHours * 60 + zoneMinutes) || 0
  if (Math.abs(offsetMinutes) > 14 * 60) throw new SampleProblem(`${field} has an offset beyond ±14:00`)
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) {
    throw new SampleProblem(`${field} is not a valid calendar date and time`)
  }
  const local = civilDayNumber(year, month, day) * DAY_MS + ((hour * 60 + minute) * 60 + second) * 1000 + millis
  return { ms: local - offsetMinutes * 60_000, offsetMinutes }
}

// ── one sample ──

/** A value as a rejection may quote it: short, and never a whole object. */
function shown(value: unknown): string {
  if (typeof value === 'string') return `'${value.length > 40 ? `${value.slice(0, 40)}…` : value}'`
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value)
  return `(${typeof value})`
}

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/

/** The value in the canonical unit; export.xml writes numbers as strings. */
function quantityOf(o: Record<string, unknown>, type: string, q: QuantityType): number {
  if (o.unit === undefined || o.unit === null) throw new SampleProblem(`unit is missing for ${type}`)
  const factor = typeof o.unit === 'string' ? q.units.get(o.unit) : undefined
  if (factor === undefined) throw new SampleProblem(`unknown unit ${shown(o.unit)} for ${type}`)
  if (o.value === undefined || o.value === null) throw new SampleProblem('value is missing')
  const given = typeof o.value === 'number' ? o.value : typeof o.value === 'string' && DECIMAL.test(o.value) ? Number(o.value) : NaN
  if (!Number.isFinite(given)) throw new SampleProblem(`value ${shown(o.value)} is not a finite number`)
  // 15 significant digits: 0.0071 s and 7.1 ms give the same value (7.1, not 7.1000000000000005), hence one id.
  // A decimal of at most 15 characters has at most 15 significant digits, which a double gives back unchanged:
  // in the canonical unit already, it skips the rounding (toPrecision is most of this function's cost)
  const value = factor === 1 && typeof o.value === 'string' && o.value.length <= 15 ? given : Number((given * factor).toPrecision(15))
  if (!(value >= q.min && value <= q.max)) throw new SampleProblem(`value out of range ${q.min}..${q.max} ${q.rangeUnit}`)
  return value
}

function stageOf(value: unknown): SleepStage {
  if (value === undefined || value === null) throw new SampleProblem('value is missing')
  const stage = typeof value === 'number' ? SLEEP_CODES[value] : typeof value === 'string' ? (/^\d$/.test(value) ? SLEEP_CODES[Number(value)] : SLEEP_NAMES.get(value)) : undefined
  if (stage === undefined) throw new SampleProblem(`unknown sleep value ${shown(value)}`)
  return stage
}

/** An optional text field of the sample; absent, null and '' all mean "not given". */
function ownText(o: Record<string, unknown>, key: string, max: number): string | undefined {
  const value = o[key]
  if (value === undefined || value === null || value === '') return undefined
  if (typeof value !== 'string') throw new SampleProblem(`${key} is not a string`)
  if (value.length > max) throw new SampleProblem(`${key} is longer than ${max} characters`)
  return value
}

function sourceOf(o: Record<string, unknown>, batchSource: BatchEnvelope['source']): SampleSource {
  const name = ownText(o, 'sourceName', 256)
  // docs/api.md §3: the batch source is the default for samples that name none; a sample that names
  // its own source takes nothing from it (an iPhone sample must not get the Watch's device)
  const fallback = name === undefined ? batchSource : undefined
  const source: SampleSource = { name: name ?? fallback?.name ?? 'unknown' }
  // absent fields are left out, not undefined, so that equal samples serialise to equal JSON
  const bundleId = ownText(o, 'sourceBundleId', 256) ?? fallback?.bundleId
  if (bundleId !== undefined) source.bundleId = bundleId
  const device = ownText(o, 'device', 1024) ?? fallback?.device
  if (device !== undefined) source.device = device
  return source
}

/** A sample that passed every check, when the caller only counts (the api's answer); `derived`: hrv_rmssd samples it gives too. */
interface Checked {
  checked: true
  derived: number
}

/** A heartbeat series' beats, checked: times in ms since startDate, and the gap flags. */
function heartbeatBeats(o: Record<string, unknown>, durationMs: number): { times: Float64Array; gaps: boolean[] | undefined } {
  const beats = o.beats
  if (beats === undefined || beats === null) throw new SampleProblem('beats is missing')
  if (!Array.isArray(beats)) throw new SampleProblem('beats is not an array')
  if (beats.length < MIN_BEATS || beats.length > MAX_BEATS) throw new SampleProblem(`beats must have ${MIN_BEATS}..${MAX_BEATS} entries (has ${beats.length})`)
  const times = new Float64Array(beats.length)
  let gaps: boolean[] | undefined
  let before = -Infinity
  for (let i = 0; i < beats.length; i++) {
    const b: unknown = beats[i]
    if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new SampleProblem(`beats[${i}] is not an object`)
    const { t, precededByGap } = b as { t?: unknown; precededByGap?: unknown }
    if (typeof t !== 'number' || !Number.isFinite(t)) throw new SampleProblem(`beats[${i}].t ${shown(t)} is not a finite number`)
    if (t < 0) throw new SampleProblem(`beats[${i}].t ${t} is negative`)
    if (!(t > before)) throw new SampleProblem(`beats[${i}].t ${t} is not after beats[${i - 1}].t ${before}`)
    const ms = t * 1000
    if (ms > durationMs + BEAT_SLACK_MS) throw new SampleProblem(`beats[${i}].t ${t} is later than endDate + 1 s`)
    if (precededByGap !== undefined && precededByGap !== null && typeof precededByGap !== 'boolean') throw new SampleProblem(`beats[${i}].precededByGap is not a boolean`)
    if (precededByGap === true) (gaps ??= [])[i] = true
    times[i] = ms
    before = t
  }
  return { times, gaps }
}

/**
 * The hrv_rmssd sample an SDNN record's beat list gives (export.xml's InstantaneousBeatsPerMinute times, as
 * `beatTimes`); undefined when it gives none: too few beats or no fraction derive nothing, and are no error.
 */
function exportDerived(o: Record<string, unknown>, start: ParsedDate): { value: number; startMs: number; endMs: number } | undefined {
  const texts = o.beatTimes
  if (!Array.isArray(texts) || texts.length < 3 || texts.length > MAX_BEATS || !texts.every((t) => typeof t === 'string')) return undefined
  const offsetMs = start.offsetMinutes * 60_000
  const local = start.ms + offsetMs
  const midnight = Math.floor(local / DAY_MS) * DAY_MS
  let placed
  try {
    placed = placeExportBeats(texts as string[], local - midnight)
  } catch {
    // a time that is not a clock time: the list derives nothing; the record's own SDNN sample stands
    return undefined
  }
  if (placed === undefined) return undefined
  const r = rmssdOfSeries({ times: placed.times, resolutionMs: placed.resolutionMs })
  if (r.rmssd === undefined) return undefined
  const origin = midnight - offsetMs
  return { value: r.rmssd, startMs: origin + Math.round(placed.times[0]!), endMs: origin + Math.round(placed.times[placed.times.length - 1]!) }
}

function normalizeSample(raw: unknown, batch: BatchEnvelope, ctx: NormalizeContext, build: boolean, out: NormalizedSample[]): Checked | { ignoredType: string } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new SampleProblem('sample is not an object')
  const o = raw as Record<string, unknown>
  const type = o.type
  if (type === undefined || type === null || type === '') throw new SampleProblem('type is missing')
  if (typeof type !== 'string') throw new SampleProblem('type is not a string')
  const quantity = QUANTITY_TYPES.get(type)
  const series = type === HEARTBEAT_SERIES_TYPE
  if (!quantity && !series && type !== SLEEP_TYPE) return { ignoredType: type }

  const metric: Metric = quantity ? quantity.metric : series ? 'hrv_rmssd' : 'sleep_stage'
  const value = quantity ? quantityOf(o, type, quantity) : undefined
  const stage = quantity || series ? undefined : stageOf(o.value)

  const start = parseDate(o.startDate, 'startDate')
  const end = parseDate(o.endDate, 'endDate')
  if (end.ms < start.ms) throw new SampleProblem('endDate before startDate')
  if (start.ms < EARLIEST_MS) throw new SampleProblem('date earlier than 1970-01-01')
  // end ≥ start, so the end alone bounds both dates
  if (end.ms > ctx.now.getTime() + MAX_AHEAD_MS) throw new SampleProblem('date later than now + 10 minutes')
  if (stage !== undefined && end.ms === start.ms) throw new SampleProblem('sleep sample has zero duration')
  if (stage !== undefined && end.ms - start.ms > MAX_SLEEP_MS) throw new SampleProblem('sleep sample longer than 24 h')

  // a heartbeat series is its derived sample: T_i = startDate + t_i, exact times (q = 0)
  let derived: { value: number; startMs: number; endMs: number } | undefined
  if (series) {
    const beats = heartbeatBeats(o, end.ms - start.ms)
    const r = rmssdOfSeries({ times: beats.times, gaps: beats.gaps, resolutionMs: 0 })
    if (r.rmssd === undefined) throw new SampleProblem(r.problem ?? 'the series gives no value')
    derived = { value: r.rmssd, startMs: start.ms + Math.round(beats.times[0]!), endMs: start.ms + Math.round(beats.times[beats.times.length - 1]!) }
  } else if (type === SDNN_TYPE && o.beatTimes !== undefined) derived = exportDerived(o, start)

  const source = sourceOf(o, batch.source)
  const uuid = ownText(o, 'uuid', 256)
  if (!build) return { checked: true, derived: derived === undefined ? 0 : 1 }
  let extra: NormalizedSample | undefined
  if (derived !== undefined) {
    const startIso = isoInstant(derived.startMs)
    // docs/insights.md §2a: the hash of (user, hrv_rmssd, beats, the series' uuid or its first beat)
    const id = hashUuid(ctx.userId, 'hrv_rmssd', 'beats', series && uuid !== undefined ? uuid : startIso)
    const sample: Sample = {
      userId: ctx.userId,
      metric: 'hrv_rmssd',
      start: startIso,
      end: isoInstant(derived.endMs),
      utcOffsetMinutes: start.offsetMinutes,
      value: derived.value,
      source,
      ingestId: ctx.ingestId,
    }
    if (series && uuid !== undefined) sample.externalId = uuid
    extra = { id, sample }
  }
  if (series) {
    out.push(extra!)
    return { checked: true, derived: 1 }
  }
  const startIso = isoInstant(start.ms)
  const endIso = isoInstant(end.ms)
  // docs/architecture.md §4: HealthKit's uuid when there is one, else a hash of what makes the sample itself
  const id =
    uuid === undefined
      ? hashUuid(ctx.userId, metric, source.name, startIso, endIso, stage ?? String(value))
      : isUuid(uuid)
        ? uuid.toLowerCase()
        : hashUuid('uuid', ctx.userId, uuid)
  const sample: Sample =
    value !== undefined
      ? { userId: ctx.userId, metric, start: startIso, end: endIso, utcOffsetMinutes: start.offsetMinutes, value, source, ingestId: ctx.ingestId }
      : { userId: ctx.userId, metric, start: startIso, end: endIso, utcOffsetMinutes: start.offsetMinutes, stage, source, ingestId: ctx.ingestId }
  // absent, not undefined: equal samples serialise to equal JSON
  if (uuid !== undefined) sample.externalId = uuid
  out.push({ id, sample })
  // the record's own SDNN sample first, then what its beat list gives
  if (extra !== undefined) out.push(extra)
  return { checked: true, derived: extra === undefined ? 0 : 1 }
}

/**
 * Every sample checked on its own: valid ones normalised, bad ones rejected with a reason, other types
 * counted and skipped. With `build: false` only the checks run (`samples` stays empty, `accepted` counts).
 */
export function normalizeBatch(batch: BatchEnvelope, ctx: NormalizeContext, opts: { build?: boolean } = {}): NormalizeResult {
  const build = opts.build ?? true
  const samples: NormalizedSample[] = []
  let accepted = 0
  const rejected: Rejection[] = []
  const ignoredByType = new Map<string, number>()
  let ignored = 0
  let derived = 0
  // an index loop, not forEach: a hole in the array is a sample too, and gets its rejection
  for (let index = 0; index < batch.samples.length; index++) {
    try {
      const r = normalizeSample(batch.samples[index], batch, ctx, build, samples)
      if ('checked' in r) {
        accepted++
        derived += r.derived
      } else {
        ignored++
        const key = r.ignoredType.length > MAX_TYPE_KEY ? `${r.ignoredType.slice(0, MAX_TYPE_KEY)}…` : r.ignoredType
        ignoredByType.set(key, (ignoredByType.get(key) ?? 0) + 1)
      }
    } catch (err) {
      if (!(err instanceof SampleProblem)) throw err
      rejected.push({ index, problem: err.message })
    }
  }
  // fromEntries defines own properties: a type named "__proto__" is counted like any other
  return { samples, accepted, rejected, ignored, ignoredByType: Object.fromEntries(ignoredByType), derived }
}
