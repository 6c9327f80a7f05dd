import type { InsightRow } from '../../streams/schemas.ts'
import { stateOf, type Cpt } from './cpt.ts'
import { STATES, type CptTable, type Level, type State } from './defaults.ts'

// docs/insights.md §5: readiness of a day from its evidence and the CPT as of that day.

export type ReadinessRow = InsightRow<'readiness_daily'>

export interface Evidence {
  /** `value_ms` of the user's metric on the day */
  hrvMs?: number
  /** `total_sleep_min / 60` of the day's night, when it is valid */
  sleepHours?: number
}

export interface Probabilities {
  high: number
  medium: number
  low: number
}

export interface Readiness extends Probabilities {
  score: number
  label: Level
  sleep: State | undefined
  hrv: State | undefined
}

/** §5: the table row for the known states; a missing parent is marginalised with a uniform prior (the mean over its states). */
export function marginalise(table: CptTable, sleep: State | undefined, hrv: State | undefined): Probabilities {
  const rows = (sleep === undefined ? STATES : [sleep]).flatMap((s) => (hrv === undefined ? STATES : [hrv]).map((h) => table[`${s}|${h}`]))
  const mean = (i: 0 | 1 | 2) => rows.reduce((sum, r) => sum + r[i], 0) / rows.length
  return { high: mean(0), medium: mean(1), low: mean(2) }
}

/** §5: the most probable level; ties go to medium, then low, then high. */
export function labelOf(p: Probabilities): Level {
  const best = Math.max(p.high, p.medium, p.low)
  return p.medium === best ? 'medium' : p.low === best ? 'low' : 'high'
}

/** §5: no readiness without evidence. */
export function readiness(e: Evidence, cpt: Cpt): Readiness | undefined {
  if (e.hrvMs === undefined && e.sleepHours === undefined) return undefined
  const hrv = e.hrvMs === undefined ? undefined : stateOf(e.hrvMs, cpt.hrv)
  const sleep = e.sleepHours === undefined ? undefined : stateOf(e.sleepHours, cpt.sleep)
  const p = marginalise(cpt.table, sleep, hrv)
  return { ...p, score: Math.floor(100 * (p.high + 0.5 * p.medium) + 0.5), label: labelOf(p), sleep, hrv }
}

/** The readiness_daily row of a day. */
export function readinessRow(day: string, r: Readiness): ReadinessRow {
  return { day, score: r.score, label: r.label, p_high: r.high, p_medium: r.medium, p_low: r.low, sleep_state: r.sleep ?? null, hrv_state: r.hrv ?? null }
}
