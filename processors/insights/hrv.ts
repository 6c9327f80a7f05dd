import type { InsightRow, Sample, SampleFacts } from '../../streams/schemas.ts'
import { dayNumber, instantMs, localDate } from './days.ts'
import { DEFAULT_CONFIG, type HrvMetric, type InsightConfig } from './defaults.ts'

// docs/insights.md §2: one hrv_daily row per (day, metric), from the night's main episode or else the day.

export type HrvDailyRow = InsightRow<'hrv_daily'>

/** The canonical metric each summarised HRV metric comes from. */
export const HRV_SOURCES: Readonly<Record<HrvMetric, Sample['metric']>> = { sdnn: 'hrv_sdnn', rmssd: 'hrv_rmssd' }

/** A time span in epoch ms, `end` excluded: the main sleep episode of a date. */
export interface Span {
  start: number
  end: number
}

interface Reading {
  start: number
  day: string
  value: number
}

/** The readings of one metric, ordered by start then value, so that sums never depend on arrival order. */
function readingsOf(samples: readonly SampleFacts[], metric: HrvMetric): Reading[] {
  const out: Reading[] = []
  for (const s of samples) {
    if (s.metric !== HRV_SOURCES[metric] || s.value === undefined) continue
    const start = instantMs(s.start)
    out.push({ start, day: localDate(start, s.utcOffsetMinutes), value: s.value })
  }
  return out.sort((a, b) => a.start - b.start || a.value - b.value)
}

/** The index of the first reading starting at or after `t` (readings ordered by start). */
function firstAtOrAfter(readings: readonly Reading[], t: number): number {
  let lo = 0
  let hi = readings.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (readings[mid]!.start < t) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** §2: the figures of a non-empty set of values. */
export function hrvSummary(day: string, metric: HrvMetric, values: readonly number[], basis: 'sleep' | 'day'): HrvDailyRow {
  const value = values.reduce((sum, v) => sum + v, 0) / values.length
  return {
    day,
    metric,
    value_ms: value,
    ln_value: Math.log(value),
    n: values.length,
    min_ms: values.reduce((m, v) => Math.min(m, v)),
    max_ms: values.reduce((m, v) => Math.max(m, v)),
    basis,
  }
}

/**
 * §2: for each date, the readings starting inside its main sleep episode (`start <= t < end`), else
 * the readings whose start has that local date; no row when both are empty. Rows in day order.
 */
export function hrvDaily(samples: readonly SampleFacts[], mainEpisodes: ReadonlyMap<string, Span>, metric: HrvMetric): HrvDailyRow[] {
  const readings = readingsOf(samples, metric)
  const byDay = new Map<string, number[]>()
  for (const r of readings) byDay.set(r.day, [...(byDay.get(r.day) ?? []), r.value])
  const days = [...new Set([...byDay.keys(), ...mainEpisodes.keys()])].sort()
  const out: HrvDailyRow[] = []
  for (const day of days) {
    const episode = mainEpisodes.get(day)
    const sleepSet: number[] = []
    if (episode) for (let i = firstAtOrAfter(readings, episode.start); i < readings.length && readings[i]!.start < episode.end; i++) sleepSet.push(readings[i]!.value)
    const daySet = byDay.get(day) ?? []
    if (sleepSet.length > 0) out.push(hrvSummary(day, metric, sleepSet, 'sleep'))
    else if (daySet.length > 0) out.push(hrvSummary(day, metric, daySet, 'day'))
  }
  return out
}

/**
 * §2: the metric of day X, the one its baseline, CPT and readiness use: rmssd when at least `metricRmssdDays` of
 * the days X−W … X have an rmssd row, or when none has an sdnn row and at least one an rmssd row; else sdnn.
 * Depends on the rows of those W + 1 days only (a user who changes devices changes metric with them).
 */
export function metricOfDays(rows: readonly HrvDailyRow[], config: Pick<InsightConfig, 'windowDays' | 'metricRmssdDays'> = DEFAULT_CONFIG): (day: string) => HrvMetric {
  const sdnn = new Set<number>()
  const rmssd = new Set<number>()
  for (const r of rows) (r.metric === 'sdnn' ? sdnn : rmssd).add(dayNumber(r.day))
  const memo = new Map<string, HrvMetric>()
  return (day) => {
    let m = memo.get(day)
    if (m !== undefined) return m
    const x = dayNumber(day)
    let nR = 0
    let anyS = false
    for (let d = x - config.windowDays; d <= x; d++) {
      if (rmssd.has(d)) nR++
      if (sdnn.has(d)) anyS = true
    }
    m = nR >= config.metricRmssdDays || (!anyS && nR >= 1) ? 'rmssd' : 'sdnn'
    memo.set(day, m)
    return m
  }
}
