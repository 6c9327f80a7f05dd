import { readFileSync } from 'node:fs'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startPipeline, type Pipeline } from '../../pipeline/start.ts'
import { addDays } from '../../processors/insights/days.ts'
import type { ImportResult } from '../../ingest/healthkit-export/import.ts'
import { recomputeAll } from '../../processors/insights/recompute.ts'
import { streamName, subjects } from '../../streams/subjects.ts'
import { eventually, testEnv, type TestEnv } from '../helpers/env.ts'
import { referenceInsights, snapshotDifferences, snapshotInsights, type Row, type Snapshot } from '../helpers/insights.ts'

// Beat-to-beat HRV end to end (docs/insights.md §2a): heartbeat series and export beat
// lists over HTTP → normalize's derived hrv_rmssd samples → the insight tables, with the metric of each day.

const ADMIN = 'admin-key'
const TOL = 1e-9
const BEATS = new URL('../fixtures/beats/', import.meta.url)
const EXPECTED = JSON.parse(readFileSync(new URL('expected.json', BEATS), 'utf8')) as {
  'heartbeat-series.json': Record<string, { rmssd_ms?: number }>
  'healthkit-export-beats.xml': { derived: { rmssd_ms: number } }
}
const SERIES = JSON.parse(readFileSync(new URL('heartbeat-series.json', BEATS), 'utf8')) as { samples: Array<{ beats: Array<{ t: number; precededByGap?: boolean }> }> }
const D0 = '2026-03-01'

let env: TestEnv
let p: Pipeline

beforeAll(async () => {
  env = await testEnv({ HPH_API_KEYS: `${ADMIN}:admin` })
  p = await startPipeline(env.config, env.log, { stages: ['normalize', 'samples-writer', 'insights-engine', 'insights-writer'], api: true, prepare: true })
})
afterAll(async () => {
  await p?.stop()
  await env?.cleanup()
})

async function postSamples(userId: string, samples: unknown[]): Promise<{ accepted: number; rejected: Array<{ index: number; problem: string }> }> {
  const res = await fetch(`${p.url}/v1/users/${userId}/samples`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify({ samples }),
  })
  expect(res.status, await res.clone().text()).toBe(202)
  return (await res.json()) as { accepted: number; rejected: Array<{ index: number; problem: string }> }
}

const sdnn = (day: number, value: number) => ({
  type: 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN',
  unit: 'ms',
  value,
  sourceName: 'Apple Watch',
  startDate: `${addDays(D0, day)}T09:00:00-08:00`,
  endDate: `${addDays(D0, day)}T09:01:00-08:00`,
})
const ring = (day: number, value: number) => ({
  type: 'HPHQuantityTypeIdentifierHeartRateVariabilityRMSSD',
  unit: 'ms',
  value,
  sourceName: 'Oura',
  startDate: `${addDays(D0, day)}T04:00:00-08:00`,
  endDate: `${addDays(D0, day)}T04:05:00-08:00`,
})
/** the fixture's first series (911 beats, 963 s), moved to 10:00 of the day */
const series = (day: number, beats = SERIES.samples[0]!.beats) => ({
  type: 'HKDataTypeIdentifierHeartbeatSeries',
  sourceName: 'Apple Watch',
  uuid: `6B1F3C2E-0D7A-4C55-9E11-${String(day).padStart(12, '0')}`,
  startDate: `${addDays(D0, day)}T10:00:00-08:00`,
  endDate: `${addDays(D0, day)}T10:16:04-08:00`,
  beats,
})

/** waits until the user's tables are what docs/insights.md gives for their samples (computeInsights over them) */
async function settled(userId: string, samples: number): Promise<Snapshot> {
  await eventually(
    async () => {
      const n = (await sql<{ n: number }>`select count(*)::int as n from samples where user_id = ${userId}`.execute(p.db)).rows[0]!.n
      if (n < samples) return false
      const diff = snapshotDifferences(await snapshotInsights(p.db, { versions: false, users: [userId] }), await referenceInsights(p.db, [userId]), TOL)
      return diff.length === 0
    },
    90_000,
    `the insights of ${userId}`,
  )
  return snapshotInsights(p.db, { versions: false, users: [userId] })
}
const byDay = (rows: Row[]) => new Map(rows.map((r) => [String(r.day), r]))
const metrics = (rows: Row[]) => [...byDay(rows)].map(([day, r]) => `${day}:${String(r.hrv_metric)}`)

describe('a user with SDNN and heartbeat series over HTTP', () => {
  it('derives one hrv_rmssd sample a series, keeps the series in HPH_INGEST, and switches to rmssd on the 7th day of series', async () => {
    // days 0–9: SDNN only; days 10–19: SDNN and a heartbeat series; one series too short to give a value
    const body = [
      ...Array.from({ length: 20 }, (_, n) => sdnn(n, 40 + (n % 4))),
      ...Array.from({ length: 10 }, (_, i) => series(10 + i)),
      { ...series(25), beats: SERIES.samples[0]!.beats.slice(0, 21) },
    ]
    const answer = await postSamples('watch', body)
    expect(answer.accepted).toBe(30)
    expect(answer.rejected).toEqual([{ index: 30, problem: '21 beats give fewer than 20 clean successive differences (19)' }])
    const t = await settled('watch', 30)

    const derived = (
      await sql<{
        value: number
        start_ts: Date
        external_id: string | null
      }>`select value, start_ts, external_id from samples where user_id = 'watch' and metric = 'hrv_rmssd' order by start_ts`.execute(p.db)
    ).rows
    expect(derived).toHaveLength(10)
    for (const d of derived) expect(Math.abs(d.value - EXPECTED['heartbeat-series.json']['samples[0]']!.rmssd_ms!)).toBeLessThanOrEqual(TOL)
    expect(derived[0]!.start_ts.toISOString()).toBe('2026-03-11T18:00:00.000Z')

    // the raw series is in HPH_INGEST as sent: a change of the method is a replay
    const msg = await env.nats.jsm.streams.getMessage(streamName(env.config.HPH_PREFIX, 'INGEST'), { last_by_subj: subjects.ingest(env.config.HPH_PREFIX, 'healthkit', 'watch') })
    const raw = JSON.parse(new TextDecoder().decode(msg!.data)) as { data: { payload: { samples: Array<{ beats?: unknown[] }> } } }
    expect(raw.data.payload.samples[20]!.beats).toEqual(SERIES.samples[0]!.beats)

    // §2 and §3: a baseline_history row on each of the 20 days; sdnn through day 15, rmssd from day 16 (the 7th)
    expect(metrics(t.baseline_history)).toEqual(Array.from({ length: 20 }, (_, n) => `${addDays(D0, n)}:${n >= 16 ? 'rmssd' : 'sdnn'}`))
    expect(t.hrv_daily.filter((r) => r.metric === 'rmssd')).toHaveLength(10)
    expect(t.user_baselines[0]).toMatchObject({ hrv_metric: 'rmssd', hrv_days: 10 })
    expect(t.user_baselines[0]!.hrv_ln_mean).toBeCloseTo((10 / 14) * Math.log(EXPECTED['heartbeat-series.json']['samples[0]']!.rmssd_ms!) + (4 / 14) * Math.log(45), 9)
  })
})

describe("a user switching from SDNN to a ring's RMSSD", () => {
  it('uses sdnn until 7 ring days are in the window, then rmssd, as the later batch arrives', async () => {
    await postSamples(
      'switch',
      Array.from({ length: 30 }, (_, n) => sdnn(n, 40 + (n % 5))),
    )
    let t = await settled('switch', 30)
    expect(new Set(metrics(t.baseline_history).map((m) => m.slice(11)))).toEqual(new Set(['sdnn']))
    // the ring arrives: days 30–49, RMSSD only (the engine recomputes the range of the new days)
    await postSamples(
      'switch',
      Array.from({ length: 20 }, (_, i) => ring(30 + i, 60 + (i % 3))),
    )
    t = await settled('switch', 50)
    expect(metrics(t.baseline_history)).toEqual(Array.from({ length: 50 }, (_, n) => `${addDays(D0, n)}:${n >= 36 ? 'rmssd' : 'sdnn'}`))
    // days 30–35: an rmssd row, metric sdnn, no sleep: no readiness; from day 36 readiness on the ring's value
    const readiness = byDay(t.readiness_daily)
    for (let n = 30; n < 36; n++) expect(readiness.has(addDays(D0, n))).toBe(false)
    for (let n = 36; n < 50; n++) expect(readiness.get(addDays(D0, n))?.hrv_state).not.toBeNull()
    expect(t.user_baselines[0]).toMatchObject({ hrv_metric: 'rmssd', hrv_days: 20 })
  })
})

describe('an export with beat lists', () => {
  it('keeps both SDNN samples, adds the derived RMSSD sample, and counts it', async () => {
    const res = await fetch(`${p.url}/v1/users/export/healthkit-export`, {
      method: 'POST',
      headers: { 'content-type': 'application/xml', authorization: `Bearer ${ADMIN}` },
      body: readFileSync(new URL('healthkit-export-beats.xml', BEATS)),
    })
    expect(res.status).toBe(202)
    const r = (await res.json()) as ImportResult
    expect(r).toMatchObject({ records: 2, accepted: 2, rejected: 0, derived: 1 })
    const t = await settled('export', 3)
    const rows = (await sql<{ metric: string; value: number }>`select metric, value from samples where user_id = 'export' order by metric, start_ts`.execute(p.db)).rows
    expect(rows.map((x) => x.metric)).toEqual(['hrv_rmssd', 'hrv_sdnn', 'hrv_sdnn'])
    expect(Math.abs(rows[0]!.value - EXPECTED['healthkit-export-beats.xml'].derived.rmssd_ms)).toBeLessThanOrEqual(TOL)
    // the derived sample starts 23:58:30 on 03-01 and counts for that day, like the record's SDNN
    expect(t.hrv_daily.map((x) => `${String(x.day)}|${String(x.metric)}`)).toEqual(['2026-03-01|rmssd', '2026-03-01|sdnn', '2026-03-02|sdnn'])
    // one rmssd day with sdnn in its window: the metric stays sdnn
    expect(metrics(t.baseline_history).map((m) => m.slice(11))).toEqual(['sdnn', 'sdnn'])
  })
})

describe('the upgrade step: hph rebuild insights --recompute', () => {
  it('gives a stored user computed under the old rule (sdnn whenever there is any SDNN) the metric of each day', async () => {
    // the 'switch' user's rows as the old engine left them: every baseline and readiness on sdnn, and no
    // baseline_history on the ring-only days it had no sdnn row for (the old §3 counted the user's metric only)
    await sql`update baseline_history set hrv_metric = 'sdnn', hrv_days = 30, hrv_ln_mean = ${Math.log(42)} where user_id = 'switch' and day >= '2026-04-06'`.execute(p.db)
    await sql`delete from baseline_history where user_id = 'switch' and day >= '2026-04-15'`.execute(p.db)
    await sql`update user_baselines set hrv_metric = 'sdnn' where user_id = 'switch'`.execute(p.db)
    expect(snapshotDifferences(await snapshotInsights(p.db, { versions: false, users: ['switch'] }), await referenceInsights(p.db, ['switch']), TOL).length).toBeGreaterThan(0)
    const r = await recomputeAll({
      runId: 'upgrade',
      pool: p.pool,
      nats: p.nats,
      prefix: env.config.HPH_PREFIX,
      schema: env.config.HPH_DB_SCHEMA,
      eventMaxBytes: env.config.HPH_EVENT_MAX_BYTES,
      log: env.log,
    })
    expect(r.users).toBeGreaterThanOrEqual(3)
    const t = await settled('switch', 50)
    expect(metrics(t.baseline_history)).toEqual(Array.from({ length: 50 }, (_, n) => `${addDays(D0, n)}:${n >= 36 ? 'rmssd' : 'sdnn'}`))
    expect(t.user_baselines[0]).toMatchObject({ hrv_metric: 'rmssd' })
  })
})
