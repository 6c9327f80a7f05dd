import type { SampleFacts } from '../../streams/schemas.ts'
import { baselineAsOf, baselineDays, currentBaselineDay, type Baseline, type BaselineHistoryRow, type DailySeries, type UserBaselineRow } from './baseline.ts'
import { cptOf, cptRow, type CptRow } from './cpt.ts'
import { insightConfig, type HrvMetric, type InsightConfig } from './defaults.ts'
import { hrvDaily, metricOfDays, type HrvDailyRow } from './hrv.ts'
import { readiness, readinessRow, type ReadinessRow } from './readiness.ts'
import { sleepNights, type SleepDailyRow } from './sleep.ts'

// docs/insights.md §0: every insight row of one user, a pure function of the user's set of samples.

/** A canonical sample with its event id (docs/architecture.md §4); duplicates are recognised by `id` alone. */
export interface IdentifiedSample {
  id: string
  sample: SampleFacts
}

export interface ComputeOptions {
  /** only the daily, baseline_history and readiness rows of these days (both included); the current baseline and CPT always */
  days?: { from: string; to: string }
  /** overrides of the defaults (shallow) */
  config?: Partial<InsightConfig>
}

/** Every row of one user, each list in day order (hrv_daily: day, then metric); field names are the table columns. */
export interface InsightRowSet {
  /** the metric of the current baseline (§2's metric of its day); sdnn when there is none */
  metric: HrvMetric
  sleepDaily: SleepDailyRow[]
  /** both metrics; key `day|metric` */
  hrvDaily: HrvDailyRow[]
  baselineHistory: BaselineHistoryRow[]
  readiness: ReadinessRow[]
  /** user_baselines: the baseline as of the day after the latest baseline_history day; undefined when there is none */
  userBaseline: UserBaselineRow | undefined
  /** user_cpt_tables: the CPT of `userBaseline` */
  userCpt: CptRow | undefined
}

/** The samples once each, by id: replays and retries deliver the same sample again. */
export function distinctSamples(samples: readonly IdentifiedSample[]): SampleFacts[] {
  const byId = new Map<string, SampleFacts>()
  for (const s of samples) if (!byId.has(s.id)) byId.set(s.id, s.sample)
  return [...byId.values()]
}

/** docs/insights.md §1–5 for one user's samples (every user id in `samples` is taken as the same user). */
export function computeInsights(samples: readonly IdentifiedSample[], opts: ComputeOptions = {}): InsightRowSet {
  const config = insightConfig(opts.config)
  const distinct = distinctSamples(samples)
  const inRange = (day: string) => opts.days === undefined || (day >= opts.days.from && day <= opts.days.to)

  const nights = sleepNights(distinct, config)
  const mainEpisodes = new Map(nights.map((n) => [n.day, n.main]))
  const sdnn = hrvDaily(distinct, mainEpisodes, 'sdnn')
  const rmssd = hrvDaily(distinct, mainEpisodes, 'rmssd')
  // §2: each day has its own metric, from the rows of its 61-day window
  const metricOf = metricOfDays([...sdnn, ...rmssd], config)
  const hrvRows: Record<HrvMetric, Map<string, HrvDailyRow>> = { sdnn: new Map(sdnn.map((r) => [r.day, r])), rmssd: new Map(rmssd.map((r) => [r.day, r])) }
  const sleepOf = new Map(nights.map((n) => [n.day, n.row]))
  const sleepHours = new Map(nights.filter((n) => n.row.valid).map((n) => [n.day, n.row.total_sleep_min / 60]))
  const seriesOf = (metric: HrvMetric): DailySeries => ({ metric, hrvLn: new Map([...hrvRows[metric]].map(([day, r]) => [day, r.ln_value])), sleepHours })
  const series: Record<HrvMetric, DailySeries> = { sdnn: seriesOf('sdnn'), rmssd: seriesOf('rmssd') }
  const baselines = new Map<string, Baseline>()
  const baselineOf = (day: string): Baseline => {
    let b = baselines.get(day)
    if (!b) baselines.set(day, (b = baselineAsOf(day, series[metricOf(day)], config)))
    return b
  }

  // §3: every day with any hrv_daily row (of either metric) or a sleep_daily row
  const days = baselineDays([...hrvRows.sdnn.keys(), ...hrvRows.rmssd.keys()], sleepOf.keys())
  const readinessRows: ReadinessRow[] = []
  for (const day of days.filter(inRange)) {
    const night = sleepOf.get(day)
    const r = readiness({ hrvMs: hrvRows[metricOf(day)].get(day)?.value_ms, sleepHours: night?.valid ? night.total_sleep_min / 60 : undefined }, cptOf(baselineOf(day), config))
    if (r) readinessRows.push(readinessRow(day, r))
  }
  const current = currentBaselineDay(days)

  return {
    metric: current === undefined ? 'sdnn' : metricOf(current),
    sleepDaily: nights.map((n) => n.row).filter((r) => inRange(r.day)),
    hrvDaily: [...sdnn, ...rmssd].filter((r) => inRange(r.day)).sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : a.metric < b.metric ? -1 : a.metric > b.metric ? 1 : 0)),
    baselineHistory: days.filter(inRange).map((day) => ({ day, ...baselineOf(day) })),
    readiness: readinessRows,
    userBaseline: current === undefined ? undefined : { as_of_day: current, ...baselineOf(current) },
    userCpt: current === undefined ? undefined : cptRow(current, cptOf(baselineOf(current), config)),
  }
}
