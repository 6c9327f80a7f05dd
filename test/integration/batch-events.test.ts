import fc from 'fast-check'
import { sql, type Kysely } from 'kysely'
import { afterAll, describe, expect, it } from 'vitest'
import { startPipeline, waitForIdle, type Pipeline, type PipelineStage } from '../../pipeline/start.ts'
import type { BatchStats } from '../../streams/consumer.ts'
import { NORMALIZE_BATCH_BYTES, sampleEventsOf } from '../../processors/normalize/stage.ts'
import type { NormalizedSample } from '../../processors/normalize/healthkit.ts'
import { userMessages } from '../../privacy/messages.ts'
import { rebuildProjection } from '../../projections/rebuild.ts'
import type { Database } from '../../schema/db.ts'
import { decodeJson, envelope } from '../../streams/envelope.ts'
import { hashHex, hashUuid } from '../../streams/ids.ts'
import { publishAll, type Outgoing } from '../../streams/publish.ts'
import { INSIGHT_V1_TYPE, MAX_SAMPLES_PER_EVENT, type InsightBatch } from '../../streams/schemas.ts'
import { streamName, streamSubjects, subjects } from '../../streams/subjects.ts'
import { InsightEvent } from '../../streams/upcast.ts'
import { startNatsServer } from '../helpers/nats-server.ts'
import { canonicalSamples, legacySampleEvents, sampleEvents } from '../helpers/samples.ts'
import { eventually, testEnv, type TestEnv } from '../helpers/env.ts'
import { snapshotInsights, snapshotTombstones, type Snapshot } from '../helpers/insights.ts'

// docs/architecture.md §5: an event is a unit of work, a row is a unit of truth. However samples are
// cut into events, and whichever version of event carried them, the tables are the same.

const WRITERS: readonly PipelineStage[] = ['samples-writer', 'insights-engine', 'insights-writer']
const opened: Array<{ p?: Pipeline; env: TestEnv }> = []

afterAll(async () => {
  for (const o of opened.reverse()) {
    await o.p?.stop()
    await o.env.cleanup()
  }
})

async function stack(stages: readonly PipelineStage[], overrides: Record<string, string> = {}, api = false): Promise<{ env: TestEnv; p: Pipeline }> {
  const env = await testEnv(overrides)
  const p = await startPipeline(env.config, env.log, { stages, api, prepare: true })
  opened.push({ env, p })
  return { env, p }
}

/** Every row of `samples` but the stream bookkeeping (which message carried it, which raw batch first). */
async function samplesTable(db: Kysely<Database>, opts: { seq: boolean } = { seq: false }): Promise<unknown[]> {
  const seq = opts.seq ? sql`, stream_seq, ingest_id` : sql``
  const { rows } = await sql`select sample_id, user_id, metric, start_ts, end_ts, utc_offset_min, value, stage, source_name, source_bundle, device, external_id ${seq}
    from samples order by sample_id, start_ts`.execute(db)
  return rows
}

/** Every message of a stream, decoded. */
async function messagesOf(env: TestEnv, key: 'INGEST' | 'SAMPLES' | 'INSIGHTS'): Promise<Array<{ subject: string; bytes: number; event: unknown }>> {
  const out = []
  for await (const m of userMessages(env.nats, streamName(env.config.HPH_PREFIX, key), streamSubjects(env.config.HPH_PREFIX, key), { withData: true })) {
    out.push({ subject: m.subject, bytes: m.data?.length ?? 0, event: decodeJson(m.data as Uint8Array) })
  }
  return out
}

const samples = canonicalSamples(3, 20, '2026-02-01')

describe('a stream written before the batch events', () => {
  let v2: { env: TestEnv; p: Pipeline; insights: Snapshot; rows: unknown[] }

  it('of hph.sample.v1 events gives the rows the same samples give as hph.sample.v2, and replays into them', async () => {
    const a = await stack(WRITERS)
    await publishAll(a.env.nats.js, sampleEvents(a.env.config.HPH_PREFIX, samples))
    await waitForIdle(a.env.nats, a.env.config.HPH_PREFIX, { timeoutMs: 120_000 })
    v2 = { ...a, insights: await snapshotInsights(a.p.db, { versions: false }), rows: await samplesTable(a.p.db) }
    expect(v2.rows.length).toBe(samples.length)
    expect(v2.insights.readiness_daily.length).toBeGreaterThan(30)

    const b = await stack(WRITERS)
    const legacy = legacySampleEvents(b.env.config.HPH_PREFIX, samples)
    expect(legacy.length).toBe(samples.length)
    await publishAll(b.env.nats.js, legacy)
    await waitForIdle(b.env.nats, b.env.config.HPH_PREFIX, { timeoutMs: 120_000 })
    expect(await samplesTable(b.p.db)).toEqual(v2.rows)
    expect(await snapshotInsights(b.p.db, { versions: false })).toEqual(v2.insights)

    // hph rebuild samples reads the v1 stream into the very rows the live writer made of it
    const before = await samplesTable(b.p.db, { seq: true })
    const r = await rebuildProjection({
      nats: b.env.nats,
      db: b.p.db,
      pool: b.p.pool,
      prefix: b.env.config.HPH_PREFIX,
      schema: b.env.config.HPH_DB_SCHEMA,
      log: b.env.log,
      projection: 'samples',
    })
    expect(r.skipped).toBe(0)
    expect(await samplesTable(b.p.db, { seq: true })).toEqual(before)
  })

  it('of hph.insight.v1 events (one row each, as the engine used to publish) writes and rebuilds the same insight rows', async () => {
    // the rows the v2 run published, re-published one to an event on the v1 subjects, as the old engine did
    const c = await stack(['insights-writer'])
    const prefix = c.env.config.HPH_PREFIX
    const legacy: Outgoing[] = []
    for (const m of await messagesOf(v2.env, 'INSIGHTS')) {
      const { data } = InsightEvent.parse(m.event)
      for (const row of data.rows) {
        const v1 = { userId: data.userId, ...row }
        legacy.push({
          subject: subjects.legacy.insight(prefix, row.kind, data.userId),
          event: envelope({
            id: hashHex('insight', data.userId, row.kind, row.key, row.dataVersion, row.dataCount, JSON.stringify(row.row)),
            type: INSIGHT_V1_TYPE,
            source: 'insights-engine',
            subject: data.userId,
            data: v1,
          }),
        })
      }
    }
    expect(legacy.length).toBeGreaterThan(100)
    await publishAll(c.env.nats.js, legacy)
    await waitForIdle(c.env.nats, prefix, { timeoutMs: 120_000 })
    const expected = await snapshotInsights(v2.p.db, { versions: true })
    expect(await snapshotInsights(c.p.db, { versions: true })).toEqual(expected)
    expect(await snapshotTombstones(c.p.db)).toEqual(await snapshotTombstones(v2.p.db))

    const r = await rebuildProjection({ nats: c.env.nats, db: c.p.db, pool: c.p.pool, prefix, schema: c.env.config.HPH_DB_SCHEMA, log: c.env.log, projection: 'insights' })
    expect(r.skipped).toBe(0)
    expect(await snapshotInsights(c.p.db, { versions: true })).toEqual(expected)
  })
})

/** A seeded shuffle (fast-check shrinks the seed, not a permutation). */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items]
  let s = seed >>> 0 || 1
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0
    const j = s % (i + 1)
    ;[out[i], out[j]] = [out[j] as T, out[i] as T]
  }
  return out
}

/**
 * The samples cut into events another way: shuffled, in raw batches of `batch` samples of any metrics (each
 * raw batch's samples grouped by metric, as normalize does), `again` of them sent a second time inside another
 * raw batch, and every `resend`-th event published twice (a redelivered raw batch).
 */
function cutOtherwise(prefix: string, list: readonly NormalizedSample[], cut: { seed: number; batch: number; maxBytes: number; again: number; resend: number }): Outgoing[] {
  const order = shuffled(list, cut.seed)
  const withDuplicates = [...order, ...order.slice(0, cut.again)]
  const events: Outgoing[] = []
  for (let i = 0; i < withDuplicates.length; i += cut.batch) {
    const run = withDuplicates.slice(i, i + cut.batch)
    const byUser = new Map<string, NormalizedSample[]>()
    for (const s of run) byUser.set(s.sample.userId, [...(byUser.get(s.sample.userId) ?? []), s])
    for (const [userId, own] of byUser) {
      const ingestId = hashUuid('cut', cut.seed, i, userId)
      events.push(
        ...sampleEventsOf(
          prefix,
          { userId, ingestId, receivedAt: '2027-01-01T00:00:00.000Z' },
          own.map((s) => ({ ...s, sample: { ...s.sample, ingestId } })),
          cut.maxBytes,
        ),
      )
    }
  }
  const resent = events.filter((_, k) => cut.resend > 0 && k % cut.resend === 0)
  return shuffled([...events, ...resent], cut.seed + 1)
}

describe('cutting the same samples into events', () => {
  const few = canonicalSamples(2, 12, '2026-03-01')
  let reference: { rows: unknown[]; insights: Snapshot } | undefined

  it('never changes any table (sizes, orders, metrics together, a sample in two events, events sent twice)', async () => {
    const a = await stack(WRITERS)
    await publishAll(a.env.nats.js, sampleEvents(a.env.config.HPH_PREFIX, few))
    await waitForIdle(a.env.nats, a.env.config.HPH_PREFIX, { timeoutMs: 120_000 })
    reference = { rows: await samplesTable(a.p.db), insights: await snapshotInsights(a.p.db, { versions: false }) }
    expect(reference.rows.length).toBe(few.length)

    await fc.assert(
      fc.asyncProperty(
        fc.record({
          seed: fc.integer({ min: 1, max: 2 ** 30 }),
          batch: fc.integer({ min: 1, max: few.length }),
          maxBytes: fc.integer({ min: 4096, max: 256 * 1024 }),
          again: fc.integer({ min: 0, max: 60 }),
          resend: fc.integer({ min: 0, max: 5 }),
        }),
        async (cut) => {
          const s = await stack(WRITERS)
          const events = cutOtherwise(s.env.config.HPH_PREFIX, few, cut)
          await publishAll(s.env.nats.js, events)
          await waitForIdle(s.env.nats, s.env.config.HPH_PREFIX, { timeoutMs: 120_000 })
          expect(await samplesTable(s.p.db)).toEqual(reference?.rows)
          expect(await snapshotInsights(s.p.db, { versions: false })).toEqual(reference?.insights)
          await s.p.stop()
        },
      ),
      { numRuns: 4 },
    )
  })
})

/** A HealthKit batch of `n` heart-rate and HRV samples of ~`pad` bytes each, one a minute from `from`. */
function bigBatch(batchId: string, n: number, pad: number, from = Date.UTC(2026, 4, 1)) {
  return {
    batchId,
    samples: Array.from({ length: n }, (_, i) => {
      const at = new Date(from + i * 60_000).toISOString()
      return {
        uuid: hashUuid(batchId, i),
        type: i % 4 === 0 ? 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN' : 'HKQuantityTypeIdentifierHeartRate',
        value: i % 4 === 0 ? 45 : 60,
        unit: i % 4 === 0 ? 'ms' : 'count/min',
        startDate: at,
        endDate: at,
        sourceName: 'Apple Watch',
        device: 'd'.repeat(pad),
      }
    }),
  }
}

async function post(p: Pipeline, userId: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${p.url}/v1/users/${userId}/samples`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

const countOf = async (db: Kysely<Database>, userId: string) =>
  (await sql<{ n: number }>`select count(*)::int as n from samples where user_id = ${userId}`.execute(db)).rows[0]?.n ?? 0

describe("normalize's batches", () => {
  it('hold at most NORMALIZE_BATCH_BYTES of raw events, however many wait (a pull of HPH_PULL_MAX_BYTES would take them all)', async () => {
    // the raw batches stored first, with no stage running: then normalize finds them all waiting
    const { env, p } = await stack([], {}, true)
    const bodies = Array.from({ length: 12 }, (_, i) => bigBatch(`waiting-${i}`, 1000, 100, Date.UTC(2026, 5, 1) + i * 86_400_000))
    for (const body of bodies) expect((await post(p, 'wai', body)).status).toBe(202)
    const raw = await messagesOf(env, 'INGEST')
    const total = raw.reduce((n, m) => n + m.bytes, 0)
    expect(total).toBeGreaterThan(3 * NORMALIZE_BATCH_BYTES)
    expect(total).toBeLessThan(env.config.HPH_PULL_MAX_BYTES)
    const batches: BatchStats[] = []
    const stages = await startPipeline(env.config, env.log, { stages: ['normalize', 'samples-writer'], api: false, prepare: false, onBatch: (s) => void batches.push(s) })
    try {
      await eventually(async () => (await countOf(stages.db, 'wai')) === 12_000, 60_000, 'every sample')
    } finally {
      await stages.stop()
    }
    const normalized = batches.filter((b) => b.stage === 'normalize')
    expect(normalized.reduce((n, b) => n + b.size, 0)).toBeGreaterThanOrEqual(12)
    expect(normalized.length).toBeGreaterThan(2)
    expect(normalized.every((b) => b.bytes <= NORMALIZE_BATCH_BYTES || b.size === 1)).toBe(true)
  })
})

describe('events at the size limits', () => {
  it('a 4 MB body lands whole: stored as parts of one batch, answered 202 once all are stored, a resend is a duplicate', async () => {
    const { p } = await stack(['normalize', 'samples-writer'], {}, true)
    const body = bigBatch('four-mb', 9000, 250)
    // 4 MB, under the 5 MiB body limit, four times what one NATS message holds
    expect(Buffer.byteLength(JSON.stringify(body))).toBeGreaterThan(4_000_000)
    expect(Buffer.byteLength(JSON.stringify(body))).toBeLessThan(5 * 1024 * 1024)
    const r = await post(p, 'big', body)
    expect(r.status).toBe(202)
    expect(r.body.parts).toBeGreaterThanOrEqual(4)
    expect(r.body.accepted).toBe(9000)
    await eventually(async () => (await countOf(p.db, 'big')) === 9000, 60_000, 'every sample of the 4 MB batch')
    const again = await post(p, 'big', body)
    expect(again).toMatchObject({ status: 200, body: { duplicate: true, eventId: r.body.eventId, parts: r.body.parts } })
  })

  it('a server with a small max_payload: every event of every stream is cut below it, and nothing is lost', async () => {
    const server = await startNatsServer(undefined, { maxPayload: 64 * 1024 })
    const env = await testEnv({ NATS_URL: server.url })
    const p = await startPipeline(env.config, env.log, { stages: ['normalize', 'samples-writer', 'insights-engine', 'insights-writer'], api: true, prepare: true })
    try {
      expect(env.nats.nc.info?.max_payload).toBe(64 * 1024)
      const body = bigBatch('small-server', 3000, 300)
      const r = await post(p, 'ana', body)
      expect(r.status).toBe(202)
      expect(r.body.parts).toBeGreaterThan(10)
      await eventually(async () => (await countOf(p.db, 'ana')) === 3000, 60_000, 'every sample')
      await waitForIdle(env.nats, env.config.HPH_PREFIX, { timeoutMs: 120_000 })
      for (const key of ['INGEST', 'SAMPLES', 'INSIGHTS'] as const) {
        const msgs = await messagesOf(env, key)
        expect(msgs.length, key).toBeGreaterThan(1)
        expect(Math.max(...msgs.map((m) => m.bytes)), key).toBeLessThanOrEqual(64 * 1024)
      }
      // the samples events: at most 1000 samples each, every sample in exactly one
      const sampleEvents = (await messagesOf(env, 'SAMPLES')).map((m) => m.event as { data: { samples: unknown[] } })
      expect(Math.max(...sampleEvents.map((e) => e.data.samples.length))).toBeLessThanOrEqual(MAX_SAMPLES_PER_EVENT)
      expect(sampleEvents.reduce((n, e) => n + e.data.samples.length, 0)).toBe(3000)
      const insightRows = (await messagesOf(env, 'INSIGHTS')).reduce((n, m) => n + (m.event as { data: InsightBatch }).data.rows.length, 0)
      expect(insightRows).toBeGreaterThan(0)
      expect(await post(p, 'ana', body)).toMatchObject({ status: 200, body: { duplicate: true } })
    } finally {
      await p.stop()
      await env.cleanup()
      await server.close()
    }
  })
})
