import type { FastifyInstance } from 'fastify'
import { sql, type Kysely } from 'kysely'
import type { Database } from '../../schema/db.ts'
import { HttpError } from '../errors.ts'
import { checkUserId } from './samples.ts'

// docs/api.md §5: what the dashboard draws for one user, read from the analysts' views (docs/analysts.md), so
// the page and an analyst's SQL show the same numbers. The window ends at the user's latest day with
// data, not today: a user who stopped syncing a week ago still sees their last 90 days.

export interface TrendsDeps {
  db: Kysely<Database>
}

export const DEFAULT_DAYS = 90
const MAX_DAYS = 366

/** The `days` local dates ending with `to` (inclusive): from = to − (days − 1). */
export function windowEnding(to: string, days: number): { from: string; to: string } {
  return { from: new Date(Date.parse(`${to}T00:00:00Z`) - (days - 1) * 86_400_000).toISOString().slice(0, 10), to }
}

export function parseDays(v: unknown): number {
  if (v === undefined) return DEFAULT_DAYS
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : Number.NaN
  if (!(n >= 1 && n <= MAX_DAYS)) throw new HttpError(400, 'invalid_days', `days must be a whole number 1..${MAX_DAYS}`, [{ path: 'days', problem: `must be 1..${MAX_DAYS}` }])
  return n
}

export function trendsRoutes(app: FastifyInstance, deps: TrendsDeps): void {
  const { db } = deps

  app.get<{ Params: { userId: string }; Querystring: { days?: string } }>('/v1/users/:userId/trends', async (req) => {
    // the access hook (api/access.ts) has authorised the token for this user
    const userId = checkUserId(req.params.userId)
    const days = parseDays(req.query.days)
    const latest = await sql<{ day: string | null }>`select greatest(
        (select max(day) from ${sql.table('sleep_daily')} where user_id = ${userId}),
        (select max(day) from ${sql.table('hrv_daily')} where user_id = ${userId}),
        (select max(day) from ${sql.table('readiness_daily')} where user_id = ${userId}))::date as day`.execute(db)
    const last = latest.rows[0]?.day
    if (!last) throw new HttpError(404, 'not_found', `no insights for ${userId} yet`)
    const { from, to } = windowEnding(last, days)
    const [readiness, hrv, sleep] = await Promise.all([
      db.selectFrom('v_readiness').select(['day', 'score', 'label']).where('user_id', '=', userId).where('day', '>=', from).where('day', '<=', to).orderBy('day').execute(),
      db.selectFrom('v_hrv_trend')
        .select(['day', 'hrv_metric', 'value_ms', 'mean_7d_ms', 'baseline_ms', 'good_threshold_ms', 'medium_threshold_ms', 'state'])
        .where('user_id', '=', userId).where('day', '>=', from).where('day', '<=', to).orderBy('day').execute(),
      db.selectFrom('v_sleep')
        .select(['day', 'valid', 'sleep_hours', 'deep_min', 'rem_min', 'core_min', 'asleep_unspecified_min', 'awake_min', 'sleep_baseline_hours', 'good_threshold_hours', 'medium_threshold_hours'])
        .where('user_id', '=', userId).where('day', '>=', from).where('day', '<=', to).orderBy('day').execute(),
    ])
    return {
      userId, from, to,
      readiness: readiness.map((r) => ({ day: r.day, score: r.score, label: r.label })),
      hrv: hrv.map((r) => ({
        day: r.day, metric: r.hrv_metric, valueMs: r.value_ms, mean7dMs: r.mean_7d_ms, baselineMs: r.baseline_ms,
        goodMs: r.good_threshold_ms, mediumMs: r.medium_threshold_ms, state: r.state,
      })),
      sleep: sleep.map((r) => ({
        day: r.day, valid: r.valid, hours: r.sleep_hours, deepMin: r.deep_min, remMin: r.rem_min, coreMin: r.core_min,
        asleepUnspecifiedMin: r.asleep_unspecified_min, awakeMin: r.awake_min,
        baselineHours: r.sleep_baseline_hours, goodHours: r.good_threshold_hours, mediumHours: r.medium_threshold_hours,
      })),
    }
  })

  /** Admin only: the users with a baseline, for the dashboard's user picker. */
  app.get('/v1/users', { config: { admin: 'only an admin token lists users' } }, async () => {
    const rows = await db.selectFrom('user_baselines').select(['user_id', 'as_of_day']).orderBy('user_id').execute()
    return rows.map((r) => ({ userId: r.user_id, asOfDay: r.as_of_day }))
  })
}
