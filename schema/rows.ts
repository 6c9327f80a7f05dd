import { z } from 'zod'
import { InsightRows, LocalDate, Metric, SleepStage, sleepNight, UserId } from '../streams/schemas.ts'

// Each table's and view's columns, defined once: the zod row of what a select returns. Everything else is
// derived from it or checked against it: the insight writers' column types (schema/insight-tables.ts), the
// Kysely types (schema/db.ts, at typecheck), the samples writer's COPY columns and the migrated database
// (test/integration/tables.test.ts). docs/tables.md §7.

const instant = z.string().datetime({ offset: true })
const int = z.number().int()
const num = z.number()
const text = z.string()

/** Every insight row: the highest HPH_SAMPLES sequence its computation read, how many samples, when written. */
const versioned = { data_version: int.nonnegative(), data_count: int.nonnegative(), updated_at: instant }
const owned = { user_id: UserId }
const state = z.enum(['good', 'medium', 'poor'])

export const TableRows = {
  samples: z.object({
    sample_id: z.uuid(),
    user_id: UserId,
    metric: Metric,
    start_ts: instant,
    end_ts: instant,
    utc_offset_min: int,
    value: num.nullable(),
    stage: SleepStage.nullable(),
    source_name: text,
    source_bundle: text.nullable(),
    device: text.nullable(),
    external_id: text.nullable(),
    ingest_id: text,
    stream_seq: int,
    inserted_at: instant,
  }),
  hrv_daily: z.object({ ...owned, ...InsightRows.hrv_daily.shape, ...versioned }),
  sleep_daily: z.object({ ...owned, ...InsightRows.sleep_daily.shape, ...versioned }),
  baseline_history: z.object({ ...owned, ...InsightRows.baseline_history.shape, ...versioned }),
  readiness_daily: z.object({ ...owned, ...InsightRows.readiness_daily.shape, ...versioned }),
  user_baselines: z.object({
    ...owned,
    ...InsightRows.baseline.shape,
    ...versioned,
    created_at: instant,
    last_incremental_update: instant.nullable(),
    last_full_update: instant.nullable(),
  }),
  user_cpt_tables: z.object({ ...owned, ...InsightRows.cpt.shape, ...versioned, created_at: instant }),
  projection_checkpoints: z.object({ projection: text, stream: text, last_seq: int, updated_at: instant }),
  insight_tombstones: z.object({ ...owned, kind: text, key: text, ...versioned }),
  insight_users: z.object({ ...owned, hrv_metric: z.enum(['sdnn', 'rmssd']), updated_at: instant }),
} as const

/** The analysts' views (docs/analysts.md): every column may be null, as PostgreSQL reports a view's. */
export const ViewRows = {
  v_readiness: z.object({
    ...owned,
    day: LocalDate,
    score: int,
    label: text,
    p_high: num,
    p_medium: num,
    p_low: num,
    sleep_state: state.nullable(),
    hrv_state: state.nullable(),
    hrv_metric: text.nullable(),
    hrv_ms: num.nullable(),
    sleep_hours: num.nullable(),
    updated_at: instant,
  }),
  v_hrv_trend: z.object({
    ...owned,
    day: LocalDate,
    hrv_metric: text,
    value_ms: num,
    ln_value: num,
    n: int,
    basis: text,
    ln_mean_7d: num,
    days_7d: int,
    mean_7d_ms: num,
    baseline_ln_mean: num,
    baseline_ln_sd: num,
    baseline_ms: num,
    ln_good_threshold: num,
    ln_medium_threshold: num,
    good_threshold_ms: num,
    medium_threshold_ms: num,
    state,
    baseline_days: int,
    baseline_source: text,
  }),
  v_sleep: z.object({
    ...owned,
    day: LocalDate,
    valid: z.boolean(),
    sleep_hours: num,
    in_bed_hours: num,
    deep_share: num.nullable(),
    rem_share: num.nullable(),
    core_share: num.nullable(),
    asleep_unspecified_share: num.nullable(),
    ...sleepNight,
    sleep_baseline_hours: num.nullable(),
    sleep_sd_hours: num.nullable(),
    good_threshold_hours: num.nullable(),
    medium_threshold_hours: num.nullable(),
    state: state.nullable(),
    baseline_nights: int.nullable(),
    baseline_source: text.nullable(),
  }),
} as const

export type TableName = keyof typeof TableRows
export type ViewName = keyof typeof ViewRows
export type Row<T extends TableName | ViewName> = z.output<(typeof TableRows & typeof ViewRows)[T]>

/** A column's type, as the writers spell it in SQL (the column definitions of `json_to_recordset` and `jsonb_to_recordset`). */
export type SqlType = 'int' | 'float8' | 'date' | 'timestamptz' | 'uuid' | 'text' | 'boolean' | 'jsonb'

/** The SQL type a zod column stands for; a zod type with no column type here is a programming error. */
export function sqlTypeOf(column: z.ZodType): SqlType {
  const t = nullableInner(column).inner
  if (t === LocalDate) return 'date'
  if (t instanceof z.ZodNumber) return t.format === 'safeint' || t.format === 'int32' ? 'int' : 'float8'
  if (t instanceof z.ZodString) return t.format === 'datetime' ? 'timestamptz' : t.format === 'uuid' ? 'uuid' : 'text'
  if (t instanceof z.ZodUUID) return 'uuid'
  if (t instanceof z.ZodEnum) return 'text'
  if (t instanceof z.ZodBoolean) return 'boolean'
  if (t instanceof z.ZodObject || t instanceof z.ZodRecord) return 'jsonb'
  throw new Error(`no SQL type for a zod ${t._zod.def.type}`)
}

/** Whether a zod column may be null, and the type inside. */
export function nullableInner(column: z.ZodType): { inner: z.ZodType; nullable: boolean } {
  let t = column
  let nullable = false
  for (;;) {
    if (t instanceof z.ZodNullable) nullable = true
    if (t instanceof z.ZodNullable || t instanceof z.ZodOptional || t instanceof z.ZodDefault) t = t.unwrap() as z.ZodType
    else return { inner: t, nullable }
  }
}

/** A row's columns with their SQL types, in the row's order. */
export function sqlColumns(row: z.ZodObject): Record<string, SqlType> {
  return Object.fromEntries(Object.entries(row.shape).map(([name, t]) => [name, sqlTypeOf(t as z.ZodType)]))
}
