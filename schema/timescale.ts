import { sql } from 'kysely'
import { identifier, type Executor } from './db.ts'

// DESIGN.md §6 / spec/schema.md: `samples` is a hypertable on start_ts when TimescaleDB is available,
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
    opts.timescale
      ? `CREATE TABLE ${table} (${SAMPLES_COLUMNS}\n)`
      : `CREATE TABLE ${table} (${SAMPLES_COLUMNS}\n) PARTITION BY RANGE (start_ts)`,
    ...(opts.timescale
      ? [`SELECT create_hypertable('${schema}.samples', 'start_ts', chunk_time_interval => interval '${chunk}', if_not_exists => true)`]
      : []),
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
