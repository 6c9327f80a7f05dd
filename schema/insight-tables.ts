import { InsightRows, type InsightKind } from '../streams/schemas.ts'
import { sqlColumns, type SqlType, type TableName } from './rows.ts'

// Where each insight kind lands (docs/tables.md §3), its key inside the user, and the columns an insight
// event carries with their SQL types, derived from the event's zod row (docs/tables.md §7).

export interface InsightTable {
  table: TableName
  keys: readonly string[]
  columns: Readonly<Record<string, SqlType>>
}

const TABLE_OF = {
  hrv_daily: { table: 'hrv_daily', keys: ['day', 'metric'] },
  sleep_daily: { table: 'sleep_daily', keys: ['day'] },
  baseline_history: { table: 'baseline_history', keys: ['day'] },
  readiness_daily: { table: 'readiness_daily', keys: ['day'] },
  baseline: { table: 'user_baselines', keys: [] },
  cpt: { table: 'user_cpt_tables', keys: [] },
} as const satisfies Record<InsightKind, { table: TableName; keys: readonly string[] }>

export const INSIGHT_TABLES = Object.fromEntries(
  (Object.keys(TABLE_OF) as InsightKind[]).map((kind) => [kind, { ...TABLE_OF[kind], columns: sqlColumns(InsightRows[kind]) }]),
) as unknown as Record<InsightKind, InsightTable>

/** The key of a row inside its user, as insight events carry it: `day`, `day|metric`, or '' for the current baseline/CPT. */
export function keyOf(kind: InsightKind, row: Record<string, unknown>): string {
  return INSIGHT_TABLES[kind].keys.map((k) => String(row[k])).join('|')
}
