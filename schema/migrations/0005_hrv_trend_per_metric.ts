import { sql, type Migration } from 'kysely'
import type { SchemaNames } from './0001_initial.ts'
import { analystViewsSql } from './0004_analyst_views.ts'

/**
 * `v_hrv_trend`'s 7-day rolling mean per metric: it was taken over the view's rows of the user whatever their
 * metric, so around a change of metric it averaged ln SDNN with ln RMSSD (different scales). The view is
 * replaced with the same columns, its rolling mean now over the metric's own rows of hrv_daily
 * (docs/analysts.md); a database created since has it from 0004 already, and gets it again here.
 */
export function hrvTrendPerMetric(names: SchemaNames): Migration {
  return {
    async up(db) {
      for (const statement of analystViewsSql(names, ['v_hrv_trend'])) await sql.raw(statement).execute(db)
    },
  }
}
