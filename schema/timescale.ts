import { sql } from 'kysely'
import { identifier, type Executor } from './db.ts'

// docs/tables.md §5: `samples` is a hypertable on start_ts when TimescaleDB is available,
// natively range-partitioned by month otherwise. The key includes start_ts either way (both require it).

const SAMPLES_COLUMNS = `
  sample_id uuid not null,
  user_id text not null,
  metric text not null,
  start_ts timestamptz not null,
  end_ts timestamptz not null,
  utc_offset_min smallint not null,
  value double precision,
  stage text,
  source_name text not null,
  source_bundle text,
  device text,
  external_id text,
  ingest_id text not null,
  stream_seq bigint not null,
  inserted_at timestamptz not null default now(),
  primary key (sample_id, start_ts)`

const INTERVAL = /^\d+ (minute|hour|day|week|month)s?$/

/** The statements that create `samples` with its storage and indexes, in order. */
export function samplesStorageSql(opts: { schema: string; timescale: boolean; chunkInterval?: string }): string[] {
  const schema = identifier(opts.schema)
  const chunk = opts.chunkInterval ?? '7 days'
  if (!INTERVAL.test(chunk)) throw new Error(`not a simple interval: ${JSON.stringify(chunk)}`)
  const table = `"${schema}".samples`
  return [
    opts.timescale ? `CREATE TABLE ${table} (${SAMPLES_COLUMNS}\n)` : `CREATE TABLE ${table} (${SAMPLES_COLUMNS}\n) PARTITION BY RANGE (start_ts)`,
    ...(opts.timescale ? [`SELECT create_hypertable('${schema}.samples', 'start_ts', chunk_time_interval => interval '${chunk}', if_not_exists => true)`] : []),
    // the insights engine loads one user's samples for a time range
    `CREATE INDEX IF NOT EXISTS samples_user_start_idx ON ${table} (user_id, start_ts)`,
  ]
}

/**
 * True when TimescaleDB is usable here, creating the extension when it is available and preloaded
 * (CREATE EXTENSION fails without `shared_preload_libraries`, which would abort the migration).
 */
export async function hasTimescale(db: Executor): Promise<boolean> {
  const r = await sql<{ installed: boolean; available: boolean; preloaded: boolean }>`
    select exists (select 1 from pg_extension where extname = 'timescaledb') as installed,
           exists (select 1 from pg_available_extensions where name = 'timescaledb') as available,
           current_setting('shared_preload_libraries') like '%timescaledb%' as preloaded`.execute(db)
  const s = r.rows[0]
  if (s?.installed) return true
  if (!s?.available || !s.preloaded) return false
  await sql`create extension if not exists timescaledb`.execute(db)
  return true
}

/**
 * docs/tables.md §5: the analysts' time bucket, `<schema>.bucket(width, ts)` (and its `date` twin for the daily
 * tables): TimescaleDB's `time_bucket` when the extension is there, PostgreSQL's `date_bin` otherwise. Both
 * count buckets from Monday 2000-01-03 00:00 UTC (time_bucket's default origin), so a week is Monday to
 * Sunday and the two branches agree. `date_bin` takes no months or years; neither branch is asked to here.
 */
export function bucketFunctionSql(opts: { schema: string; role: string; timescale: boolean }): string[] {
  const schema = identifier(opts.schema)
  const role = identifier(opts.role)
  const fn = `"${schema}".bucket`
  const origin = `timestamptz '2000-01-03 00:00:00+00'`
  const atTs = opts.timescale ? `time_bucket(width, ts, ${origin})` : `date_bin(width, ts, ${origin})`
  const atDay = opts.timescale ? `time_bucket(width, day, date '2000-01-03')` : `date_bin(width, day::timestamp, timestamp '2000-01-03 00:00:00')::date`
  const body = (expr: string) => `select ${expr}`
  return [
    `CREATE OR REPLACE FUNCTION ${fn}(width interval, ts timestamptz) RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ ${body(atTs)} $$`,
    `CREATE OR REPLACE FUNCTION ${fn}(width interval, day date) RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ ${body(atDay)} $$`,
    `COMMENT ON FUNCTION ${fn}(interval, timestamptz) IS 'the start of the width-long bucket holding ts, buckets counted from Monday 2000-01-03 00:00 UTC (${opts.timescale ? 'time_bucket' : 'date_bin'})'`,
    `COMMENT ON FUNCTION ${fn}(interval, date) IS 'the first day of the width-long bucket holding day, buckets counted from Monday 2000-01-03 (${opts.timescale ? 'time_bucket' : 'date_bin'})'`,
    `GRANT EXECUTE ON FUNCTION ${fn}(interval, timestamptz), ${fn}(interval, date) TO "${role}"`,
  ]
}
