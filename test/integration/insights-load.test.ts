import type { Kysely } from 'kysely'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { demoBatches } from '../../cli/demo-data.ts'
import { prepare } from '../../pipeline/start.ts'
import { normalizeBatch, parseBatchEnvelope, type NormalizedSample } from '../../processors/normalize/healthkit.ts'
import type { IdentifiedSample } from '../../processors/insights/compute.ts'
import { CURRENT_WINDOW_DAYS, loadUserSamples, type UserSamples } from '../../processors/insights/load.ts'
import { createDb, type Database } from '../../schema/db.ts'
import { ensurePartitions } from '../../schema/partitions.ts'
import type { SampleFacts } from '../../streams/schemas.ts'
import { testEnv, type TestEnv } from '../helpers/env.ts'

// processors/insights/load.ts: the engine's one query a user gives what the first form of it gave — the
// user-wide facts beside every sample row — for users with every kind of history and every kind of `since`.

let env: TestEnv
let db: Kysely<Database>
let pool: pg.Pool

/** The first form of the load query (facts on every row, a row even without samples), as the reference. */
function referenceSql(schema: string): string {
  const iso = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
  return `with a as (
      select max(stream_seq) as max_seq, count(*)::int as n, bool_or(metric = 'hrv_sdnn') as has_sdnn,
        bool_or(metric = 'hrv_rmssd') as has_rmssd, bool_or(metric = 'sleep_stage') as has_sleep, min(start_ts) as first_ts,
        max(start_ts) filter (where metric in ('hrv_sdnn', 'hrv_rmssd', 'sleep_stage')) as last_ts
      from "${schema}".samples where user_id = $1),
    b as (select a.*, least($2::timestamptz, a.last_ts - interval '${CURRENT_WINDOW_DAYS} days') as since from a)
    select s.sample_id, s.metric, ${iso('s.start_ts')} as start_iso, ${iso('s.end_ts')} as end_iso, s.utc_offset_min, s.value, s.stage, b.max_seq, b.n, b.has_sdnn, b.has_rmssd, b.has_sleep, coalesce(b.first_ts < b.since, false) as has_earlier,
      (select hrv_metric from "${schema}".insight_users where user_id = $1) as stored_metric
    from b left join "${schema}".samples s on s.user_id = $1 and s.start_ts >= b.since and s.metric in ('hrv_sdnn', 'hrv_rmssd', 'sleep_stage')`
}

/** loadUserSamples as it read the reference query's rows. */
async function referenceLoad(schema: string, userId: string, since: Date): Promise<UserSamples> {
  const { rows } = await pool.query(referenceSql(schema), [userId, since])
  const first = rows[0]
  const samples: IdentifiedSample[] = []
  for (const r of rows) {
    if (r.sample_id === null) continue
    const sample: SampleFacts = { metric: r.metric, start: r.start_iso, end: r.end_iso, utcOffsetMinutes: r.utc_offset_min }
    if (r.value !== null) sample.value = r.value
    if (r.stage !== null) sample.stage = r.stage
    samples.push({ id: r.sample_id, sample })
  }
  return {
    samples,
    maxSeq: first?.max_seq ?? 0,
    count: first?.n ?? 0,
    hasSdnn: first?.has_sdnn ?? false,
    hasRmssd: first?.has_rmssd ?? false,
    hasSleep: first?.has_sleep ?? false,
    storedMetric: first?.stored_metric ?? undefined,
    hasEarlier: first?.has_earlier ?? false,
  }
}

const now = new Date('2027-01-01T00:00:00Z')

/** A demo user's canonical samples; `keep` picks the metrics. */
function userSamples(userId: string, nights: number, seed: number, ring: boolean, keep: (metric: string) => boolean): NormalizedSample[] {
  const out: NormalizedSample[] = []
  for (const b of demoBatches({ userId, nights, firstNight: '2026-01-01', offsetMin: seed * 90 - 480, seed, ring, batchSize: 1000 })) {
    out.push(
      ...normalizeBatch(parseBatchEnvelope(b, { maxSamples: 10_000 }), { userId, ingestId: `ingest-${userId}-${b.batchId}`, now }).samples.filter((s) => keep(s.sample.metric)),
    )
  }
  return out
}

// ana: every metric over 120 nights; ben: resting heart rate only (no sample the insights read); cyd: sleep only, with a
// metric remembered in insight_users; eve: sdnn and resting heart rate over 20 nights; dan: no sample at all
const SAMPLES = [
  ...userSamples('ana', 120, 1, true, () => true),
  ...userSamples('ben', 30, 2, false, (m) => m === 'resting_hr'),
  ...userSamples('cyd', 30, 3, false, (m) => m === 'sleep_stage'),
  ...userSamples('eve', 20, 4, false, (m) => m === 'hrv_sdnn' || m === 'resting_hr'),
]
const USERS = ['ana', 'ben', 'cyd', 'eve', 'dan']

beforeAll(async () => {
  env = await testEnv()
  ;({ db, pool } = createDb(env.config, { max: 2 }))
  await prepare(env.config, env.log, env.nats, db)
  await ensurePartitions(
    db,
    env.config.HPH_DB_SCHEMA,
    SAMPLES.map((s) => s.sample.start),
  )
  const rows = SAMPLES.map(({ id, sample: s }, i) => ({
    sample_id: id,
    user_id: s.userId,
    metric: s.metric,
    start_ts: s.start,
    end_ts: s.end,
    utc_offset_min: s.utcOffsetMinutes,
    value: s.value ?? null,
    stage: s.stage ?? null,
    source_name: s.source.name,
    ingest_id: s.ingestId,
    // sequences out of insertion order, as pulls commit them
    stream_seq: ((i * 7919) % SAMPLES.length) + 1,
  }))
  for (let i = 0; i < rows.length; i += 1000)
    await db
      .insertInto('samples')
      .values(rows.slice(i, i + 1000))
      .execute()
  await db.insertInto('insight_users').values({ user_id: 'cyd', hrv_metric: 'rmssd' }).execute()
}, 120_000)

afterAll(async () => {
  await db?.destroy()
  await env?.cleanup()
})

const byId = (a: IdentifiedSample, b: IdentifiedSample) => (a.id < b.id ? -1 : a.id > b.id ? 1 : a.sample.start < b.sample.start ? -1 : 1)

describe('loadUserSamples', () => {
  it('gives what the query with the facts on every row gave, for every user and every since', async () => {
    const schema = env.config.HPH_DB_SCHEMA
    // before everything, at ana's first sample, inside ana's history, and after everything (the current baseline's window)
    const anaFirst = SAMPLES.filter((s) => s.sample.userId === 'ana').reduce((first, s) => (s.sample.start < first ? s.sample.start : first), '9999')
    const sinces = [new Date(0), new Date(anaFirst), new Date('2026-02-10T00:00:00Z'), new Date('2026-03-15T07:30:00.250Z'), new Date('2026-12-01T00:00:00Z')]
    const seen = { samples: 0, earlier: 0, full: 0, stored: 0 }
    for (const userId of USERS) {
      for (const since of sinces) {
        const ours = await loadUserSamples(pool, schema, userId, since)
        const reference = await referenceLoad(schema, userId, since)
        // the order of the samples is the plan's, in both; the set and every field must agree
        expect({ ...ours, samples: [...ours.samples].sort(byId) }).toStrictEqual({ ...reference, samples: [...reference.samples].sort(byId) })
        seen.samples += ours.samples.length
        if (ours.hasEarlier) seen.earlier++
        else if (ours.count > 0) seen.full++
        if (ours.storedMetric !== undefined) seen.stored++
      }
    }
    // the cases were there: samples with values and stages, users with and without earlier samples, a remembered metric
    expect(seen.samples).toBeGreaterThan(3000)
    expect(seen.earlier).toBeGreaterThan(0)
    expect(seen.full).toBeGreaterThan(0)
    expect(seen.stored).toBe(sinces.length)
    expect(await loadUserSamples(pool, schema, 'dan', new Date(0))).toStrictEqual({
      samples: [],
      maxSeq: 0,
      count: 0,
      hasSdnn: false,
      hasRmssd: false,
      hasSleep: false,
      storedMetric: undefined,
      hasEarlier: false,
    })
  })
})
