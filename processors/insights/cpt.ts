import type { InsightRow } from '../../streams/schemas.ts'
import type { Baseline } from './baseline.ts'
import { DEFAULT_CONFIG, LEVELS, STATES, type CptTable, type InsightConfig, type State, type Triple } from './defaults.ts'

// docs/insights.md §4: thresholds from a baseline, and the expert table shrunk towards uniform by data quality.

export type CptRow = InsightRow<'cpt'>

export interface Thresholds {
  good: number
  medium: number
}

export interface Cpt {
  /** hours */
  sleep: Thresholds
  /** ms */
  hrv: Thresholds
  table: CptTable
}

/** §4: `good` when v >= good, else `medium` when v >= medium, else `poor`. */
export function stateOf(v: number, t: Thresholds): State {
  return v >= t.good ? 'good' : v >= t.medium ? 'medium' : 'poor'
}

/** §4: HRV thresholds in ms (exp of the ln-unit bounds), sleep thresholds in hours. */
export function thresholds(b: Baseline, config: InsightConfig = DEFAULT_CONFIG): { sleep: Thresholds; hrv: Thresholds } {
  return {
    hrv: { good: Math.exp(b.hrv_ln_mean - config.goodSd * b.hrv_ln_sd), medium: Math.exp(b.hrv_ln_mean - config.mediumSd * b.hrv_ln_sd) },
    sleep: { good: b.sleep_baseline_hours - config.goodSd * b.sleep_sd_hours, medium: b.sleep_baseline_hours - config.mediumSd * b.sleep_sd_hours },
  }
}

/** §4: `P = q·E + (1 − q)·U` with U = (1/3, 1/3, 1/3). */
export function personalTable(expert: CptTable, q: number): CptTable {
  const table = {} as Record<keyof CptTable, Triple>
  for (const sleep of STATES) {
    for (const hrv of STATES) {
      const key = `${sleep}|${hrv}` as const
      const [h, m, l] = expert[key]
      table[key] = [q * h + (1 - q) / 3, q * m + (1 - q) / 3, q * l + (1 - q) / 3]
    }
  }
  return table
}

/** §4: the CPT as of the day of `b`, with `q = data_quality_score`. */
export function cptOf(b: Baseline, config: InsightConfig = DEFAULT_CONFIG): Cpt {
  return { ...thresholds(b, config), table: personalTable(config.expert, b.data_quality_score) }
}

/** The user_cpt_tables row of a CPT. */
export function cptRow(asOfDay: string, cpt: Cpt): CptRow {
  return {
    as_of_day: asOfDay,
    sleep_good_threshold: cpt.sleep.good,
    sleep_medium_threshold: cpt.sleep.medium,
    hrv_good_threshold: cpt.hrv.good,
    hrv_medium_threshold: cpt.hrv.medium,
    cpt_probabilities: { states: [...LEVELS], table: Object.fromEntries(Object.entries(cpt.table).map(([k, v]) => [k, [...v]])) },
  }
}
