import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import type { Database } from '../../schema/db.ts'
import { z } from 'zod'
import { InsightRows, LocalDate, UserId } from '../../streams/schemas.ts'
import { HttpError } from '../errors.ts'
import { errors, GUARDED_ERRORS, refusing, UserParams, v1 } from '../openapi.ts'
import { checkUserId } from './samples.ts'

// docs/api.md §5: from/to are inclusive local dates, at most 366 days.

export interface ReadRouteDeps {
  db: Kysely<Database>
}

const DAY = /^\d{4}-\d{2}-\d{2}$/
const MAX_DAYS = 366

/** A real calendar date YYYY-MM-DD; year 0 is a date to JavaScript but not to PostgreSQL (1 BC is followed by AD 1). */
const isDay = (v: string) => DAY.test(v) && v >= '0001-01-01' && !Number.isNaN(Date.parse(`${v}T00:00:00Z`)) && new Date(`${v}T00:00:00Z`).toISOString().slice(0, 10) === v
const day = (what: string) => z.string({ error: 'must be a date YYYY-MM-DD' }).regex(DAY, 'must be a date YYYY-MM-DD').refine(isDay, 'must be a date YYYY-MM-DD').describe(what)

/** `from` and `to`: the query of every daily read. */
export const RangeQuery = refusing(
  z.object({ from: day('the first local date, inclusive'), to: day(`the last local date, inclusive; at most ${MAX_DAYS} days from from`) }).superRefine((q, ctx) => {
    // a date refused above is not measured again
    if (!isDay(q.from) || !isDay(q.to)) return
    const days = (Date.parse(q.to) - Date.parse(q.from)) / 86_400_000 + 1
    if (days < 1) ctx.addIssue({ code: 'custom', path: ['to'], message: 'must not be before from' })
    else if (days > MAX_DAYS) ctx.addIssue({ code: 'custom', path: ['to'], message: `at most ${MAX_DAYS} days from from` })
  }),
  'invalid_range',
  `from and to must be dates YYYY-MM-DD, at most ${MAX_DAYS} days apart`,
)

export function parseRange(q: { from?: unknown; to?: unknown }): { from: string; to: string } {
  const r = RangeQuery.safeParse(q)
  if (r.success) return r.data
  const details = r.error.issues.map((i) => ({ path: i.path.map(String).join('.'), problem: i.message }))
  throw new HttpError(400, 'invalid_range', 'from and to must be dates YYYY-MM-DD, at most 366 days apart', details)
}

const num = z.number()
const instant = z.string().describe('an ISO 8601 instant')
const HrvDay = z.object({
  day: LocalDate,
  metric: z.enum(['sdnn', 'rmssd']),
  valueMs: num,
  lnValue: num,
  n: z.number().int(),
  minMs: num,
  maxMs: num,
  basis: z.enum(['sleep', 'day']),
})
const SleepDay = z.object({
  day: LocalDate,
  totalSleepMin: num,
  inBedMin: num,
  deepMin: num,
  remMin: num,
  coreMin: num,
  asleepUnspecifiedMin: num,
  awakeMin: num,
  napMin: num,
  efficiency: num,
  episodeStart: instant.nullable(),
  episodeEnd: instant.nullable(),
  sleepOnset: instant.nullable(),
  wakeTime: instant.nullable(),
  valid: z.boolean(),
})
const State = z.enum(['good', 'medium', 'poor']).nullable()
const ReadinessDay = z.object({
  day: LocalDate,
  score: z.number().int(),
  label: z.enum(['high', 'medium', 'low']),
  pHigh: num,
  pMedium: num,
  pLow: num,
  sleepState: State,
  hrvState: State,
})
/** the stored rows as they are (snake_case, as analysts read them in SQL) */
const stored = { user_id: UserId, data_version: z.number().int(), data_count: z.number().int(), updated_at: instant, created_at: instant }
const BaselineRow = InsightRows.baseline.extend({ ...stored, last_incremental_update: instant.nullable(), last_full_update: instant.nullable() })
const CptRow = InsightRows.cpt.extend(stored)

const daily = (summary: string, row: z.ZodType) => ({
  ...v1('insights'),
  summary,
  params: UserParams,
  querystring: RangeQuery,
  response: { 200: z.array(row).describe('one entry a day (and metric), oldest first'), ...errors(...GUARDED_ERRORS) },
})
const current = (summary: string, row: z.ZodType) => ({
  ...v1('insights'),
  summary,
  params: UserParams,
  response: { 200: row.describe(summary), ...errors(...GUARDED_ERRORS, 404) },
})

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString())

export function readRoutes(app: FastifyInstance, deps: ReadRouteDeps): void {
  const { db } = deps
  // authenticated and authorised for this user by the access hook (api/access.ts)
  const user = (req: { params: { userId: string } }) => checkUserId(req.params.userId)
  type Req = { Params: { userId: string }; Querystring: { from?: string; to?: string } }

  app.get<Req>('/v1/users/:userId/hrv/daily', { schema: daily("HRV a day: the night's (or the day's) SDNN or RMSSD", HrvDay) }, async (req) => {
    const userId = user(req)
    const { from, to } = parseRange(req.query)
    const rows = await db
      .selectFrom('hrv_daily')
      .selectAll()
      .where('user_id', '=', userId)
      .where('day', '>=', from)
      .where('day', '<=', to)
      .orderBy('day')
      .orderBy('metric')
      .execute()
    return rows.map((r) => ({ day: r.day, metric: r.metric, valueMs: r.value_ms, lnValue: r.ln_value, n: r.n, minMs: r.min_ms, maxMs: r.max_ms, basis: r.basis }))
  })

  app.get<Req>('/v1/users/:userId/sleep/daily', { schema: daily('sleep a night, by the local date it ends on', SleepDay) }, async (req) => {
    const userId = user(req)
    const { from, to } = parseRange(req.query)
    const rows = await db.selectFrom('sleep_daily').selectAll().where('user_id', '=', userId).where('day', '>=', from).where('day', '<=', to).orderBy('day').execute()
    return rows.map((r) => ({
      day: r.day,
      totalSleepMin: r.total_sleep_min,
      inBedMin: r.in_bed_min,
      deepMin: r.deep_min,
      remMin: r.rem_min,
      coreMin: r.core_min,
      asleepUnspecifiedMin: r.asleep_unspecified_min,
      awakeMin: r.awake_min,
      napMin: r.nap_min,
      efficiency: r.efficiency,
      episodeStart: iso(r.episode_start),
      episodeEnd: iso(r.episode_end),
      sleepOnset: iso(r.sleep_onset),
      wakeTime: iso(r.wake_time),
      valid: r.valid,
    }))
  })

  app.get<Req>('/v1/users/:userId/readiness', { schema: daily('the readiness score a day', ReadinessDay) }, async (req) => {
    const userId = user(req)
    const { from, to } = parseRange(req.query)
    const rows = await db.selectFrom('readiness_daily').selectAll().where('user_id', '=', userId).where('day', '>=', from).where('day', '<=', to).orderBy('day').execute()
    return rows.map((r) => ({ day: r.day, score: r.score, label: r.label, pHigh: r.p_high, pMedium: r.p_medium, pLow: r.p_low, sleepState: r.sleep_state, hrvState: r.hrv_state }))
  })

  app.get<Req>('/v1/users/:userId/baseline', { schema: current("the user's current baseline (the user_baselines row)", BaselineRow) }, async (req) => {
    const userId = user(req)
    const row = await db.selectFrom('user_baselines').selectAll().where('user_id', '=', userId).executeTakeFirst()
    if (!row) throw new HttpError(404, 'not_found', `no baseline for ${userId} yet`)
    return row
  })

  app.get<Req>('/v1/users/:userId/cpt', { schema: current("the user's current CPT table (the user_cpt_tables row)", CptRow) }, async (req) => {
    const userId = user(req)
    const row = await db.selectFrom('user_cpt_tables').selectAll().where('user_id', '=', userId).executeTakeFirst()
    if (!row) throw new HttpError(404, 'not_found', `no CPT for ${userId} yet`)
    return row
  })
}
