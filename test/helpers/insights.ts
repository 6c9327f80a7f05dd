import { sql, type Kysely } from 'kysely'
import { computeInsights, type IdentifiedSample } from '../../processors/insights/compute.ts'
import type { Database } from '../../schema/db.ts'
import type { Sample } from '../../streams/schemas.ts'

// Test-only: the insight tables as plain rows, the pure reference (docs/insights.md §0) in the same shape, and a comparison.

export type Row = Record<string, unknown>

/** Every insight table and its key (docs/tables.md §3). */
export const INSIGHT_TABLE_KEYS = {
  hrv_daily: ['user_id', 'day', 'metric'],
  sleep_daily: ['user_id', 'day'],
  baseline_history: ['user_id', 'day'],
  readiness_daily: ['user_id', 'day'],
  user_baselines: ['user_id'],
  user_cpt_tables: ['user_id'],
} as const
export type InsightTableName = keyof typeof INSIGHT_TABLE_KEYS
export const INSIGHT_TABLE_NAMES = Object.keys(INSIGHT_TABLE_KEYS) as InsightTableName[]

/** Each table's rows, in key order; instants as ISO strings. */
export type Snapshot = Record<InsightTableName, Row[]>

/** Bookkeeping that legitimately differs between two runs over the same samples. */
const WALL_CLOCK = ['updated_at', 'created_at', 'last_incremental_update', 'last_full_update']
const VERSIONS = ['data_version', 'data_count']

export const keyOfRow = (table: InsightTableName, row: Row): string => INSIGHT_TABLE_KEYS[table].map((k) => String(row[k])).join('|')

const normalize = (v: unknown): unknown => (v instanceof Date ? v.toISOString() : v)

function sortByKey(table: InsightTableName, rows: Row[]): Row[] {
  return rows
    .map((r) => [keyOfRow(table, r), r] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, r]) => r)
}

/**
 * The rows of every insight table (only `users` when given). Wall-clock columns are always left out;
 * `versions: false` also leaves out data_version/data_count (two runs over the same samples read
 * different stream sequences).
 */
export async function snapshotInsights(db: Kysely<Database>, opts: { versions: boolean; users?: readonly string[] }): Promise<Snapshot> {
  const drop = new Set([...WALL_CLOCK, ...(opts.versions ? [] : VERSIONS)])
  const out = {} as Snapshot
  for (const table of INSIGHT_TABLE_NAMES) {
    const where = opts.users ? sql`where user_id = any(${[...opts.users]})` : sql``
    const { rows } = await sql<Row>`select * from ${sql.table(table)} ${where}`.execute(db)
    out[table] = sortByKey(
      table,
      rows.map((r) =>
        Object.fromEntries(
          Object.entries(r)
            .filter(([c]) => !drop.has(c))
            .map(([c, v]) => [c, normalize(v)]),
        ),
      ),
    )
  }
  return out
}

/** insight_tombstones, in key order, without the wall clock. */
export async function snapshotTombstones(db: Kysely<Database>): Promise<Row[]> {
  const { rows } = await sql<Row>`select user_id, kind, key, data_version, data_count from insight_tombstones`.execute(db)
  return rows.map((r) => ({ ...r, id: `${String(r.user_id)}|${String(r.kind)}|${String(r.key)}` })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}

/** Every sample of table `samples` as canonical samples with their ids, by user. */
export async function samplesByUser(db: Kysely<Database>): Promise<Map<string, IdentifiedSample[]>> {
  const rows = await db.selectFrom('samples').selectAll().execute()
  const byUser = new Map<string, IdentifiedSample[]>()
  for (const r of rows) {
    const sample: Sample = {
      userId: r.user_id,
      metric: r.metric as Sample['metric'],
      start: r.start_ts.toISOString(),
      end: r.end_ts.toISOString(),
      utcOffsetMinutes: r.utc_offset_min,
      ...(r.value !== null ? { value: r.value } : {}),
      ...(r.stage !== null ? { stage: r.stage as NonNullable<Sample['stage']> } : {}),
      source: { name: r.source_name, ...(r.source_bundle ? { bundleId: r.source_bundle } : {}), ...(r.device ? { device: r.device } : {}) },
      ...(r.external_id ? { externalId: r.external_id } : {}),
      ingestId: r.ingest_id,
    }
    byUser.set(r.user_id, [...(byUser.get(r.user_id) ?? []), { id: r.sample_id, sample }])
  }
  return byUser
}

const isoOf = (v: unknown): unknown => (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(v) ? new Date(v).toISOString() : v)
const rowOf = (userId: string, row: object): Row => ({ user_id: userId, ...Object.fromEntries(Object.entries(row).map(([c, v]) => [c, isoOf(v)])) })

/** computeInsights over every user's samples in table `samples`: what the tables must hold (docs/insights.md §0). */
export async function referenceInsights(db: Kysely<Database>, users?: readonly string[]): Promise<Snapshot> {
  const out: Snapshot = { hrv_daily: [], sleep_daily: [], baseline_history: [], readiness_daily: [], user_baselines: [], user_cpt_tables: [] }
  for (const [userId, samples] of await samplesByUser(db)) {
    if (users && !users.includes(userId)) continue
    const r = computeInsights(samples)
    out.hrv_daily.push(...r.hrvDaily.map((x) => rowOf(userId, x)))
    out.sleep_daily.push(...r.sleepDaily.map((x) => rowOf(userId, x)))
    out.baseline_history.push(...r.baselineHistory.map((x) => rowOf(userId, x)))
    out.readiness_daily.push(...r.readiness.map((x) => rowOf(userId, x)))
    if (r.userBaseline) out.user_baselines.push(rowOf(userId, r.userBaseline))
    if (r.userCpt) out.user_cpt_tables.push(rowOf(userId, r.userCpt))
  }
  for (const table of INSIGHT_TABLE_NAMES) out[table] = sortByKey(table, out[table])
  return out
}

/** Where two values differ beyond `tol` (relative above 1, absolute below); '' when they agree. */
function differs(a: unknown, b: unknown, tol: number, path: string): string[] {
  if (typeof a === 'number' && typeof b === 'number') return Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)) ? [] : [`${path}: ${a} vs ${b}`]
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return [`${path}: length ${a.length} vs ${b.length}`]
    return a.flatMap((x, i) => differs(x, b[i], tol, `${path}[${i}]`))
  }
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()
    return keys.flatMap((k) =>
      !(k in a) || !(k in b) ? [`${path}.${k}: ${k in a ? 'only in actual' : 'only in expected'}`] : differs((a as Row)[k], (b as Row)[k], tol, `${path}.${k}`),
    )
  }
  return a === b ? [] : [`${path}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`]
}

/** Every difference between two snapshots (row sets by key, then fields within `tol`); empty when they agree. */
export function snapshotDifferences(actual: Snapshot, expected: Snapshot, tol: number): string[] {
  const out: string[] = []
  for (const table of INSIGHT_TABLE_NAMES) {
    const a = new Map(actual[table].map((r) => [keyOfRow(table, r), r]))
    const b = new Map(expected[table].map((r) => [keyOfRow(table, r), r]))
    for (const k of a.keys()) if (!b.has(k)) out.push(`${table}[${k}]: unexpected row`)
    for (const [k, row] of b) {
      const got = a.get(k)
      out.push(...(got ? differs(got, row, tol, `${table}[${k}]`) : [`${table}[${k}]: missing row`]))
    }
  }
  return out
}

export interface RowChange {
  table: InsightTableName
  key: string
  userId: string
  /** the row's day (as_of_day for the per-user tables) */
  day: string
  change: 'added' | 'removed' | 'changed'
}

/** The rows that are new, gone or different (exactly) from `before` to `after`. */
export function changedRows(before: Snapshot, after: Snapshot): RowChange[] {
  const out: RowChange[] = []
  for (const table of INSIGHT_TABLE_NAMES) {
    const b = new Map(before[table].map((r) => [keyOfRow(table, r), r]))
    const a = new Map(after[table].map((r) => [keyOfRow(table, r), r]))
    const of = (key: string, row: Row, change: RowChange['change']): RowChange => ({
      table,
      key,
      change,
      userId: String(row.user_id),
      day: String(row.day ?? row.as_of_day),
    })
    for (const [k, row] of a) {
      const old = b.get(k)
      if (!old) out.push(of(k, row, 'added'))
      else if (differs(row, old, 0, '').length > 0) out.push(of(k, row, 'changed'))
    }
    for (const [k, row] of b) if (!a.has(k)) out.push(of(k, row, 'removed'))
  }
  return out
}
