import type { InsightKind } from '../streams/schemas.ts'

// Where each insight kind lands (docs/tables.md §3), its key inside the user, and its columns' SQL types.

export interface InsightTable {
  table: string
  keys: readonly string[]
  columns: Readonly<Record<string, string>>
}

const f8 = 'float8'
const baselineColumns = {
  hrv_metric: 'text', hrv_baseline_sdnn: f8, hrv_ln_mean: f8, hrv_ln_sd: f8, hrv_days: 'int', sleep_baseline_hours: f8,
  sleep_sd_hours: f8, sleep_days: 'int', baseline_source: 'text', data_quality_score: f8,
}

export const INSIGHT_TABLES: Record<InsightKind, InsightTable> = {
  hrv_daily: { table: 'hrv_daily', keys: ['day', 'metric'], columns: { day: 'date', metric: 'text', value_ms: f8, ln_value: f8, n: 'int', min_ms: f8, max_ms: f8, basis: 'text' } },
  sleep_daily: {
    table: 'sleep_daily', keys: ['day'],
    columns: {
      day: 'date', total_sleep_min: f8, in_bed_min: f8, deep_min: f8, rem_min: f8, core_min: f8, asleep_unspecified_min: f8, awake_min: f8,
      nap_min: f8, efficiency: f8, episode_start: 'timestamptz', episode_end: 'timestamptz', sleep_onset: 'timestamptz', wake_time: 'timestamptz', valid: 'boolean',
    },
  },
  baseline_history: { table: 'baseline_history', keys: ['day'], columns: { day: 'date', ...baselineColumns } },
  readiness_daily: {
    table: 'readiness_daily', keys: ['day'],
    columns: { day: 'date', score: 'int', label: 'text', p_high: f8, p_medium: f8, p_low: f8, sleep_state: 'text', hrv_state: 'text' },
  },
  baseline: { table: 'user_baselines', keys: [], columns: { as_of_day: 'date', ...baselineColumns } },
  cpt: {
    table: 'user_cpt_tables', keys: [],
    columns: { as_of_day: 'date', sleep_good_threshold: f8, sleep_medium_threshold: f8, hrv_good_threshold: f8, hrv_medium_threshold: f8, cpt_probabilities: 'jsonb' },
  },
}

/** The key of a row inside its user, as insight events carry it: `day`, `day|metric`, or '' for the current baseline/CPT. */
export function keyOf(kind: InsightKind, row: Record<string, unknown>): string {
  return INSIGHT_TABLES[kind].keys.map((k) => String(row[k])).join('|')
}
