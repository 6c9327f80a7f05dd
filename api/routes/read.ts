import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import type { Database } from '../../schema/db.ts'
import { HttpError } from '../errors.ts'
import { checkUserId } from './samples.ts'

// docs/api.md §5: from/to are inclusive local dates, at most 366 days.

export interface ReadRouteDeps {
  db: Kysely<Database>
}

const DAY = /^\d{4}-\d{2}-\d{2}$/
const MAX_DAYS = 366

export function parseRange(q: { from?: unknown; to?: unknown }): { from: string; to: string } {
  const details: Array<{ path: string; problem: string }> = []
  const check = (name: 'from' | 'to') => {
    const v = q[name]
    // year 0 is a date to JavaScript but not to PostgreSQL (1 BC is followed by AD 1): from 0001-01-01 on
    if (typeof v !== 'string' || !DAY.test(v) || v < '0001-01-01' || Number.isNaN(Date.parse(`${v}T00:00:00Z`)) || new Date(`${v}T00:00:00Z`).toISOString().slice(0, 10) !== v) {
      details.push({ path: name, problem: 'must be a date YYYY-MM-DD' })
    }
    return v as string
  }
  const from = check('from')
  const to = check('to')
  if (details.length === 0) {
    const days = (Date.parse(to) - Date.parse(from)) / 86_400_000 + 1
    if (days < 1) details.push({ path: 'to', problem: 'must not be before from' })
    else if (days > MAX_DAYS) details.push({ path: 'to', problem: `at most ${MAX_DAYS} days from from` })
  }
  if (details.length) throw new HttpError(400, 'invalid_range', 'from and to must be dates YYYY-MM-DD, at most 366 days apart', details)
  return { from, to }
}

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString())

export function readRoutes(app: FastifyInstance, deps: ReadRouteDeps): void {
  const { db } = deps
  // authenticated and authorised for this user by the access hook (api/access.ts)
  const user = (req: { params: { userId: string } }) => checkUserId(req.params.userId)
  type Req = { Params: { userId: string }; Querystring: { from?: string; to?: string } }

  app.get<Req>('/v1/users/:userId/hrv/daily', async (req) => {
    const userId = user(req)
    const { from, to } = parseRange(req.query)
    const rows = await db.selectFrom('hrv_daily').selectAll().where('user_id', '=', userId).where('day', '>=', from).where('day', '<=', to).orderBy('day').orderBy('metric').execute()
    return rows.map((r) => ({ day: r.day, metric: r.metric, valueMs: r.value_ms, lnValue: r.ln_value, n: r.n, minMs: r.min_ms, maxMs: r.max_ms, basis: r.basis }))
  })

  app.get<Req>('/v1/users/:userId/sleep/daily', async (req) => {
    const userId = user(req)
    const { from, to } = parseRange(req.query)
    const rows = await db.selectFrom('sleep_daily').selectAll().where('user_id', '=', userId).where('day', '>=', from).where('day', '<=', to).orderBy('day').execute()
    return rows.map((r) => ({
      day: r.day, totalSleepMin: r.total_sleep_min, inBedMin: r.in_bed_min, deepMin: r.deep_min, remMin: r.rem_min, coreMin: r.core_min,
      asleepUnspecifiedMin: r.asleep_unspecified_min, awakeMin: r.awake_min, napMin: r.nap_min, efficiency: r.efficiency,
      episodeStart: iso(r.episode_start), episodeEnd: iso(r.episode_end), sleepOnset: iso(r.sleep_onset), wakeTime: iso(r.wake_time), valid: r.valid,
    }))
  })

  app.get<Req>('/v1/users/:userId/readiness', async (req) => {
    const userId = user(req)
    const { from, to } = parseRange(req.query)
    const rows = await db.selectFrom('readiness_daily').selectAll().where('user_id', '=', userId).where('day', '>=', from).where('day', '<=', to).orderBy('day').execute()
    return rows.map((r) => ({ day: r.day, score: r.score, label: r.label, pHigh: r.p_high, pMedium: r.p_medium, pLow: r.p_low, sleepState: r.sleep_state, hrvState: r.hrv_state }))
  })

  app.get<Req>('/v1/users/:userId/baseline', async (req) => {
    const userId = user(req)
    const row = await db.selectFrom('user_baselines').selectAll().where('user_id', '=', userId).executeTakeFirst()
    if (!row) throw new HttpError(404, 'not_found', `no baseline for ${userId} yet`)
    return row
  })

  app.get<Req>('/v1/users/:userId/cpt', async (req) => {
    const userId = user(req)
    const row = await db.selectFrom('user_cpt_tables').selectAll().where('user_id', '=', userId).executeTakeFirst()
    if (!row) throw new HttpError(404, 'not_found', `no CPT for ${userId} yet`)
    return row
  })
}
