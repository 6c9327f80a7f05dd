import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { demoBatches, prng, type DemoBatch, type DemoSample } from '../../cli/demo-data.ts'
import { startPipeline, waitForIdle, type Pipeline, type PipelineStage } from '../../pipeline/start.ts'
import { insightsEngine } from '../../processors/insights/stage.ts'
import { insightsWriter } from '../../projections/insights/writer.ts'
import { createDb } from '../../schema/db.ts'
import { connectNats, type Nats } from '../../streams/connect.ts'
import { startConsumer, type BatchHandler, type RunningConsumer } from '../../streams/consumer.ts'
import type { DaysChanged } from '../../streams/schemas.ts'
import { streamName, streamSubjects } from '../../streams/subjects.ts'
import { decodeJson } from '../../streams/envelope.ts'
import { InsightEvent } from '../../streams/upcast.ts'
import { userMessages } from '../../privacy/messages.ts'
import { consumerConfig, CONSUMERS } from '../../streams/topology.ts'
import { testEnv, type TestEnv } from '../helpers/env.ts'
import { changedRows, INSIGHT_TABLE_NAMES, referenceInsights, snapshotDifferences, snapshotInsights, snapshotTombstones, type Snapshot } from '../helpers/insights.ts'

// docs/architecture.md §9.3, §9.4 and docs/insights.md §6, end to end: HTTP → … → the insight tables.

const ADMIN = 'admin-key'
const FIRST_NIGHT = '2026-01-01'
const DAY_MS = 86_400_000
const TOL = 1e-9

interface DemoUser {
  userId: string
  nights: number
  seed: number
  offsetMin: number
  ring: boolean
}

// three users, two with a ring (rmssd readings and a second source of sleep stages), offsets west and east of UTC
const USERS: DemoUser[] = [
  { userId: 'ana', nights: 45, seed: 1, offsetMin: -480, ring: true },
  { userId: 'ben', nights: 45, seed: 2, offsetMin: 60, ring: false },
  { userId: 'cyd', nights: 40, seed: 3, offsetMin: 330, ring: true },
]
const USER_IDS = USERS.map((u) => u.userId)

const batchesOf = (u: DemoUser, batchSize = 100): DemoBatch[] =>
  demoBatches({ userId: u.userId, nights: u.nights, firstNight: FIRST_NIGHT, offsetMin: u.offsetMin, seed: u.seed, ring: u.ring, batchSize })

interface Posting {
  userId: string
  batch: DemoBatch
}

// ── a pipeline per scenario: its own database and prefix; the insights-writer (and, for the race, the engines) run here ──

interface Stack {
  env: TestEnv
  p: Pipeline
  writer: RunningConsumer | undefined
  startWriter(): Promise<void>
  stop(): Promise<void>
}

interface EngineSpan {
  engine: number
  users: Set<string>
  t0: number
  t1: number
}

async function startStack(opts: { engines?: number; spans?: EngineSpan[] } = {}): Promise<Stack> {
  const env = await testEnv({ HPH_API_KEYS: `${ADMIN}:admin` })
  const engines = opts.engines ?? 1
  const stages: PipelineStage[] = engines === 1 ? ['normalize', 'samples-writer', 'insights-engine'] : ['normalize', 'samples-writer']
  const p = await startPipeline(env.config, env.log, { stages, api: true, prepare: true })
  const consumerOpts = (nats: Nats, batchSize: number) => ({
    nats,
    prefix: env.config.HPH_PREFIX,
    log: env.log,
    batchSize,
    pullMaxBytes: env.config.HPH_PULL_MAX_BYTES,
    maxDeliver: env.config.HPH_MAX_DELIVER,
    shutdownTimeoutMs: env.config.HPH_SHUTDOWN_TIMEOUT_MS,
    ackWaitS: env.config.HPH_ACK_WAIT_S,
  })

  // the extra engines: each with its own pg pool and NATS connection, like separate processes, on the one durable
  const extra: Array<{ consumer: RunningConsumer; pool: pg.Pool; nats: Nats }> = []
  if (engines > 1) {
    for (let i = 0; i < engines; i++) {
      const { pool } = createDb(env.config, { max: 4 })
      const nats = await connectNats(env.config, `test-engine-${i}`)
      // every query answers 15 ms late: a recomputation publishes well after its snapshot, so the instances'
      // recomputations of one user overlap, and stale results really do arrive after newer ones
      const slow = new Proxy(pool, {
        get: (target, prop, receiver) =>
          prop === 'query'
            ? async (...args: unknown[]) => {
                const r: unknown = await (target.query as (...a: unknown[]) => Promise<unknown>).apply(target, args)
                await new Promise((res) => setTimeout(res, 15))
                return r
              }
            : Reflect.get(target, prop, receiver),
      })
      const h = insightsEngine({ pool: slow, nats, prefix: env.config.HPH_PREFIX, schema: env.config.HPH_DB_SCHEMA, eventMaxBytes: env.config.HPH_EVENT_MAX_BYTES, log: env.log })
      const traced: BatchHandler<DaysChanged> = {
        ...h,
        async handle(batch) {
          const t0 = performance.now()
          try {
            return await h.handle(batch)
          } finally {
            opts.spans?.push({ engine: i, users: new Set(batch.map((d) => d.data.userId)), t0, t1: performance.now() })
          }
        },
      }
      // small pulls: many recomputations of the same users, spread over both instances
      extra.push({ consumer: await startConsumer(traced, consumerOpts(nats, 2)), pool, nats })
    }
  }

  const stack: Stack = {
    env,
    p,
    writer: undefined,
    async startWriter() {
      const h = insightsWriter({ pool: p.pool, prefix: env.config.HPH_PREFIX, schema: env.config.HPH_DB_SCHEMA })
      stack.writer = await startConsumer(h, consumerOpts(p.nats, env.config.HPH_BATCH_SIZE))
    },
    async stop() {
      await stack.writer?.stop()
      for (const e of extra) await e.consumer.stop()
      await p.stop()
      for (const e of extra) {
        await e.nats.nc.drain()
        await e.pool.end()
      }
      await env.cleanup()
    },
  }
  await stack.startWriter()
  return stack
}

async function post(stack: Stack, { userId, batch }: Posting): Promise<number> {
  const res = await fetch(`${stack.p.url}/v1/users/${userId}/samples`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify(batch),
  })
  const body = (await res.json()) as { rejected?: unknown[]; message?: string }
  if (res.status !== 200 && res.status !== 202) throw new Error(`POST ${userId} ${batch.batchId}: ${res.status} ${body.message ?? ''}`)
  // every sample must make it: a rejected one would make the runs differ for a reason other than order
  expect(body.rejected).toEqual([])
  return res.status
}

async function postAll(stack: Stack, postings: readonly Posting[]): Promise<void> {
  for (const x of postings) await post(stack, x)
}

const settle = (stack: Stack) => waitForIdle(stack.p.nats, stack.env.config.HPH_PREFIX, { timeoutMs: 60_000 })

const sampleIds = async (stack: Stack) =>
  (await sql<{ user_id: string; sample_id: string }>`select user_id, sample_id::text from samples order by user_id, sample_id`.execute(stack.p.db)).rows

const rowCount = (s: Snapshot) => INSIGHT_TABLE_NAMES.reduce((n, t) => n + s[t].length, 0)

// ── data arrangements ──

function shuffler(seed: number) {
  const rnd = prng(seed)
  return {
    rnd,
    shuffle<T>(xs: readonly T[]): T[] {
      const a = [...xs]
      for (let i = a.length - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1))
        ;[a[i], a[j]] = [a[j] as T, a[i] as T]
      }
      return a
    },
  }
}

/**
 * The same samples as `batchesOf`, cut into other batches and posted in three waves (the pipeline settles
 * between them): wave 1 holds a third of the data in random order, and for `ana` only her ring's samples
 * (so she is first computed with rmssd, then sdnn arrives); wave 2 the rest; wave 3 batches sent again
 * as they were (dropped by the api) and new batches repeating samples already stored (dropped by the table).
 */
function reshuffledWaves(users: readonly DemoUser[], seed: number): Posting[][] {
  const { rnd, shuffle } = shuffler(seed)
  const waves: Posting[][] = [[], [], []]
  const sent: Posting[] = []
  for (const u of users) {
    const original = batchesOf(u)
    const source = original[0]!.source
    const samples = original.flatMap((b) => b.samples)
    let n = 0
    const cut = (list: readonly DemoSample[]): Posting[] => {
      const out: Posting[] = []
      for (let i = 0; i < list.length;) {
        const size = 15 + Math.floor(rnd() * 140)
        out.push({ userId: u.userId, batch: { batchId: `re-${u.userId}-${n++}`, source, samples: list.slice(i, i + size) } })
        i += size
      }
      return out
    }
    const anaRingFirst = u.userId === 'ana'
    const early = anaRingFirst ? samples.filter((s) => s.sourceName === 'Oura Ring') : []
    const rest = shuffle(samples.filter((s) => !early.includes(s)))
    waves[0]!.push(...cut(early))
    for (const x of cut(rest)) (anaRingFirst || rnd() >= 1 / 3 ? waves[1]! : waves[0]!).push(x)
    sent.push(...waves[0]!.filter((x) => x.userId === u.userId), ...waves[1]!.filter((x) => x.userId === u.userId))
    for (let k = 0; k < 4; k++) {
      const from = Math.floor(rnd() * (samples.length - 40))
      waves[2]!.push({ userId: u.userId, batch: { batchId: `again-${u.userId}-${k}`, source, samples: samples.slice(from, from + 40) } })
    }
  }
  waves[2]!.push(...shuffle(sent).slice(0, 12))
  return waves.map((w) => shuffle(w))
}

/** The user's samples in 100-sample batches, those of the ring first. */
function ringFirst(u: DemoUser): Posting[] {
  const original = batchesOf(u)
  const samples = original.flatMap((b) => b.samples)
  const ordered = [...samples.filter((s) => s.sourceName === 'Oura Ring'), ...samples.filter((s) => s.sourceName !== 'Oura Ring')]
  const out: Posting[] = []
  for (let i = 0; i < ordered.length; i += 100)
    out.push({ userId: u.userId, batch: { batchId: `ring-first-${u.userId}-${i}`, source: original[0]!.source, samples: ordered.slice(i, i + 100) } })
  return out
}

/** The night (0-based, from FIRST_NIGHT) a demo sample belongs to: its local start, 12 hours earlier (bed ≥ 22:00, last sample ≤ ~10:00). */
function nightOf(s: DemoSample): number {
  const localStart = Date.parse(`${s.startDate.slice(0, 19)}Z`)
  return Math.floor((localStart - 12 * 3_600_000 - Date.parse(`${FIRST_NIGHT}T00:00:00Z`)) / DAY_MS)
}

const addDays = (day: string, n: number) => new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS).toISOString().slice(0, 10)

let A: Stack // in order, once
let B: Stack // reshuffled, resent, split otherwise
let C: Stack // two insights-engine instances on one durable
let inOrder: Snapshot | undefined
const spans: EngineSpan[] = []

beforeAll(async () => {
  A = await startStack()
  B = await startStack()
  C = await startStack({ engines: 2, spans })
})
afterAll(async () => {
  for (const s of [A, B, C]) await s?.stop()
})

describe('insights end to end', () => {
  it('gives the same rows in every insight table whatever the order, batching and duplicates of the samples, and they equal the pure computation', async () => {
    for (const u of USERS)
      await postAll(
        A,
        batchesOf(u).map((batch) => ({ userId: u.userId, batch })),
      )
    await settle(A)

    const waves = reshuffledWaves(USERS, 7)
    let duplicates = 0
    for (const [i, wave] of waves.entries()) {
      for (const x of wave) if ((await post(B, x)) === 200) duplicates++
      await settle(B)
      // after wave 1 ana has only her ring's rmssd: her baselines are on rmssd until her sdnn arrives
      if (i === 0) expect((await B.p.db.selectFrom('user_baselines').select('hrv_metric').where('user_id', '=', 'ana').executeTakeFirstOrThrow()).hrv_metric).toBe('rmssd')
    }
    expect(duplicates).toBe(12)

    // the same set of samples reached both tables
    expect(await sampleIds(B)).toEqual(await sampleIds(A))

    inOrder = await snapshotInsights(A.p.db, { versions: false })
    const shuffled = await snapshotInsights(B.p.db, { versions: false })
    for (const u of USER_IDS) {
      // every user has rows of every kind, and both metrics where a ring was worn
      expect(inOrder.sleep_daily.filter((r) => r.user_id === u).length).toBeGreaterThan(30)
      expect(inOrder.readiness_daily.filter((r) => r.user_id === u).length).toBeGreaterThan(30)
      expect(inOrder.user_cpt_tables.filter((r) => r.user_id === u)).toHaveLength(1)
    }
    expect(new Set(inOrder.hrv_daily.map((r) => r.metric))).toEqual(new Set(['sdnn', 'rmssd']))
    expect(inOrder.baseline_history.some((r) => r.baseline_source === 'personal')).toBe(true)
    // floats exactly: the same samples give the same doubles
    expect(snapshotDifferences(shuffled, inOrder, 0)).toEqual([])

    expect(snapshotDifferences(inOrder, await referenceInsights(A.p.db), TOL)).toEqual([])
  })

  it('changes only the rows spec §6 allows when a night arrives 40 days late, and ends equal to a recomputation from scratch', async () => {
    // dan: 110 nights, night 70 missing until the rest has settled (so the engine reads a window, not the whole history)
    const dan: DemoUser = { userId: 'dan', nights: 110, seed: 4, offsetMin: -300, ring: true }
    const lateNight = 70
    const samples = batchesOf(dan).flatMap((b) => b.samples)
    const source = batchesOf(dan)[0]!.source
    const late = samples.filter((s) => nightOf(s) === lateNight)
    const history = samples.filter((s) => nightOf(s) !== lateNight)
    expect(late.length).toBeGreaterThan(20)
    for (let i = 0; i < history.length; i += 100) await post(A, { userId: 'dan', batch: { batchId: `dan-${i}`, source, samples: history.slice(i, i + 100) } })
    await settle(A)

    const before = await snapshotInsights(A.p.db, { versions: false })
    const postedAt = new Date()
    await post(A, { userId: 'dan', batch: { batchId: 'dan-late', source, samples: late } })
    await settle(A)
    const after = await snapshotInsights(A.p.db, { versions: false })

    // §6: a sample touches the local dates of its start and end (the demo writes local times with their offset)
    const touched = [...new Set(late.flatMap((s) => [s.startDate.slice(0, 10), s.endDate.slice(0, 10)]))].sort()
    expect(touched).toHaveLength(2)
    const daily = new Set(touched.flatMap((d) => [addDays(d, -1), d, addDays(d, 1)]))
    const derivedFrom = addDays(touched[0]!, -1)
    const derivedTo = addDays(touched[touched.length - 1]!, 61)
    const lastDay = history
      .map((s) => s.endDate.slice(0, 10))
      .sort()
      .at(-1)!
    expect(derivedTo >= lastDay).toBe(true) // the history ends inside the derived range (user_baselines must follow)...
    expect(addDays(touched[0]!, -2) > FIRST_NIGHT).toBe(true) // ...and has days before it

    const changes = changedRows(before, after)
    const outside = changes.filter((c) => {
      if (c.userId !== 'dan') return true
      switch (c.table) {
        case 'sleep_daily':
        case 'hrv_daily':
          return !daily.has(c.day)
        case 'baseline_history':
        case 'readiness_daily':
          return c.day < derivedFrom || c.day > derivedTo
        case 'user_baselines':
        case 'user_cpt_tables':
          return false
      }
    })
    expect(outside).toEqual([])

    // the night itself arrived (its wake day had only a 'day' HRV reading of the next evening before), and it moved the
    // baselines after it, the readiness judged by them and the current baseline
    const wakeDay = touched[1]!
    const has = (table: string, change: string, pick: (day: string) => boolean) => changes.some((c) => c.table === table && c.change === change && pick(c.day))
    expect(has('sleep_daily', 'added', (d) => d === wakeDay)).toBe(true)
    expect(after.hrv_daily.find((r) => r.user_id === 'dan' && r.day === wakeDay && r.metric === 'sdnn')?.basis).toBe('sleep')
    expect(has('hrv_daily', 'changed', (d) => d === wakeDay)).toBe(true)
    // dan's ring makes rmssd the metric of his days: without the night the wake day had no rmssd row, hence no
    // readiness, so the night adds it; under sdnn its 'day' reading had given one that the night changes
    expect(has('readiness_daily', 'changed', (d) => d === wakeDay) || has('readiness_daily', 'added', (d) => d === wakeDay)).toBe(true)
    expect(has('baseline_history', 'changed', (d) => d > addDays(wakeDay, 30))).toBe(true)
    expect(has('user_baselines', 'changed', () => true)).toBe(true)
    expect(has('user_cpt_tables', 'changed', () => true)).toBe(true)
    // the late night was recomputed from a window of dan's history, not all of it
    const stamps = await A.p.db.selectFrom('user_baselines').select(['last_incremental_update']).where('user_id', '=', 'dan').executeTakeFirstOrThrow()
    expect(stamps.last_incremental_update?.getTime()).toBeGreaterThanOrEqual(postedAt.getTime() - 1000)

    expect(snapshotDifferences(after, await referenceInsights(A.p.db), TOL)).toEqual([])
  })

  it('keeps the current baseline and CPT whole when a sample that touches no night arrives weeks after the last one', async () => {
    // a resting heart rate makes no insight row, but it changes the user's data: the engine recomputes the current
    // baseline, which needs the 60 days before the latest night, however far the new sample is from them
    const restingHr = (day: string): DemoBatch => ({
      batchId: `rhr-${day}`,
      source: batchesOf(users[0]!)[0]!.source,
      samples: [{ type: 'HKQuantityTypeIdentifierRestingHeartRate', value: 55, unit: 'count/min', startDate: `${day}T09:00:00-08:00`, endDate: `${day}T09:00:00-08:00` }],
    })
    const users: DemoUser[] = [
      { userId: 'eve', nights: 100, seed: 5, offsetMin: -480, ring: false },
      { userId: 'fay', nights: 30, seed: 6, offsetMin: -480, ring: false },
    ]
    for (const u of users) for (const batch of batchesOf(u)) await post(A, { userId: u.userId, batch })
    await settle(A)
    const before = await snapshotInsights(A.p.db, { versions: false })
    await post(A, { userId: 'eve', batch: restingHr('2026-04-25') }) // 15 days after eve's last night
    await post(A, { userId: 'fay', batch: restingHr('2026-06-01') }) // 90 days after fay's last night
    await settle(A)
    const after = await snapshotInsights(A.p.db, { versions: false })
    expect(changedRows(before, after).filter((c) => c.userId === 'eve' || c.userId === 'fay')).toEqual([])
    expect(after.user_baselines.filter((r) => r.user_id === 'eve' || r.user_id === 'fay')).toHaveLength(2)
    expect(snapshotDifferences(after, await referenceInsights(A.p.db), TOL)).toEqual([])
  })

  it('gives the same rows with two insights-engine instances racing on one durable as with one', async () => {
    // the users' batches interleaved, two at a time in flight; ana's ring batches first, so her metric changes mid-race
    const lists = USERS.map((u) => (u.userId === 'ana' ? ringFirst(u) : batchesOf(u).map((batch) => ({ userId: u.userId, batch }))))
    const interleaved: Posting[] = []
    for (let i = 0; lists.some((l) => i < l.length); i++) for (const l of lists) if (l[i]) interleaved.push(l[i]!)
    for (let i = 0; i < interleaved.length; i += 2) await Promise.all(interleaved.slice(i, i + 2).map((x) => post(C, x)))
    await settle(C)

    // both instances worked, and at some moment both were recomputing the same user
    expect(new Set(spans.map((s) => s.engine))).toEqual(new Set([0, 1]))
    const raced = spans.some((a) => a.engine === 0 && spans.some((b) => b.engine === 1 && b.t0 < a.t1 && a.t0 < b.t1 && [...a.users].some((u) => b.users.has(u))))
    expect(raced).toBe(true)

    if (!inOrder) throw new Error('needs the single-instance rows of the first test')
    const racing = await snapshotInsights(C.p.db, { versions: false })
    expect(snapshotDifferences(racing, inOrder, 0)).toEqual([])
    expect(snapshotDifferences(racing, await referenceInsights(C.p.db), TOL)).toEqual([])
  })

  it('rebuilds identical insight tables by replaying HPH_INSIGHTS into truncated tables', async () => {
    for (const s of [A, B, C]) {
      const before = await snapshotInsights(s.p.db, { versions: true })
      const tombstones = await snapshotTombstones(s.p.db)
      const stream = streamName(s.env.config.HPH_PREFIX, 'INSIGHTS')
      // the stream holds superseded computations too (incremental recomputations, tombstones), so the replay has to pick
      let rowsInStream = 0
      for await (const m of userMessages(s.env.nats, stream, streamSubjects(s.env.config.HPH_PREFIX, 'INSIGHTS'), { withData: true })) {
        rowsInStream += InsightEvent.parse(decodeJson(m.data as Uint8Array)).data.rows.length
      }
      expect(rowsInStream).toBeGreaterThan(rowCount(before))

      await s.writer?.stop()
      await sql`truncate hrv_daily, sleep_daily, baseline_history, readiness_daily, user_baselines, user_cpt_tables, insight_tombstones`.execute(s.p.db)
      expect(rowCount(await snapshotInsights(s.p.db, { versions: true }))).toBe(0)
      const spec = CONSUMERS['insights-writer']
      await s.env.nats.jsm.consumers.delete(stream, spec.durable)
      await s.env.nats.jsm.consumers.add(stream, consumerConfig(spec, s.env.config))
      await s.startWriter()
      await settle(s)

      // versions included: the replay wrote each row from the same event
      expect(snapshotDifferences(await snapshotInsights(s.p.db, { versions: true }), before, 0)).toEqual([])
      expect(await snapshotTombstones(s.p.db)).toEqual(tombstones)
    }
  })

  it('serves the table rows from the read endpoints in the shapes of docs/api.md §5', async () => {
    const get = async (path: string) => {
      const res = await fetch(`${A.p.url}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } })
      return { status: res.status, body: (await res.json()) as unknown }
    }
    const from = '2026-01-10'
    const to = '2026-02-05'
    const rows = await snapshotInsights(A.p.db, { versions: false, users: ['ana'] })
    const inRange = (r: Record<string, unknown>) => String(r.day) >= from && String(r.day) <= to

    const hrv = await get(`/v1/users/ana/hrv/daily?from=${from}&to=${to}`)
    expect(hrv.status).toBe(200)
    const hrvRows = rows.hrv_daily.filter(inRange)
    expect(hrvRows.length).toBeGreaterThan(20)
    expect(hrv.body).toEqual(
      hrvRows.map((r) => ({ day: r.day, metric: r.metric, valueMs: r.value_ms, lnValue: r.ln_value, n: r.n, minMs: r.min_ms, maxMs: r.max_ms, basis: r.basis })),
    )

    const sleep = await get(`/v1/users/ana/sleep/daily?from=${from}&to=${to}`)
    expect(sleep.status).toBe(200)
    const sleepRows = rows.sleep_daily.filter(inRange)
    // both ends of the range are included
    expect([sleepRows[0]?.day, sleepRows.at(-1)?.day]).toEqual([from, to])
    expect(sleep.body).toEqual(
      sleepRows.map((r) => ({
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
        episodeStart: r.episode_start,
        episodeEnd: r.episode_end,
        sleepOnset: r.sleep_onset,
        wakeTime: r.wake_time,
        valid: r.valid,
      })),
    )

    const readiness = await get(`/v1/users/ana/readiness?from=${from}&to=${to}`)
    expect(readiness.status).toBe(200)
    const readinessRows = rows.readiness_daily.filter(inRange)
    expect(readinessRows.length).toBeGreaterThan(20)
    expect(readiness.body).toEqual(
      readinessRows.map((r) => ({
        day: r.day,
        score: r.score,
        label: r.label,
        pHigh: r.p_high,
        pMedium: r.p_medium,
        pLow: r.p_low,
        sleepState: r.sleep_state,
        hrvState: r.hrv_state,
      })),
    )

    // docs/api.md §5: "the user_baselines row" and "the user_cpt_tables row", as stored (column names of docs/tables.md §3)
    const asJson = (row: unknown) => JSON.parse(JSON.stringify(row)) as unknown
    const baseline = await get('/v1/users/ana/baseline')
    expect(baseline.status).toBe(200)
    expect(baseline.body).toMatchObject(rows.user_baselines[0]!)
    expect(baseline.body).toEqual(asJson(await A.p.db.selectFrom('user_baselines').selectAll().where('user_id', '=', 'ana').executeTakeFirstOrThrow()))
    const cpt = await get('/v1/users/ana/cpt')
    expect(cpt.status).toBe(200)
    expect(cpt.body).toMatchObject(rows.user_cpt_tables[0]!)
    expect(cpt.body).toEqual(asJson(await A.p.db.selectFrom('user_cpt_tables').selectAll().where('user_id', '=', 'ana').executeTakeFirstOrThrow()))

    for (const path of ['/v1/users/nobody/baseline', '/v1/users/nobody/cpt']) {
      expect(await get(path)).toEqual({ status: 404, body: { error: 'not_found', message: expect.any(String), details: [] } })
    }
    // a user with no rows yet has empty lists, not an error
    expect(await get(`/v1/users/nobody/readiness?from=${from}&to=${to}`)).toEqual({ status: 200, body: [] })

    const badRanges = [
      `from=${to}&to=${from}`, // to before from
      'from=2025-01-01&to=2026-01-02', // more than 366 days
      'from=2026-02-30&to=2026-03-01', // not a date
      `from=${from}`, // no to
      'from=20260101&to=20260105',
    ]
    for (const endpoint of ['hrv/daily', 'sleep/daily', 'readiness']) {
      for (const q of badRanges) {
        const res = await get(`/v1/users/ana/${endpoint}?${q}`)
        expect({ q, status: res.status, body: res.body }).toEqual({
          q,
          status: 400,
          body: { error: 'invalid_range', message: expect.any(String), details: expect.arrayContaining([{ path: expect.any(String), problem: expect.any(String) }]) },
        })
      }
    }
  })
})
