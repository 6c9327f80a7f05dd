import type { FastifyInstance } from 'fastify'
import { sql, type Kysely } from 'kysely'
import type { Database } from '../../schema/db.ts'
import { z } from 'zod'
import { LocalDate, UserId } from '../../streams/schemas.ts'
import { HttpError } from '../errors.ts'
import { errors, GUARDED_ERRORS, refusing, UserParams, v1 } from '../openapi.ts'
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

const DAYS_PROBLEM = `must be 1..${MAX_DAYS}`
const wholeDays = (v: string) => /^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= MAX_DAYS

export const DaysQuery = refusing(
  z.object({
    days: z
      .string({ error: DAYS_PROBLEM })
      .refine(wholeDays, DAYS_PROBLEM)
      .optional()
      .describe(`how many days, ending with the user's latest day with data: a whole number 1..${MAX_DAYS}, ${DEFAULT_DAYS} when not given`),
  }),
  'invalid_days',
  `days must be a whole number 1..${MAX_DAYS}`,
)

export function parseDays(v: unknown): number {
  if (v === undefined) return DEFAULT_DAYS
  if (typeof v !== 'string' || !wholeDays(v)) throw new HttpError(400, 'invalid_days', `days must be a whole number 1..${MAX_DAYS}`, [{ path: 'days', problem: DAYS_PROBLEM }])
  return Number(v)
}

const n = z.number()
const Trends = z.object({
  userId: UserId,
  from: LocalDate,
  to: LocalDate,
  readiness: z.array(z.object({ day: LocalDate, score: z.number().int(), label: z.string() })),
  hrv: z.array(z.object({ day: LocalDate, metric: z.string(), valueMs: n, mean7dMs: n, baselineMs: n, goodMs: n, mediumMs: n, state: z.string() })),
  sleep: z.array(
    z.object({
      day: LocalDate,
      valid: z.boolean(),
      hours: n,
      deepMin: n,
      remMin: n,
      coreMin: n,
      asleepUnspecifiedMin: n,
      awakeMin: n,
      baselineHours: n.nullable(),
      goodHours: n.nullable(),
      mediumHours: n.nullable(),
    }),
  ),
})

export function trendsRoutes(app: FastifyInstance, deps: TrendsDeps): void {
  const { db } = deps

  const trendsSchema = {
    ...v1('insights'),
    summary: 'what the dashboard draws for a user: readiness, HRV against its baseline and thresholds, sleep, over the days ending with the latest one with data',
    params: UserParams,
    querystring: DaysQuery,
    response: { 200: Trends.describe('the window and its days'), ...errors(...GUARDED_ERRORS, 404) },
  }
  app.get<{ Params: { userId: string }; Querystring: { days?: string } }>('/v1/users/:userId/trends', { schema: trendsSchema }, async (req) => {
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
      db
        .selectFrom('v_hrv_trend')
        .select(['day', 'hrv_metric', 'value_ms', 'mean_7d_ms', 'baseline_ms', 'good_threshold_ms', 'medium_threshold_ms', 'state'])
        .where('user_id', '=', userId)
        .where('day', '>=', from)
        .where('day', '<=', to)
        .orderBy('day')
        .execute(),
      db
        .selectFrom('v_sleep')
        .select([
          'day',
          'valid',
          'sleep_hours',
          'deep_min',
          'rem_min',
          'core_min',
          'asleep_unspecified_min',
          'awake_min',
          'sleep_baseline_hours',
          'good_threshold_hours',
          'medium_threshold_hours',
        ])
        .where('user_id', '=', userId)
        .where('day', '>=', from)
        .where('day', '<=', to)
        .orderBy('day')
        .execute(),
    ])
    return {
      userId,
      from,
      to,
      readiness: readiness.map((r) => ({ day: r.day, score: r.score, label: r.label })),
      hrv: hrv.map((r) => ({
        day: r.day,
        metric: r.hrv_metric,
        valueMs: r.value_ms,
        mean7dMs: r.mean_7d_ms,
        baselineMs: r.baseline_ms,
        goodMs: r.good_threshold_ms,
        mediumMs: r.medium_threshold_ms,
        state: r.state,
      })),
      sleep: sleep.map((r) => ({
        day: r.day,
        valid: r.valid,
        hours: r.sleep_hours,
        deepMin: r.deep_min,
        remMin: r.rem_min,
        coreMin: r.core_min,
        asleepUnspecifiedMin: r.asleep_unspecified_min,
        awakeMin: r.awake_min,
        baselineHours: r.sleep_baseline_hours,
        goodHours: r.good_threshold_hours,
        mediumHours: r.medium_threshold_hours,
      })),
    }
  })

  /** Admin only: the users with a baseline, for the dashboard's user picker. */
  const usersSchema = {
    ...v1('users'),
    summary: 'the users with a baseline (admin only)',
    response: { 200: z.array(z.object({ userId: UserId, asOfDay: LocalDate })).describe('by userId'), ...errors(...GUARDED_ERRORS) },
  }
  app.get('/v1/users', { config: { admin: 'only an admin token lists users' }, schema: usersSchema }, async () => {
    const rows = await db.selectFrom('user_baselines').select(['user_id', 'as_of_day']).orderBy('user_id').execute()
    return rows.map((r) => ({ userId: r.user_id, asOfDay: r.as_of_day }))
  })
}
