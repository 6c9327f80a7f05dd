import type { InsightRow } from '../../streams/schemas.ts'
import { addDays, dayNumber } from './days.ts'
import { DEFAULT_CONFIG, type HrvMetric, type InsightConfig, type Prior } from './defaults.ts'

// docs/insights.md §3: the baseline as of day X, from days X−W … X−1 only, blended with the priors.

export type BaselineHistoryRow = InsightRow<'baseline_history'>
export type UserBaselineRow = InsightRow<'baseline'>
/** the baseline figures without their day */
export type Baseline = Omit<BaselineHistoryRow, 'day'>

/** What the baselines read, by local date. */
export interface DailySeries {
  /** the user's metric (§2) */
  metric: HrvMetric
  /** `ln_value` of the user's metric */
  hrvLn: ReadonlyMap<string, number>
  /** `total_sleep_min / 60` of each **valid** night */
  sleepHours: ReadonlyMap<string, number>
}

export interface Blend {
  mu: number
  sd: number
  n: number
}

/** §3: `w = min(1, n/K)`; the personal mean and sample sd blended with the prior (sd_0 when n < 2). */
export function blend(values: readonly number[], prior: Prior, k: number): Blend {
  const n = values.length
  if (n === 0) return { mu: prior.mu, sd: prior.sd, n }
  const w = Math.min(1, n / k)
  const mean = values.reduce((s, v) => s + v, 0) / n
  const sd = n >= 2 ? Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1)) : prior.sd
  return { mu: w * mean + (1 - w) * prior.mu, sd: w * sd + (1 - w) * prior.sd, n }
}

// a series keyed by day number, built once per series: a baseline looks up W days for every day
const byDayNumber = new WeakMap<ReadonlyMap<string, number>, Map<number, number>>()

function numbered(series: ReadonlyMap<string, number>): Map<number, number> {
  let m = byDayNumber.get(series)
  if (!m) byDayNumber.set(series, (m = new Map([...series].map(([day, v]) => [dayNumber(day), v]))))
  return m
}

/** The values of `series` on days X−W … X−1, in day order (never day X). */
export function windowValues(series: ReadonlyMap<string, number>, day: string, windowDays: number): number[] {
  const m = numbered(series)
  const x = dayNumber(day)
  const out: number[] = []
  for (let i = windowDays; i >= 1; i--) {
    const v = m.get(x - i)
    if (v !== undefined) out.push(v)
  }
  return out
}

/** §3: the baseline as of `day`. */
export function baselineAsOf(day: string, series: DailySeries, config: InsightConfig = DEFAULT_CONFIG): Baseline {
  const k = config.personalDays
  const h = blend(windowValues(series.hrvLn, day, config.windowDays), config.hrvPrior, k)
  const s = blend(windowValues(series.sleepHours, day, config.windowDays), config.sleepPrior, k)
  return {
    hrv_metric: series.metric,
    hrv_baseline_sdnn: Math.exp(h.mu),
    hrv_ln_mean: h.mu,
    hrv_ln_sd: h.sd,
    hrv_days: h.n,
    sleep_baseline_hours: s.mu,
    sleep_sd_hours: s.sd,
    sleep_days: s.n,
    baseline_source: h.n === 0 && s.n === 0 ? 'default' : h.n >= k && s.n >= k ? 'personal' : 'blended',
    data_quality_score: (Math.min(h.n, k) + Math.min(s.n, k)) / (2 * k),
  }
}

/** §3: the days of baseline_history: those with an hrv_daily row of the user's metric or a sleep_daily row, in order. */
export function baselineDays(hrvDays: Iterable<string>, sleepDays: Iterable<string>): string[] {
  return [...new Set([...hrvDays, ...sleepDays])].sort()
}

/** §3: user_baselines is the baseline as of the day after the latest baseline_history day (none without one). */
export function currentBaselineDay(days: readonly string[]): string | undefined {
  const latest = days.reduce<string | undefined>((m, d) => (m === undefined || d > m ? d : m), undefined)
  return latest === undefined ? undefined : addDays(latest, 1)
}
