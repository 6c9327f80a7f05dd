import { z } from 'zod'
import { ValidationError } from '../../errors.ts'
import { hashUuid, isUuid } from '../../streams/ids.ts'
import type { Metric, Sample, SampleSource, SleepStage } from '../../streams/schemas.ts'

// spec/api.md "Posting samples": HealthKit-shaped batch → canonical samples. Pure: `now` is given.

export interface NormalizedSample {
  id: string
  sample: Sample
}
export interface Rejection {
  index: number
  problem: string
}
export interface NormalizeResult {
  samples: NormalizedSample[]
  rejected: Rejection[]
  ignored: number
  ignoredByType: Record<string, number>
}

const str = (max: number) => z.string().min(1).max(max)
export const BatchEnvelope = z.object({
  batchId: str(128).optional(),
  source: z.object({ name: str(256).optional(), bundleId: str(256).optional(), device: str(1024).optional() }).optional(),
  samples: z.array(z.unknown()),
})
export type BatchEnvelope = z.infer<typeof BatchEnvelope>

/** The body must be a batch; otherwise nothing of it is stored (400). */
export function parseBatchEnvelope(body: unknown, opts: { maxSamples: number }): BatchEnvelope {
  const r = BatchEnvelope.safeParse(body)
  if (!r.success) {
    const details = r.error.issues.map((i) => ({ path: i.path.join('.') || '(body)', problem: i.message }))
    throw new ValidationError(`the body is not a batch: ${details.map((d) => `${d.path}: ${d.problem}`).join('; ')}`, details)
  }
  const n = r.data.samples.length
  if (n < 1 || n > opts.maxSamples) {
    throw new ValidationError(`samples must have 1..${opts.maxSamples} entries, got ${n}`, [{ path: 'samples', problem: `must have 1..${opts.maxSamples} entries` }])
  }
  return r.data
}

interface QuantityType {
  metric: Metric
  /** unit → factor to the canonical unit */
  units: Record<string, number>
  range: [number, number]
  unitName: string
}

const HRV_UNITS = { ms: 1, s: 1000 }
const RATE_UNITS = { 'count/min': 1 }
const QUANTITY: Record<string, QuantityType> = {
  HKQuantityTypeIdentifierHeartRateVariabilitySDNN: { metric: 'hrv_sdnn', units: HRV_UNITS, range: [1, 500], unitName: 'ms' },
  HPHQuantityTypeIdentifierHeartRateVariabilityRMSSD: { metric: 'hrv_rmssd', units: HRV_UNITS, range: [1, 500], unitName: 'ms' },
  HKQuantityTypeIdentifierRestingHeartRate: { metric: 'resting_hr', units: RATE_UNITS, range: [20, 250], unitName: '/min' },
  HKQuantityTypeIdentifierHeartRate: { metric: 'heart_rate', units: RATE_UNITS, range: [20, 250], unitName: '/min' },
}
const SLEEP_TYPE = 'HKCategoryTypeIdentifierSleepAnalysis'
const SLEEP_CODES: readonly SleepStage[] = ['in_bed', 'asleep', 'awake', 'core', 'deep', 'rem']
const SLEEP_NAMES: Record<string, SleepStage> = {
  HKCategoryValueSleepAnalysisInBed: 'in_bed',
  HKCategoryValueSleepAnalysisAsleepUnspecified: 'asleep',
  HKCategoryValueSleepAnalysisAsleep: 'asleep',
  HKCategoryValueSleepAnalysisAwake: 'awake',
  HKCategoryValueSleepAnalysisAsleepCore: 'core',
  HKCategoryValueSleepAnalysisAsleepDeep: 'deep',
  HKCategoryValueSleepAnalysisAsleepREM: 'rem',
}
const MAX_FUTURE_MS = 10 * 60_000
const MAX_SLEEP_MS = 24 * 3_600_000

class Reject extends Error {}

// 2026-03-01T02:14:00-08:00, …Z, fractional seconds, ±hhmm; or the export form 2026-03-01 02:14:00 -0800
const ISO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})$/
const EXPORT = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) ([+-]\d{4})$/

/** A date with its offset → UTC milliseconds and the offset written, in minutes. */
export function parseDate(value: unknown, field: string): { ms: number; offset: number } {
  const bad = () => new Reject(`${field} is not an ISO 8601 date with offset nor an export date (got ${typeof value === 'string' ? JSON.stringify(value.slice(0, 40)) : typeof value})`)
  if (typeof value !== 'string') throw bad()
  const m = ISO.exec(value) ?? EXPORT.exec(value)
  if (!m) throw bad()
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  const frac = m.length === 9 ? (m[7] ?? '') : ''
  const zone = (m.length === 9 ? m[8] : m[7]) as string
  const offset = zone === 'Z' ? 0 : (zone[0] === '-' ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(-2)))
  const local = Date.UTC(y, mo - 1, d, h, mi, s)
  const check = new Date(local)
  if (mo < 1 || mo > 12 || check.getUTCDate() !== d || check.getUTCMonth() !== mo - 1 || h > 23 || mi > 59 || s > 59) throw new Reject(`${field} is not a valid calendar date and time`)
  if (Math.abs(offset) > 14 * 60 || Number(zone.slice(-2)) > 59) throw new Reject(`${field} has an offset beyond ±14:00`)
  const ms = local + Math.floor(Number(`0.${frac || '0'}`) * 1000) - offset * 60_000
  return { ms, offset }
}

function numberOf(value: unknown): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN
  if (!Number.isFinite(n)) throw new Reject(`value must be a finite number (got ${typeof value === 'string' ? JSON.stringify(value.slice(0, 40)) : typeof value})`)
  return n
}

function stageOf(value: unknown): SleepStage {
  if (typeof value === 'string' && Object.hasOwn(SLEEP_NAMES, value)) return SLEEP_NAMES[value] as SleepStage
  const code = typeof value === 'number' ? value : typeof value === 'string' && /^\d$/.test(value) ? Number(value) : NaN
  const stage = Number.isInteger(code) ? SLEEP_CODES[code] : undefined
  if (!stage) throw new Reject(`unknown sleep value ${JSON.stringify(typeof value === 'string' ? value.slice(0, 60) : value)}`)
  return stage
}

const optionalString = (o: Record<string, unknown>, key: string, max: number): string | undefined => {
  const v = o[key]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw new Reject(`${key} must be a string of 1..${max} characters`)
  return v
}

function sourceOf(o: Record<string, unknown>, batch: BatchEnvelope): SampleSource {
  const name = optionalString(o, 'sourceName', 256) ?? batch.source?.name ?? 'unknown'
  const bundleId = optionalString(o, 'sourceBundleId', 256) ?? batch.source?.bundleId
  const device = optionalString(o, 'device', 1024) ?? batch.source?.device
  return { name, ...(bundleId ? { bundleId } : {}), ...(device ? { device } : {}) }
}

type Mapped = { kind: 'sample'; sample: NormalizedSample } | { kind: 'ignored'; type: string }

function normalizeOne(raw: unknown, batch: BatchEnvelope, ctx: { userId: string; ingestId: string; now: Date }): Mapped {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Reject('sample is not an object')
  const o = raw as Record<string, unknown>
  const type = o.type
  if (type === undefined || type === null || type === '') throw new Reject('type is missing')
  if (typeof type !== 'string') throw new Reject('type must be a string')
  const quantity = Object.hasOwn(QUANTITY, type) ? QUANTITY[type] : undefined
  if (!quantity && type !== SLEEP_TYPE) return { kind: 'ignored', type: type.slice(0, 200) }

  const start = parseDate(o.startDate, 'startDate')
  const end = parseDate(o.endDate, 'endDate')
  if (end.ms < start.ms) throw new Reject('endDate before startDate')
  const latest = ctx.now.getTime() + MAX_FUTURE_MS
  if (start.ms > latest || end.ms > latest) throw new Reject('date later than now + 10 minutes')

  let value: number | undefined
  let stage: SleepStage | undefined
  let metric: Metric
  if (quantity) {
    const unit = o.unit
    if (typeof unit !== 'string' || !Object.hasOwn(quantity.units, unit)) throw new Reject(`unknown unit ${JSON.stringify(typeof unit === 'string' ? unit.slice(0, 40) : unit ?? null)} for ${type}`)
    value = numberOf(o.value) * (quantity.units[unit] as number)
    const [lo, hi] = quantity.range
    if (!(value >= lo && value <= hi)) throw new Reject(`value out of range ${lo}..${hi} ${quantity.unitName}`)
    metric = quantity.metric
  } else {
    stage = stageOf(o.value)
    if (end.ms === start.ms) throw new Reject('sleep sample has zero duration')
    if (end.ms - start.ms > MAX_SLEEP_MS) throw new Reject('sleep sample longer than 24 h')
    metric = 'sleep_stage'
  }
  const source = sourceOf(o, batch)
  const uuid = optionalString(o, 'uuid', 256)
  const startIso = new Date(start.ms).toISOString()
  const endIso = new Date(end.ms).toISOString()
  // DESIGN.md §4: the HealthKit uuid when there is one, else a hash of what makes the sample itself
  const id = uuid === undefined
    ? hashUuid(ctx.userId, metric, source.name, startIso, endIso, stage ?? String(value))
    : isUuid(uuid) ? uuid.toLowerCase() : hashUuid('uuid', ctx.userId, uuid)
  const sample: Sample = {
    userId: ctx.userId, metric, start: startIso, end: endIso, utcOffsetMinutes: start.offset,
    ...(value !== undefined ? { value } : {}), ...(stage ? { stage } : {}),
    source, ...(uuid !== undefined ? { externalId: uuid } : {}), ingestId: ctx.ingestId,
  }
  return { kind: 'sample', sample: { id, sample } }
}

/** Every sample checked on its own: valid ones normalised, bad ones rejected with a reason, unknown types ignored. */
export function normalizeBatch(batch: BatchEnvelope, ctx: { userId: string; ingestId: string; now: Date }): NormalizeResult {
  // no prototype: a type named "__proto__" or "constructor" is counted like any other
  const out: NormalizeResult = { samples: [], rejected: [], ignored: 0, ignoredByType: Object.create(null) as Record<string, number> }
  batch.samples.forEach((raw, index) => {
    try {
      const r = normalizeOne(raw, batch, ctx)
      if (r.kind === 'sample') out.samples.push(r.sample)
      else {
        out.ignored++
        out.ignoredByType[r.type] = (out.ignoredByType[r.type] ?? 0) + 1
      }
    } catch (err) {
      if (!(err instanceof Reject)) throw err
      out.rejected.push({ index, problem: err.message })
    }
  })
  return out
}
