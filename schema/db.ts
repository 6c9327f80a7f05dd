import { Kysely, PostgresDialect, type ColumnType, type Generated, type QueryExecutorProvider, type Selectable } from 'kysely'
import pg from 'pg'
import type { z } from 'zod'
import type { Config } from '../config.ts'
import type { TableRows, ViewRows } from './rows.ts'

// The Kysely types of every table and view (docs/tables.md §7); the zod rows of schema/rows.ts define the
// columns, and the check after `Database` fails the typecheck when these disagree with them.

/** A timestamptz: read as a Date, written as a Date or an ISO string. */
export type Timestamp = ColumnType<Date, Date | string, Date | string>
/** A date (the user's local date), read and written as 'YYYY-MM-DD'. */
export type LocalDay = string

/** Every insight row: the highest HPH_SAMPLES sequence its computation read, and when it was written. */
interface Versioned {
  data_version: number
  /** how many of the user's samples it read: the tie-break of equal data versions */
  data_count: Generated<number>
  updated_at: Generated<Timestamp>
}

export interface SamplesTable {
  sample_id: string
  user_id: string
  metric: string
  start_ts: Timestamp
  end_ts: Timestamp
  utc_offset_min: number
  value: number | null
  stage: string | null
  source_name: string
  source_bundle: string | null
  device: string | null
  external_id: string | null
  ingest_id: string
  stream_seq: number
  inserted_at: Generated<Timestamp>
}

export interface HrvDailyTable extends Versioned {
  user_id: string
  day: LocalDay
  metric: string
  value_ms: number
  ln_value: number
  n: number
  min_ms: number
  max_ms: number
  basis: string
}

export interface SleepDailyTable extends Versioned {
  user_id: string
  day: LocalDay
  total_sleep_min: number
  in_bed_min: number
  deep_min: number
  rem_min: number
  core_min: number
  asleep_unspecified_min: number
  awake_min: number
  nap_min: number
  efficiency: number
  episode_start: Timestamp
  episode_end: Timestamp
  sleep_onset: Timestamp
  wake_time: Timestamp
  valid: boolean
}

/** The baseline figures shared by `baseline_history` and `user_baselines` (docs/insights.md §3). */
export interface BaselineColumns extends Versioned {
  hrv_metric: string
  hrv_baseline_sdnn: number
  hrv_ln_mean: number
  hrv_ln_sd: number
  hrv_days: number
  sleep_baseline_hours: number
  sleep_sd_hours: number
  sleep_days: number
  baseline_source: string
  data_quality_score: number
}

export interface BaselineHistoryTable extends BaselineColumns {
  user_id: string
  day: LocalDay
}

export interface UserBaselinesTable extends BaselineColumns {
  user_id: string
  as_of_day: LocalDay
  created_at: Generated<Timestamp>
  last_incremental_update: Timestamp | null
  last_full_update: Timestamp | null
}

/** `cpt_probabilities` (docs/insights.md §4): keys "<sleep state>|<hrv state>", rows [high, medium, low]. */
export interface CptProbabilities {
  states: string[]
  table: Record<string, number[]>
}

export interface UserCptTablesTable extends Versioned {
  user_id: string
  as_of_day: LocalDay
  sleep_good_threshold: number
  sleep_medium_threshold: number
  hrv_good_threshold: number
  hrv_medium_threshold: number
  cpt_probabilities: ColumnType<CptProbabilities, CptProbabilities | string, CptProbabilities | string>
  created_at: Generated<Timestamp>
}

export interface ReadinessDailyTable extends Versioned {
  user_id: string
  day: LocalDay
  score: number
  label: string
  p_high: number
  p_medium: number
  p_low: number
  sleep_state: string | null
  hrv_state: string | null
}

export interface ProjectionCheckpointsTable {
  projection: string
  stream: string
  last_seq: number
  updated_at: Generated<Timestamp>
}

export interface InsightTombstonesTable {
  user_id: string
  kind: string
  key: string
  data_version: number
  data_count: Generated<number>
  updated_at: Generated<Timestamp>
}

/** The insights engine's own bookkeeping: the metric it last computed each user with. */
export interface InsightUsersTable {
  user_id: string
  hrv_metric: string
  updated_at: Generated<Timestamp>
}

/** The analysts' views (migration 0004, docs/analysts.md): read-only. */
export interface VReadinessView extends Omit<ReadinessDailyTable, keyof Versioned> {
  hrv_metric: string | null
  hrv_ms: number | null
  sleep_hours: number | null
  updated_at: Timestamp
}

export interface VHrvTrendView {
  user_id: string
  day: LocalDay
  hrv_metric: string
  value_ms: number
  ln_value: number
  n: number
  basis: string
  ln_mean_7d: number
  days_7d: number
  mean_7d_ms: number
  baseline_ln_mean: number
  baseline_ln_sd: number
  baseline_ms: number
  ln_good_threshold: number
  ln_medium_threshold: number
  good_threshold_ms: number
  medium_threshold_ms: number
  state: string
  baseline_days: number
  baseline_source: string
}

/** v_sleep: a sleep_daily row's stages and times, with its hours, stage shares and the sleep baseline beside it. */
export interface VSleepView extends Pick<
  SleepDailyTable,
  | 'user_id'
  | 'day'
  | 'valid'
  | 'deep_min'
  | 'rem_min'
  | 'core_min'
  | 'asleep_unspecified_min'
  | 'awake_min'
  | 'nap_min'
  | 'efficiency'
  | 'episode_start'
  | 'episode_end'
  | 'sleep_onset'
  | 'wake_time'
> {
  sleep_hours: number
  in_bed_hours: number
  deep_share: number | null
  rem_share: number | null
  core_share: number | null
  asleep_unspecified_share: number | null
  sleep_baseline_hours: number | null
  sleep_sd_hours: number | null
  good_threshold_hours: number | null
  medium_threshold_hours: number | null
  state: string | null
  baseline_nights: number | null
  baseline_source: string | null
}

export interface Database {
  samples: SamplesTable
  hrv_daily: HrvDailyTable
  sleep_daily: SleepDailyTable
  baseline_history: BaselineHistoryTable
  user_baselines: UserBaselinesTable
  user_cpt_tables: UserCptTablesTable
  readiness_daily: ReadinessDailyTable
  projection_checkpoints: ProjectionCheckpointsTable
  insight_tombstones: InsightTombstonesTable
  insight_users: InsightUsersTable
  v_readiness: VReadinessView
  v_hrv_trend: VHrvTrendView
  v_sleep: VSleepView
}

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
// a Generated<Timestamp> is still a ColumnType once selected: its select type is what is read
type Value<V> = [NonNullable<V>] extends [{ readonly __select__: infer S }] ? NonNullable<S> : NonNullable<V>
type KindOf<V> = [Value<V>] extends [number] ? 'number' : [Value<V>] extends [boolean] ? 'boolean' : [Value<V>] extends [string | Date] ? 'string' : 'object'
/** Each column of the Kysely row is the zod row's, of the same kind, nullable in both or in neither. */
type ColumnsAgree<K, Z> = { [C in keyof K & keyof Z]: Same<[KindOf<K[C]>, null extends K[C] ? 1 : 0], [KindOf<Z[C]>, null extends Z[C] ? 1 : 0]> }[keyof K & keyof Z]
type RowAgrees<K, Z> = Same<keyof K, keyof Z> extends true ? (false extends ColumnsAgree<K, Z> ? false : true) : false
type Rows = typeof TableRows & typeof ViewRows

/** Fails the typecheck, naming the relation, when a Kysely type and its zod row disagree. */
export const KYSELY_AGREES_WITH_ZOD = {
  samples: true,
  hrv_daily: true,
  sleep_daily: true,
  baseline_history: true,
  user_baselines: true,
  user_cpt_tables: true,
  readiness_daily: true,
  projection_checkpoints: true,
  insight_tombstones: true,
  insight_users: true,
  v_readiness: true,
  v_hrv_trend: true,
  v_sleep: true,
} as const satisfies { [T in keyof Database | keyof Rows]: T extends keyof Database & keyof Rows ? RowAgrees<Selectable<Database[T]>, z.output<Rows[T]>> : false }

/** Anything a raw `sql` template executes on: a Kysely of any schema, or a transaction. */
export type Executor = QueryExecutorProvider

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/

/** A plain lower-case SQL identifier, or an error: the only names ever spliced into SQL text. */
export function identifier(name: string): string {
  if (!IDENTIFIER.test(name)) throw new Error(`not a plain SQL identifier: ${JSON.stringify(name)}`)
  return name
}

const INT8_OID = 20
const DATE_OID = 1082

/** Per-pool parsers (pg's global ones stay untouched): int8 as a JS number, date as 'YYYY-MM-DD'. */
const typeParsers: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8_OID) return (v: string) => Number(v)
    if (oid === DATE_OID) return (v: string) => v
    return pg.types.getTypeParser(oid, format)
  }) as pg.CustomTypesConfig['getTypeParser'],
}

/** How long a pool waits for PostgreSQL (docs/architecture.md §8.3); every field optional. */
export interface PgTimeouts {
  /** a new connection, and a free one from a full pool */
  connectMs?: number
  /** a statement, on the server (statement_timeout) and on the client, whose connection is then discarded */
  statementMs?: number
  /** an idle pooled connection is closed after this; a transaction left idle on the server too */
  idleMs?: number
  /** TCP keepalive from this much idleness on */
  keepAliveMs?: number
}

/**
 * The pipeline's timeouts from config; `statementMs` overrides the statement timeout (the api's reads take a shorter
 * one, and wait for a connection no longer than for a statement).
 */
export function pgTimeouts(
  config: Pick<Config, 'HPH_PG_CONNECT_TIMEOUT_MS' | 'HPH_PG_STATEMENT_TIMEOUT_MS' | 'HPH_PG_IDLE_TIMEOUT_MS' | 'HPH_PG_KEEPALIVE_MS'>,
  statementMs = config.HPH_PG_STATEMENT_TIMEOUT_MS,
): PgTimeouts {
  return { connectMs: Math.min(config.HPH_PG_CONNECT_TIMEOUT_MS, statementMs), statementMs, idleMs: config.HPH_PG_IDLE_TIMEOUT_MS, keepAliveMs: config.HPH_PG_KEEPALIVE_MS }
}

/** What the client waits beyond the server's statement_timeout before it gives the connection up. */
const CLIENT_MARGIN_MS = 1_000

/** pg's client-side query timeout, by its message (pg gives it no code). */
export const isQueryReadTimeout = (err: unknown) => err instanceof Error && err.message === 'Query read timeout'

/**
 * A query that timed out on the client leaves its connection waiting for an answer that may never come (a
 * network that black-holes): the socket is destroyed, so the pool drops the client instead of lending it again.
 */
function discardOnReadTimeout(client: pg.PoolClient | pg.Client): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown
  ;(client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const result = query(...args)
    if (result instanceof Promise) {
      result.catch((err: unknown) => {
        if (isQueryReadTimeout(err)) (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy()
      })
    }
    return result
  }
}

/** A pool whose connections resolve unqualified names in the configured schema first. */
export function createDb(
  config: Pick<Config, 'DATABASE_URL' | 'HPH_DB_SCHEMA'>,
  opts: { max?: number; onConnectionError?: (err: Error) => void; settings?: Record<string, string>; timeouts?: PgTimeouts } = {},
): { db: Kysely<Database>; pool: pg.Pool } {
  const t = opts.timeouts ?? {}
  const server: Record<string, string> = { ...(opts.settings ?? {}) }
  if (t.statementMs) server.statement_timeout = String(t.statementMs)
  // a transaction its client forgot (a process stopped mid-batch behind a dead network) ends on the server too
  if (t.statementMs) server.idle_in_transaction_session_timeout = String(t.statementMs + CLIENT_MARGIN_MS)
  const settings = Object.entries(server)
    .map(([k, v]) => ` -c ${identifier(k)}=${/^\d+$/.test(v) ? v : identifier(v)}`)
    .join('')
  const pool = new pg.Pool({
    connectionString: config.DATABASE_URL,
    max: opts.max ?? 10,
    options: `-c search_path=${identifier(config.HPH_DB_SCHEMA)},public${settings}`,
    types: typeParsers,
    ...(t.connectMs ? { connectionTimeoutMillis: t.connectMs } : {}),
    ...(t.statementMs ? { query_timeout: t.statementMs + CLIENT_MARGIN_MS } : {}),
    ...(t.idleMs ? { idleTimeoutMillis: t.idleMs } : {}),
    ...(t.keepAliveMs ? { keepAlive: true, keepAliveInitialDelayMillis: t.keepAliveMs } : {}),
  })
  // a connection that dies (server restart, terminated backend, network) emits 'error', and without a
  // listener that event crashes the process: the pool's own event covers idle clients (it discards them);
  // a checked-out client also fails its query, which the caller sees and retries, so only the event is left
  const onConnectionError = opts.onConnectionError ?? (() => undefined)
  pool.on('error', onConnectionError)
  pool.on('connect', (client) => {
    client.on('error', onConnectionError)
    if (t.statementMs) discardOnReadTimeout(client)
  })
  return { db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), pool }
}

/**
 * Closes a `createDb` pair. Kysely ends the pool only if it ever ran a query through it; code that used
 * the pool alone (the hot paths) would otherwise leave its idle connections open for pg's idle timeout.
 */
export async function closeDb(db: Kysely<Database>, pool: pg.Pool): Promise<void> {
  await db.destroy()
  if (!pool.ended) await pool.end()
}

/** Creates the database of `databaseUrl` when missing, through the `postgres` maintenance database. */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl)
  const name = decodeURIComponent(url.pathname.replace(/^\//, '')) || 'postgres'
  url.pathname = '/postgres'
  const client = new pg.Client({ connectionString: url.toString() })
  await client.connect()
  try {
    const found = await client.query('select 1 from pg_database where datname = $1', [name])
    if (found.rowCount) return
    // CREATE DATABASE takes no parameters: the name is quoted as an identifier
    await client.query(`create database ${quoteIdent(name)}`)
  } catch (err) {
    // another process created it meanwhile: duplicate_database, or (both past the check) the catalog's unique index
    const code = pgCode(err)
    const raced = code === '42P04' || (code === '23505' && (err as { constraint?: string }).constraint === 'pg_database_datname_index')
    if (!raced) throw err
  } finally {
    await client.end()
  }
}

/** Any name as a quoted SQL identifier (for names that are not ours to restrict, like a database's). */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

/** The SQLSTATE of a pg error, if it is one. */
export function pgCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}
