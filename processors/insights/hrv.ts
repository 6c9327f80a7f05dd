import type { InsightRow, Sample, SampleFacts } from '../../streams/schemas.ts'
import { localDate } from './days.ts'
import type { HrvMetric } from './defaults.ts'

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
    const start = Date.parse(s.start)
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
  return { day, metric, value_ms: value, ln_value: Math.log(value), n: values.length, min_ms: values.reduce((m, v) => Math.min(m, v)), max_ms: values.reduce((m, v) => Math.max(m, v)), basis }
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

/** §2: the metric of baselines and readiness: sdnn when the user has at least one sdnn daily row, else rmssd. */
export function chooseMetric(rows: readonly HrvDailyRow[]): HrvMetric {
  return rows.some((r) => r.metric === 'sdnn') ? 'sdnn' : 'rmssd'
}
