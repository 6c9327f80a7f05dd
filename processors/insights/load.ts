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

/** A sample row: sample_id, metric, start_iso, end_iso, utc_offset_min, value, stage; the facts row has a null id and its facts in place of the start. */
type Row = [
  id: string | null,
  metric: SampleFacts['metric'] | null,
  startIso: string,
  endIso: string,
  utcOffsetMin: number,
  value: number | null,
  stage: SampleFacts['stage'] | null,
]

interface Facts {
  max_seq: number | null
  n: number
  has_sdnn: boolean | null
  has_rmssd: boolean | null
  has_sleep: boolean | null
  has_earlier: boolean | null
  stored_metric: string | null
}

// the instants as the canonical samples write them (toISOString), formatted by the server: no Date per row here
const iso = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`

/** Days before the user's latest HRV or sleep sample that are always loaded: the current baseline's window (§3), with slack. */
export const CURRENT_WINDOW_DAYS = 66

/**
 * One statement per user, so one snapshot: the samples the insights read (HRV and sleep) starting at or
 * after `since` — or earlier, when the user's latest HRV or sleep sample is so far from the touched days
 * that the current baseline's window would not be loaded (a late heart-rate sample touches no night) —
 * and the user-wide facts in one pass over the user's rows (index samples(user_id, start_ts)). The facts
 * come once, as JSON in a row of their own (null id), not beside every sample: the client parses every
 * column of every row, and seven more a row were a quarter of that.
 */
export function loadSql(schema: string): string {
  return `with a as (
      select max(stream_seq) as max_seq, count(*)::int as n, bool_or(metric = 'hrv_sdnn') as has_sdnn,
        bool_or(metric = 'hrv_rmssd') as has_rmssd, bool_or(metric = 'sleep_stage') as has_sleep, min(start_ts) as first_ts,
        max(start_ts) filter (where metric in ('hrv_sdnn', 'hrv_rmssd', 'sleep_stage')) as last_ts
      from "${schema}".samples where user_id = $1),
    b as (select a.*, least($2::timestamptz, a.last_ts - interval '${CURRENT_WINDOW_DAYS} days') as since from a)
    select null as sample_id, null as metric,
      json_build_object('max_seq', b.max_seq, 'n', b.n, 'has_sdnn', b.has_sdnn, 'has_rmssd', b.has_rmssd, 'has_sleep', b.has_sleep,
        'has_earlier', coalesce(b.first_ts < b.since, false),
        'stored_metric', (select hrv_metric from "${schema}".insight_users where user_id = $1))::text as start_iso,
      null as end_iso, null as utc_offset_min, null as value, null as stage
    from b
    union all
    select s.sample_id, s.metric, ${iso('s.start_ts')}, ${iso('s.end_ts')}, s.utc_offset_min, s.value, s.stage
    from b join "${schema}".samples s on s.user_id = $1 and s.start_ts >= b.since and s.metric in ('hrv_sdnn', 'hrv_rmssd', 'sleep_stage')`
}

export async function loadUserSamples(pool: pg.Pool, schema: string, userId: string, since: Date): Promise<UserSamples> {
  // rows as arrays: no object with named properties a row
  const { rows } = await pool.query<Row>({ name: `hph_load_user_${schema}`, text: loadSql(schema), values: [userId, since], rowMode: 'array' })
  let facts: Facts | undefined
  const samples: IdentifiedSample[] = []
  for (const r of rows) {
    const id = r[0]
    if (id === null) {
      facts = JSON.parse(r[2]) as Facts
      continue
    }
    const sample: SampleFacts = { metric: r[1]!, start: r[2], end: r[3], utcOffsetMinutes: r[4] }
    if (r[5] !== null) sample.value = r[5]
    if (r[6] !== null) sample.stage = r[6]
    samples.push({ id, sample })
  }
  return {
    samples,
    maxSeq: facts?.max_seq ?? 0,
    count: facts?.n ?? 0,
    hasSdnn: facts?.has_sdnn ?? false,
    hasRmssd: facts?.has_rmssd ?? false,
    hasSleep: facts?.has_sleep ?? false,
    storedMetric: facts?.stored_metric ?? undefined,
    hasEarlier: facts?.has_earlier ?? false,
  }
}

/** Remembers the metric of the user's current baseline (it follows the device: docs/insights.md §2's metric of a day). */
export function rememberMetricSql(schema: string): string {
  return `insert into "${schema}".insight_users as u (user_id, hrv_metric) values ($1, $2)
    on conflict (user_id) do update set hrv_metric = excluded.hrv_metric, updated_at = now()
      where u.hrv_metric <> excluded.hrv_metric`
}
