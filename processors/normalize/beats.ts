// RMSSD from a beat-to-beat series (docs/insights.md §2a): usable intervals, a clean
// band around the series' own median, successive differences of clean neighbours, and the correction for beat
// times rounded to a step. Pure, allocation-light: one call per series, a million series in a large export.

/** Intervals outside this range (ms) are not beats of a resting heart: a missed or doubled detection. */
export const RR_MIN_MS = 300
export const RR_MAX_MS = 2000
/** A usable interval further than this fraction from the series' median is ectopic or a missed beat. */
export const CLEAN_BAND = 0.2
/** Fewer successive differences than this give no value. */
export const MIN_DIFFERENCES = 20
/** A derived value outside this range (ms) is no value (the range every HRV sample is held to). */
export const RMSSD_MIN_MS = 1
export const RMSSD_MAX_MS = 500

export interface BeatSeries {
  /**
   * The beats' instants in ms, strictly increasing. Any origin: only differences are used, so the caller
   * passes times relative to the series' start (small numbers, exact differences), not epoch instants.
   */
  times: ArrayLike<number>
  /** gaps[i] for i ≥ 1: the sensor lost beats just before beat i (absent: no gaps) */
  gaps?: ArrayLike<boolean> | undefined
  /** the step (ms) the beat times were written in; 0 for exact times */
  resolutionMs: number
}

export interface RmssdResult {
  /** the RMSSD in ms; undefined when the series gives no value (see `problem`) */
  rmssd: number | undefined
  /** intervals of the series (beats − 1) */
  intervals: number
  /** usable intervals (no gap before, within 300–2000 ms) */
  usable: number
  /** usable intervals within the clean band */
  clean: number
  /** the median of the usable intervals (NaN without any) */
  medianMs: number
  /** successive differences of clean neighbours */
  differences: number
  /** why there is no value, in words a rejection can carry */
  problem?: string
}

/** The median of `values` (sorted in place); the mean of the two middle values for an even count. */
export function medianInPlace(values: Float64Array): number {
  const n = values.length
  if (n === 0) return NaN
  values.sort()
  const mid = n >> 1
  return n % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2
}

/** RMSSD of one heartbeat series, exactly as docs/insights.md §2a defines it. */
export function rmssdOfSeries(series: BeatSeries): RmssdResult {
  const { times, gaps } = series
  const q = series.resolutionMs
  const beats = times.length
  const intervals = Math.max(0, beats - 1)
  // rr[i - 1] = RR_i; NaN marks an interval that is not usable
  const rr = new Float64Array(intervals)
  let usable = 0
  for (let i = 1; i < beats; i++) {
    const v = times[i]! - times[i - 1]!
    if (gaps?.[i] !== true && v >= RR_MIN_MS && v <= RR_MAX_MS) {
      rr[i - 1] = v
      usable++
    } else rr[i - 1] = NaN
  }
  const sorted = new Float64Array(usable)
  for (let i = 0, k = 0; i < intervals; i++) if (!Number.isNaN(rr[i]!)) sorted[k++] = rr[i]!
  const median = medianInPlace(sorted)
  const band = CLEAN_BAND * median
  let clean = 0
  for (let i = 0; i < intervals; i++) {
    const v = rr[i]!
    if (!Number.isNaN(v) && Math.abs(v - median) <= band) clean++
    else rr[i] = NaN
  }
  let m = 0
  let sum = 0
  for (let i = 1; i < intervals; i++) {
    const a = rr[i - 1]!
    const b = rr[i]!
    // NaN on either side (a dropped interval between them) breaks the pair
    if (Number.isNaN(a) || Number.isNaN(b)) continue
    const d = b - a
    sum += d * d
    m++
  }
  const base = { intervals, usable, clean, medianMs: median, differences: m }
  if (m < MIN_DIFFERENCES) return { ...base, rmssd: undefined, problem: `${beats} beats give fewer than ${MIN_DIFFERENCES} clean successive differences (${m})` }
  // rounding each beat time to a step q adds q²/12 of variance to each; a second difference sums three of them
  // with weights 1, −2, 1, hence 6·q²/12 = q²/2 on every d_i²
  const rmssd = Math.sqrt(Math.max(0, sum / m - (q * q) / 2))
  if (!(rmssd >= RMSSD_MIN_MS && rmssd <= RMSSD_MAX_MS)) return { ...base, rmssd: undefined, problem: `derived RMSSD ${rmssd} ms out of range ${RMSSD_MIN_MS}..${RMSSD_MAX_MS} ms` }
  return { ...base, rmssd }
}

/** SDNN and RMSSD of a list of intervals with no filtering at all: the figures HRV tools publish as "raw". */
export function rawFigures(rr: ArrayLike<number>): { sdnn: number; rmssd: number } {
  const n = rr.length
  let mean = 0
  for (let i = 0; i < n; i++) mean += rr[i]!
  mean /= n
  let ss = 0
  for (let i = 0; i < n; i++) ss += (rr[i]! - mean) ** 2
  let sd = 0
  for (let i = 1; i < n; i++) sd += (rr[i]! - rr[i - 1]!) ** 2
  return { sdnn: Math.sqrt(ss / (n - 1)), rmssd: Math.sqrt(sd / (n - 1)) }
}

// ── export.xml's beat lists: local wall-clock times ──

const DAY_MS = 86_400_000

/** `h:mm:ss.SS AM` / `PM`, or 24-hour `HH:mm:ss.SS`; `.` or `,` before the fraction. */
const CLOCK = /^\s*(\d{1,2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?\s*(?:([AaPp])\.?\s*[Mm]\.?)?\s*$/

export interface ClockTime {
  /** ms since local midnight (exact: the fraction is read as an integer count of its digits) */
  ms: number
  /** digits after the separator */
  fractionDigits: number
}

/** A beat's wall-clock time; undefined when it is not one. */
export function parseClockTime(s: string): ClockTime | undefined {
  const m = CLOCK.exec(s)
  if (!m) return undefined
  let hour = Number(m[1])
  const minute = Number(m[2])
  const second = Number(m[3])
  const fraction = m[4] ?? ''
  const meridiem = m[5]?.toUpperCase()
  if (minute > 59 || second > 59) return undefined
  if (meridiem !== undefined) {
    if (hour < 1 || hour > 12) return undefined
    hour = (hour % 12) + (meridiem === 'P' ? 12 : 0)
  } else if (hour > 23) return undefined
  // ms as fraction / 10^(digits − 3): exact for up to 3 digits, the nearest double beyond
  const frac = fraction === '' ? 0 : Number(fraction) / 10 ** (fraction.length - 3)
  return { ms: ((hour * 60 + minute) * 60 + second) * 1000 + frac, fractionDigits: fraction.length }
}

export interface ExportBeats {
  /** beat instants in ms relative to the record's local midnight of its start date (may be < 0 or ≥ one day) */
  times: number[]
  resolutionMs: number
}

/**
 * An export record's beat list placed in time: each time on the local date (the record's start date, the day
 * before or the day after) that puts it nearest to the record's start, so a list crossing midnight stays in
 * order. `startLocalMs` is the record's start as ms since its own local midnight. Throws a plain Error naming
 * the first time that is not a clock time; returns undefined when no time has a fraction (nothing to derive).
 */
export function placeExportBeats(texts: readonly string[], startLocalMs: number): ExportBeats | undefined {
  const times: number[] = new Array<number>(texts.length)
  let digits = 0
  for (let i = 0; i < texts.length; i++) {
    const c = parseClockTime(texts[i]!)
    if (c === undefined) throw new Error(`beat ${i} time '${texts[i]!.slice(0, 40)}' is not a clock time`)
    if (c.fractionDigits > digits) digits = c.fractionDigits
    let t = c.ms
    // the nearest of the three days: a time more than half a day from the start belongs to the next or previous day
    if (t - startLocalMs > DAY_MS / 2) t -= DAY_MS
    else if (startLocalMs - t > DAY_MS / 2) t += DAY_MS
    times[i] = t
  }
  if (digits === 0) return undefined
  return { times, resolutionMs: 10 ** (3 - digits) }
}
