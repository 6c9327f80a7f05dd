import { sql, type Migration } from 'kysely'
import { identifier } from '../db.ts'
import { bucketFunctionSql, hasTimescale } from '../timescale.ts'
import type { SchemaNames } from './0001_initial.ts'

// docs/analysts.md: the analysts' surface — documented views over the insight tables, a time
// bucket that works with and without TimescaleDB, all readable by the analyst role. The numbers follow
// docs/insights.md §3, §4: the baseline as of a day is `baseline_history`'s row of that day (§3), its bands are
// the CPT thresholds (§4: good from mu − 0.5 sd, medium from mu − 1.5 sd).

export interface AnalystView {
  name: string
  comment: string
  /** the view's query, `S` standing for the schema */
  query: (s: string) => string
  columns: Record<string, string>
}

const band = (value: string, good: string, medium: string) => `case when ${value} >= ${good} then 'good' when ${value} >= ${medium} then 'medium' else 'poor' end`

export const ANALYST_VIEWS: readonly AnalystView[] = [
  {
    name: 'v_readiness',
    comment: "Readiness of each user-day (docs/insights.md §5) beside its evidence: the night's sleep and the day's HRV of the user's metric.",
    query: (s) => `select r.user_id, r.day, r.score, r.label, r.p_high, r.p_medium, r.p_low, r.sleep_state, r.hrv_state,
        b.hrv_metric, h.value_ms as hrv_ms, case when sl.valid then sl.total_sleep_min / 60 end as sleep_hours, r.updated_at
      from ${s}.readiness_daily r
      left join ${s}.baseline_history b on b.user_id = r.user_id and b.day = r.day
      left join ${s}.hrv_daily h on h.user_id = r.user_id and h.day = r.day and h.metric = b.hrv_metric
      left join ${s}.sleep_daily sl on sl.user_id = r.user_id and sl.day = r.day`,
    columns: {
      user_id: 'the user',
      day: "the user's local date",
      score: 'floor(100 * (p_high + 0.5 * p_medium) + 0.5), 0..100',
      label: 'high, medium or low: the state of highest probability',
      p_high: 'P(readiness = high)',
      p_medium: 'P(readiness = medium)',
      p_low: 'P(readiness = low)',
      sleep_state: 'good, medium or poor against the sleep baseline as of the day; null without a valid night',
      hrv_state: 'good, medium or poor against the HRV baseline as of the day; null without HRV that day',
      hrv_metric: "sdnn or rmssd: the metric the user's baselines and readiness use",
      hrv_ms: "the day's HRV of that metric (ms), the evidence; null without one",
      sleep_hours: "total sleep of the day's night (hours) when the night is valid (>= 3 h), the evidence; else null",
      updated_at: 'when the readiness row was last written',
    },
  },
  {
    name: 'v_hrv_trend',
    comment: "Daily HRV of each user's metric, its 7-day rolling ln mean, and the baseline as of the day with its good and medium bands (docs/insights.md §3, §4).",
    // the rolling mean over the metric's own rows of hrv_daily (a day of the other metric holds both when it has
    // both); its partition is (user, metric), so the qual on user_id of a query still reaches hrv_daily's index
    query: (s) => `select h.user_id, h.day, h.metric as hrv_metric, h.value_ms, h.ln_value, h.n, h.basis,
        h.ln_mean_7d, h.days_7d, exp(h.ln_mean_7d) as mean_7d_ms,
        b.hrv_ln_mean as baseline_ln_mean, b.hrv_ln_sd as baseline_ln_sd, b.hrv_baseline_sdnn as baseline_ms,
        b.hrv_ln_mean - 0.5 * b.hrv_ln_sd as ln_good_threshold, b.hrv_ln_mean - 1.5 * b.hrv_ln_sd as ln_medium_threshold,
        exp(b.hrv_ln_mean - 0.5 * b.hrv_ln_sd) as good_threshold_ms, exp(b.hrv_ln_mean - 1.5 * b.hrv_ln_sd) as medium_threshold_ms,
        ${band('h.value_ms', 'exp(b.hrv_ln_mean - 0.5 * b.hrv_ln_sd)', 'exp(b.hrv_ln_mean - 1.5 * b.hrv_ln_sd)')} as state,
        b.hrv_days as baseline_days, b.baseline_source
      from (select d.user_id, d.day, d.metric, d.value_ms, d.ln_value, d.n, d.basis,
          avg(d.ln_value) over w as ln_mean_7d, count(*) over w as days_7d
        from ${s}.hrv_daily d
        window w as (partition by d.user_id, d.metric order by d.day range between interval '6 days' preceding and current row)) h
      join ${s}.baseline_history b on b.user_id = h.user_id and b.day = h.day and b.hrv_metric = h.metric`,
    columns: {
      user_id: 'the user',
      day: "the user's local date",
      hrv_metric: "sdnn or rmssd: the user's metric (rows of the other metric are not in this view)",
      value_ms: "the day's HRV (ms): mean of the sleep set, or of the day set without one",
      ln_value: 'ln(value_ms)',
      n: 'readings averaged',
      basis: 'sleep or day: which set the readings came from',
      ln_mean_7d: "mean ln HRV of this metric over the user's days with it in the 7 calendar days ending with this one (never mixed with the other metric)",
      days_7d: 'how many days with HRV of this metric that 7-day mean has (1..7)',
      mean_7d_ms: 'exp(ln_mean_7d): the rolling mean in ms (a geometric mean)',
      baseline_ln_mean: 'mu_h: baseline ln HRV as of the day (days X-60 .. X-1)',
      baseline_ln_sd: 'sd_h: its standard deviation (ln units)',
      baseline_ms: 'exp(mu_h): the baseline in ms',
      ln_good_threshold: 'mu_h - 0.5 sd_h: the good band starts here',
      ln_medium_threshold: 'mu_h - 1.5 sd_h: the medium band starts here, below it is poor',
      good_threshold_ms: 'exp(mu_h - 0.5 sd_h), ms',
      medium_threshold_ms: 'exp(mu_h - 1.5 sd_h), ms',
      state: "good, medium or poor: the day's value against the bands",
      baseline_days: 'days of HRV in the baseline window (n_h)',
      baseline_source: 'default, blended or personal',
    },
  },
  {
    name: 'v_sleep',
    comment: "Each night's main sleep in hours and stage shares, beside the sleep baseline as of the day and its bands (docs/insights.md §1, §3, §4).",
    query: (s) => `select sl.user_id, sl.day, sl.valid,
        sl.total_sleep_min / 60 as sleep_hours, sl.in_bed_min / 60 as in_bed_hours,
        sl.deep_min / nullif(sl.total_sleep_min, 0) as deep_share, sl.rem_min / nullif(sl.total_sleep_min, 0) as rem_share,
        sl.core_min / nullif(sl.total_sleep_min, 0) as core_share, sl.asleep_unspecified_min / nullif(sl.total_sleep_min, 0) as asleep_unspecified_share,
        sl.deep_min, sl.rem_min, sl.core_min, sl.asleep_unspecified_min, sl.awake_min, sl.nap_min, sl.efficiency,
        sl.episode_start, sl.episode_end, sl.sleep_onset, sl.wake_time,
        b.sleep_baseline_hours, b.sleep_sd_hours,
        b.sleep_baseline_hours - 0.5 * b.sleep_sd_hours as good_threshold_hours, b.sleep_baseline_hours - 1.5 * b.sleep_sd_hours as medium_threshold_hours,
        case when sl.valid then ${band('sl.total_sleep_min / 60', 'b.sleep_baseline_hours - 0.5 * b.sleep_sd_hours', 'b.sleep_baseline_hours - 1.5 * b.sleep_sd_hours')} end as state,
        b.sleep_days as baseline_nights, b.baseline_source
      from ${s}.sleep_daily sl
      left join ${s}.baseline_history b on b.user_id = sl.user_id and b.day = sl.day`,
    columns: {
      user_id: 'the user',
      day: "the night's date: the local date its main episode ends",
      valid: 'total sleep >= 180 min: only valid nights count as evidence and in baselines',
      sleep_hours: 'total sleep of the main episode (deep + rem + core + unspecified), hours',
      in_bed_hours: "time covered by the main episode's samples, hours",
      deep_share: 'deep / total sleep',
      rem_share: 'rem / total sleep',
      core_share: 'core / total sleep',
      asleep_unspecified_share: 'asleep (unspecified stage) / total sleep',
      deep_min: 'minutes of deep sleep',
      rem_min: 'minutes of REM sleep',
      core_min: 'minutes of core sleep',
      asleep_unspecified_min: 'minutes asleep with no stage',
      awake_min: 'minutes awake inside the main episode',
      nap_min: "asleep minutes of the day's other episodes",
      efficiency: 'total sleep / time in bed',
      episode_start: 'first segment of the main episode (UTC instant)',
      episode_end: 'last segment end of the main episode (UTC instant)',
      sleep_onset: 'start of the first asleep segment',
      wake_time: 'end of the last asleep segment',
      sleep_baseline_hours: 'mu_s: the sleep baseline as of the day (valid nights X-60 .. X-1), hours',
      sleep_sd_hours: 'sd_s, hours',
      good_threshold_hours: 'mu_s - 0.5 sd_s: good from here',
      medium_threshold_hours: 'mu_s - 1.5 sd_s: medium from here, below it is poor',
      state: 'good, medium or poor for a valid night; null otherwise',
      baseline_nights: 'valid nights in the baseline window (n_s)',
      baseline_source: 'default, blended or personal',
    },
  },
]

/** The statements creating the analysts' views (all, or those named) with their comments and grants, in order. */
export function analystViewsSql({ schema, role }: SchemaNames, only?: readonly string[]): string[] {
  const s = `"${identifier(schema)}"`
  const r = `"${identifier(role)}"`
  const quote = (text: string) => `'${text.replaceAll("'", "''")}'`
  return ANALYST_VIEWS.filter((v) => !only || only.includes(v.name)).flatMap((v) => [
    `CREATE OR REPLACE VIEW ${s}.${identifier(v.name)} AS ${v.query(s)}`,
    `COMMENT ON VIEW ${s}.${v.name} IS ${quote(v.comment)}`,
    ...Object.entries(v.columns).map(([column, text]) => `COMMENT ON COLUMN ${s}.${v.name}.${identifier(column)} IS ${quote(text)}`),
    `GRANT SELECT ON ${s}.${v.name} TO ${r}`,
  ])
}

export function analystViews(names: SchemaNames): Migration {
  return {
    async up(db) {
      const timescale = await hasTimescale(db)
      for (const statement of [...bucketFunctionSql({ ...names, timescale }), ...analystViewsSql(names)]) await sql.raw(statement).execute(db)
    },
  }
}
