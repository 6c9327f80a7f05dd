import type pg from 'pg'
import type { SampleFacts } from '../../streams/schemas.ts'
import type { IdentifiedSample } from './compute.ts'

export interface UserSamples {
  samples: IdentifiedSample[]
  /** highest HPH_SAMPLES sequence among ALL the user's samples: the data version of what is computed */
  maxSeq: number
  /** how many samples the user has in all: a later snapshot of them is a superset, so a larger count is newer */
  count: number
  /** the user has at least one sdnn sample anywhere in their history */
  hasSdnn: boolean
  /** … an rmssd sample; without one no hrv_daily row of rmssd can exist (samples are only ever added) */
  hasRmssd: boolean
  /** … a sleep-stage sample; without one no sleep_daily row can exist */
  hasSleep: boolean
  /** the metric of the current baseline the engine last published (table insight_users), if any */
  storedMetric: string | undefined
  /** the user has samples that start before those loaded (before `since`, or the current baseline's window) */
  hasEarlier: boolean
}

interface Row {
  sample_id: string | null
  metric: SampleFacts['metric'] | null
  start_iso: string | null
  end_iso: string | null
  utc_offset_min: number | null
  value: number | null
  stage: SampleFacts['stage'] | null
  max_seq: number | null
  n: number
  has_sdnn: boolean | null
  has_rmssd: boolean | null
  has_sleep: boolean | null
  stored_metric: string | null
  has_earlier: boolean | null
}

// the instants as the canonical samples write them (toISOString), formatted by the server: no Date per row here
const iso = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`

/** Days before the user's latest HRV or sleep sample that are always loaded: the current baseline's window (§3), with slack. */
export const CURRENT_WINDOW_DAYS = 66

/**
 * One statement per user, so one snapshot: the samples the insights read (HRV and sleep) starting at or
 * after `since` — or earlier, when the user's latest HRV or sleep sample is so far from the touched days
 * that the current baseline's window would not be loaded (a late heart-rate sample touches no night) —
 * and the user-wide facts in one pass over the user's rows (index samples(user_id, start_ts)).
 */
export function loadSql(schema: string): string {
  return `with a as (
      select max(stream_seq) as max_seq, count(*)::int as n, bool_or(metric = 'hrv_sdnn') as has_sdnn,
        bool_or(metric = 'hrv_rmssd') as has_rmssd, bool_or(metric = 'sleep_stage') as has_sleep, min(start_ts) as first_ts,
        max(start_ts) filter (where metric in ('hrv_sdnn', 'hrv_rmssd', 'sleep_stage')) as last_ts
      from "${schema}".samples where user_id = $1),
    b as (select a.*, least($2::timestamptz, a.last_ts - interval '${CURRENT_WINDOW_DAYS} days') as since from a)
    select s.sample_id, s.metric, ${iso('s.start_ts')} as start_iso, ${iso('s.end_ts')} as end_iso, s.utc_offset_min, s.value, s.stage, b.max_seq, b.n, b.has_sdnn, b.has_rmssd, b.has_sleep, coalesce(b.first_ts < b.since, false) as has_earlier,
      (select hrv_metric from "${schema}".insight_users where user_id = $1) as stored_metric
    from b left join "${schema}".samples s on s.user_id = $1 and s.start_ts >= b.since and s.metric in ('hrv_sdnn', 'hrv_rmssd', 'sleep_stage')`
}

export async function loadUserSamples(pool: pg.Pool, schema: string, userId: string, since: Date): Promise<UserSamples> {
  const { rows } = await pool.query<Row>({ name: `hph_load_user_${schema}`, text: loadSql(schema), values: [userId, since] })
  const first = rows[0]
  const samples: IdentifiedSample[] = []
  for (const r of rows) {
    if (r.sample_id === null) continue
    const sample: SampleFacts = { metric: r.metric as SampleFacts['metric'], start: r.start_iso as string, end: r.end_iso as string, utcOffsetMinutes: r.utc_offset_min as number }
    if (r.value !== null) sample.value = r.value
    if (r.stage !== null) sample.stage = r.stage
    samples.push({ id: r.sample_id, sample })
  }
  return {
    samples,
    maxSeq: first?.max_seq ?? 0,
    count: first?.n ?? 0,
    hasSdnn: first?.has_sdnn ?? false,
    hasRmssd: first?.has_rmssd ?? false,
    hasSleep: first?.has_sleep ?? false,
    storedMetric: first?.stored_metric ?? undefined,
    hasEarlier: first?.has_earlier ?? false,
  }
}

/** Remembers the metric of the user's current baseline (it follows the device: docs/insights.md §2's metric of a day). */
export function rememberMetricSql(schema: string): string {
  return `insert into "${schema}".insight_users as u (user_id, hrv_metric) values ($1, $2)
    on conflict (user_id) do update set hrv_metric = excluded.hrv_metric, updated_at = now()
      where u.hrv_metric <> excluded.hrv_metric`
}
