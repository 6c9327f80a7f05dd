import type { Envelope } from './envelope.ts'
import { METRICS, SAMPLE_TYPE, STAGES, type SampleBatch } from './schemas.ts'

// docs/benchmarks.md §2: the samples-writer reads every sample the pipeline writes, and the
// zod schema spent ~4 µs a sample on it (the datetime regex, a fresh copy of every object). An event in the
// one form the pipeline writes is recognised here by direct checks at a tenth of that; everything else — an
// unknown key zod would strip, a date in another form, any doubt — is left to the zod schema, which says what
// is wrong. So a stream is still never trusted: `true` here implies the schema accepts the event unchanged
// (test/unit/streams/plain.test.ts checks that against the schema on generated and mutated events).

export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Keys a `for…in` visits: an object's own keys, when nothing is enumerable on its prototype. */
export function keyCount(o: object): number {
  let n = 0
  for (const _ in o) n++
  return n
}

export const text = (v: unknown, min: number, max: number): boolean => typeof v === 'string' && v.length >= min && v.length <= max
const optionalText = (v: unknown, max: number): boolean => v === undefined || (typeof v === 'string' && v.length <= max)

/** The value of the digits at `at`..`at + n` of `s`; -1 when one is not 0–9 (also normalize's date reader). */
export function digits(s: string, at: number, n: number): number {
  let v = 0
  for (let i = at; i < at + n; i++) {
    const d = s.charCodeAt(i) - 48
    if (!(d >= 0 && d <= 9)) return -1
    v = v * 10 + d
  }
  return v
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
const isLeap = (y: number) => y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0)

/** `YYYY-MM-DDTHH:MM:SS.sssZ` naming a real day and time: what Date#toISOString writes for years 0–9999. */
export function isIsoInstant(v: unknown): boolean {
  if (typeof v !== 'string' || v.length !== 24) return false
  if (v[4] !== '-' || v[7] !== '-' || v[10] !== 'T' || v[13] !== ':' || v[16] !== ':' || v[19] !== '.' || v[23] !== 'Z') return false
  const year = digits(v, 0, 4)
  const month = digits(v, 5, 2)
  const day = digits(v, 8, 2)
  if ((year | month | day | digits(v, 20, 3)) < 0 || month < 1 || month > 12 || day < 1) return false
  if (day > (month === 2 && isLeap(year) ? 29 : (DAYS_IN_MONTH[month - 1] as number))) return false
  const hour = digits(v, 11, 2)
  const minute = digits(v, 14, 2)
  const second = digits(v, 17, 2)
  return hour >= 0 && hour <= 23 && minute >= 0 && minute <= 59 && second >= 0 && second <= 59
}

const USER_ID = /^[A-Za-z0-9_-]{1,64}$/
const SAMPLE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const METRIC_SET: ReadonlySet<unknown> = new Set(METRICS)
const STAGE_SET: ReadonlySet<unknown> = new Set(STAGES)
const ENVELOPE_KEYS = 7

function isPlainSource(v: unknown): boolean {
  if (!isRecord(v) || !text(v.name, 1, 256) || !optionalText(v.bundleId, 256) || !optionalText(v.device, 1024)) return false
  return keyCount(v) === 1 + Number(v.bundleId !== undefined) + Number(v.device !== undefined)
}

function isPlainSample(v: unknown, sleep: boolean): boolean {
  if (!isRecord(v)) return false
  const { value, stage } = v
  if (sleep ? value !== undefined || !STAGE_SET.has(stage) : stage !== undefined || typeof value !== 'number' || !Number.isFinite(value)) return false
  const offset = v.utcOffsetMinutes
  if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < -840 || offset > 840) return false
  if (typeof v.id !== 'string' || !SAMPLE_ID.test(v.id) || !isIsoInstant(v.start) || !isIsoInstant(v.end)) return false
  if (!optionalText(v.externalId, 256) || !isPlainSource(v.source)) return false
  // id, start, end, utcOffsetMinutes, source, value or stage; and externalId
  return keyCount(v) === 6 + Number(v.externalId !== undefined)
}

/**
 * Whether `e` is an `hph.sample.v2` event in the form normalize writes it, which the schema (`SampleEvent`,
 * streams/upcast.ts) would accept and return unchanged. `false` says nothing: ask the schema.
 */
export function isPlainSampleEvent(e: unknown): e is Envelope<SampleBatch> {
  if (!isRecord(e) || e.type !== SAMPLE_TYPE || e.specversion !== '1.0') return false
  if (!text(e.id, 1, 200) || !text(e.source, 1, Infinity) || !text(e.subject, 1, Infinity) || !isIsoInstant(e.time)) return false
  const d = e.data
  if (!isRecord(d) || keyCount(e) !== ENVELOPE_KEYS) return false
  if (typeof d.userId !== 'string' || !USER_ID.test(d.userId) || !METRIC_SET.has(d.metric) || !text(d.ingestId, 1, Infinity)) return false
  const samples = d.samples
  if (!Array.isArray(samples) || samples.length === 0 || keyCount(d) !== 4) return false
  const sleep = d.metric === 'sleep_stage'
  for (let i = 0; i < samples.length; i++) if (!isPlainSample(samples[i], sleep)) return false
  return true
}
