import { sql, type Migration } from 'kysely'
import type { SchemaNames } from './0001_initial.ts'

const VERSIONED = ['hrv_daily', 'sleep_daily', 'baseline_history', 'user_baselines', 'user_cpt_tables', 'readiness_daily', 'insight_tombstones']

/**
 * `insight_users`: the HRV metric (docs/insights.md §2) the insights engine last computed a user with.
 * The engine writes it itself after publishing, so it never lags like the projections: when the metric
 * becomes `sdnn` (the user's first sdnn sample), every row of the history is recomputed once.
 *
 * `data_count`: how many of the user's samples the computation read. Two computations can read the
 * same highest stream sequence and still differ (the samples-writer commits pulls out of sequence
 * order), but the samples a later snapshot sees are a superset of an earlier one's, so the count breaks
 * the tie: the version guard compares (data_version, data_count).
 */
export function insightDataCount({ schema }: SchemaNames): Migration {
  return {
    async up(db) {
      await sql`create table ${sql.id(schema, 'insight_users')} (
        user_id text primary key,
        hrv_metric text not null,
        updated_at timestamptz not null default now()
      )`.execute(db)
      for (const table of VERSIONED) {
        await sql`alter table ${sql.id(schema, table)} add column data_count bigint not null default 0`.execute(db)
      }
    },
  }
}
