import type { SleepStage } from '../../streams/schemas.ts'

// docs/insights.md §0: every constant of the insight math, in one place; config may override any of them.

export type State = 'good' | 'medium' | 'poor'
export type Level = 'high' | 'medium' | 'low'
export type HrvMetric = 'sdnn' | 'rmssd'
export const STATES: readonly State[] = ['good', 'medium', 'poor']
/** the order of `cpt_probabilities.states` and of each table entry */
export const LEVELS: readonly Level[] = ['high', 'medium', 'low']

/** P(readiness = high, medium, low) */
export type Triple = readonly [number, number, number]
/** keyed `"<sleep state>|<hrv state>"` (docs/insights.md §4) */
export type CptTable = Readonly<Record<`${State}|${State}`, Triple>>

export interface Prior {
  /** mu_0 */
  mu: number
  /** sd_0 */
  sd: number
}

export interface InsightConfig {
  /** §1: higher wins an overlap */
  stageRank: Readonly<Record<SleepStage, number>>
  /** §1: a segment starting at most this long after the episode's end joins it */
  episodeGapMin: number
  /** §1: `valid = total_sleep_min >= validSleepMin` */
  validSleepMin: number
  /** §3: W, the baseline window (days X−W … X−1) */
  windowDays: number
  /** §2: rmssd is the metric of day X once this many of the days X−W … X have an rmssd row */
  metricRmssdDays: number
  /** §3: K, days needed for a fully personal baseline */
  personalDays: number
  /** §3: HRV prior, ln ms */
  hrvPrior: Prior
  /** §3: sleep prior, hours */
  sleepPrior: Prior
  /** §4: good ⇔ v >= mu − goodSd·sd (HRV in ln units, then exp) */
  goodSd: number
  /** §4: medium ⇔ v >= mu − mediumSd·sd */
  mediumSd: number
  /** §4: the expert table E */
  expert: CptTable
}

export const DEFAULT_CONFIG: InsightConfig = {
  stageRank: { deep: 6, rem: 5, core: 4, asleep: 3, awake: 2, in_bed: 1 },
  episodeGapMin: 60,
  validSleepMin: 180,
  windowDays: 60,
  metricRmssdDays: 7,
  personalDays: 14,
  hrvPrior: { mu: Math.log(45), sd: 0.25 },
  sleepPrior: { mu: 7.5, sd: 0.75 },
  goodSd: 0.5,
  mediumSd: 1.5,
  expert: {
    'good|good': [0.8, 0.15, 0.05],
    'good|medium': [0.5, 0.4, 0.1],
    'good|poor': [0.2, 0.45, 0.35],
    'medium|good': [0.55, 0.35, 0.1],
    'medium|medium': [0.25, 0.5, 0.25],
    'medium|poor': [0.1, 0.4, 0.5],
    'poor|good': [0.3, 0.45, 0.25],
    'poor|medium': [0.1, 0.45, 0.45],
    'poor|poor': [0.05, 0.25, 0.7],
  },
}

/** Stages that count as asleep (§1). */
export const ASLEEP: ReadonlySet<SleepStage> = new Set(['deep', 'rem', 'core', 'asleep'])

/** The defaults with `overrides` on top (shallow: a prior or the table is replaced whole). */
export function insightConfig(overrides: Partial<InsightConfig> = {}): InsightConfig {
  return { ...DEFAULT_CONFIG, ...overrides }
}
