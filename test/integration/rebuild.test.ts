import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { demoBatches, type DemoBatch } from '../../cli/demo-data.ts'
import { startPipeline, STAGES, waitForIdle, type Pipeline } from '../../pipeline/start.ts'
import { rebuildProjection, type RebuildOptions, type RebuildProgress } from '../../projections/rebuild.ts'
import { decodeBatch } from '../../streams/replay.ts'
import { SampleEvent, writeSamples } from '../../projections/samples/writer.ts'
import { createShadow } from '../../schema/shadow.ts'
import { encodeEnvelope } from '../../streams/envelope.ts'
import { canonicalSamples, legacySampleEvents, sampleEvents } from '../helpers/samples.ts'
import { INSIGHT_PROJECTION_TABLES } from '../../projections/insights/writer.ts'
import { streamName, streamSubjects } from '../../streams/subjects.ts'
import { decodeJson } from '../../streams/envelope.ts'
import { userMessages } from '../../privacy/messages.ts'
import { testEnv, type TestEnv } from '../helpers/env.ts'
import { referenceInsights, snapshotDifferences, snapshotInsights, snapshotTombstones } from '../helpers/insights.ts'
import { runHph } from '../helpers/processes.ts'

// docs/operating.md §4 and docs/architecture.md §9.3: a projection rebuilt from its stream into shadow tables equals the live one, and
// the swap never lets a reader see a missing row, while the live pipeline goes on writing.

let env: TestEnv
let p: Pipeline
beforeAll(async () => {
  env = await testEnv()
  p = await startPipeline(env.config, env.log, { stages: STAGES, api: true, prepare: true })
  for (const [i, userId] of ['ana', 'ben', 'cyd'].entries())
    await post(userId, demoBatches({ userId, nights: 30, firstNight: '2026-01-01', seed: i + 1, ring: i === 0, batchSize: 200 }))
  await waitForIdle(env.nats, env.config.HPH_PREFIX, { timeoutMs: 120_000 })
})
afterAll(async () => {
  await p?.stop()
  await env?.cleanup()
})

async function post(userId: string, batches: DemoBatch[]): Promise<void> {
  for (const b of batches) {
    const res = await fetch(`${p.url}/v1/users/${userId}/samples`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) })
    if (res.status !== 200 && res.status !== 202) throw new Error(`POST ${userId} ${b.batchId}: ${res.status} ${await res.text()}`)
  }
}

const samplesRows = async () =>
  (
    await sql<Record<string, unknown>>`select sample_id, user_id, metric, start_ts, end_ts, utc_offset_min, value, stage, source_name, source_bundle,
      device, external_id, ingest_id, stream_seq from samples order by sample_id, start_ts`.execute(p.db)
  ).rows

/** The samples HPH_SAMPLES holds, counted inside its events. */
async function samplesInStream(): Promise<number> {
  let n = 0
  for await (const m of userMessages(env.nats, streamName(env.config.HPH_PREFIX, 'SAMPLES'), streamSubjects(env.config.HPH_PREFIX, 'SAMPLES'), { withData: true })) {
    n += SampleEvent.parse(decodeJson(m.data as Uint8Array)).data.samples.length
  }
  return n
}

const rebuildOpts = (projection: RebuildOptions['projection'], extra: Partial<RebuildOptions> = {}): RebuildOptions => ({
  nats: env.nats,
  db: p.db,
  pool: p.pool,
  prefix: env.config.HPH_PREFIX,
  schema: env.config.HPH_DB_SCHEMA,
  log: env.log,
  projection,
  ...extra,
})

interface ReaderLog {
  queries: number
  errors: string[]
  /** counts below what the reader had already seen, or below the floor: a missing row */
  drops: string[]
  maxMs: number
}

/**
 * Readers on their own connections (as an analyst would be), querying every table of the projection in a
 * loop until stopped: no error, and no count ever below the floor or below what that reader saw before.
 */
function readers(tables: readonly string[], floor: Record<string, number>, n = 3): { stop(): Promise<ReaderLog> } {
  const log: ReaderLog = { queries: 0, errors: [], drops: [], maxMs: 0 }
  let running = true
  const loops = Array.from({ length: n }, async () => {
    const client = new pg.Client({ connectionString: env.config.DATABASE_URL, options: `-c search_path=${env.config.HPH_DB_SCHEMA}` })
    await client.connect()
    const seen: Record<string, number> = { ...floor }
    try {
      while (running) {
        for (const t of tables) {
          const t0 = performance.now()
          try {
            const n = Number((await client.query<{ n: string }>(`select count(*) as n from ${t}`)).rows[0]?.n)
            if (n < (seen[t] ?? 0)) log.drops.push(`${t}: ${n} after ${seen[t]}`)
            seen[t] = Math.max(seen[t] ?? 0, n)
          } catch (err) {
            log.errors.push(`${t}: ${(err as Error).message}`)
          }
          log.maxMs = Math.max(log.maxMs, performance.now() - t0)
          log.queries++
        }
      }
    } finally {
      await client.end()
    }
  })
  let stopped: Promise<ReaderLog> | undefined
  return {
    stop() {
      running = false
      stopped ??= Promise.all(loops).then(() => log)
      return stopped
    },
  }
}

const counts = async (tables: readonly string[]) =>
  Object.fromEntries(
    await Promise.all(tables.map(async (t) => [t, Number((await sql<{ n: string }>`select count(*) as n from ${sql.table(t)}`.execute(p.db)).rows[0]?.n)] as const)),
  )

describe('hph rebuild samples', () => {
  it('rebuilds samples from HPH_SAMPLES while the live pipeline writes and readers read; the swap loses no row', async () => {
    // a sample sent again after JetStream's duplicate window is in the stream twice: the first one stays
    const stream = streamName(env.config.HPH_PREFIX, 'SAMPLES')
    const original = await env.nats.jsm.streams.getMessage(stream, { seq: 5 })
    if (!original) throw new Error(`${stream} has no message 5`)
    const again = original.json<{ id: string; data: { ingestId: string } }>()
    again.data.ingestId = 'resent-a-month-later'
    await env.nats.js.publish(original.subject, JSON.stringify(again), { msgID: `resent:${again.id}` })
    await waitForIdle(env.nats, env.config.HPH_PREFIX, { timeoutMs: 60_000 })
    const before = await samplesRows()
    expect(before.filter((r) => r.ingest_id === 'resent-a-month-later')).toEqual([])
    // an analyst's view on the table, with a grant and a comment: it survives the swap
    await sql`create view v_samples_per_user as select user_id, count(*)::int as n from samples group by user_id`.execute(p.db)
    await sql`grant select on v_samples_per_user to ${sql.id(env.config.HPH_ANALYST_ROLE)}`.execute(p.db)
    await sql`comment on view v_samples_per_user is 'samples per user'`.execute(p.db)
    expect(before.length).toBeGreaterThan(1000)
    const watch = readers(['samples'], { samples: before.length })

    // new data arrives and is written by the live writer while the rebuild is under way: during the bulk replay more than
    // a pull (the rebuild catches up before its swap), during the catch-up less than one (the swap applies it under its lock)
    const phases = new Set<RebuildProgress['phase']>()
    const onProgress = async (g: RebuildProgress) => {
      if (phases.has(g.phase)) return
      phases.add(g.phase)
      if (g.phase === 'replay') await post('dee', demoBatches({ userId: 'dee', nights: 20, firstNight: '2026-02-01', seed: 9, batchSize: 100 }))
      else if (g.phase === 'catch-up') await post('gus', demoBatches({ userId: 'gus', nights: 1, firstNight: '2026-02-01', seed: 15, batchSize: 20 }).slice(0, 1))
      else return
      await waitForIdle(env.nats, env.config.HPH_PREFIX, { timeoutMs: 60_000 })
    }
    // and a client goes on posting through the whole rebuild, swap included
    let rebuilding = true
    const steady = (async () => {
      for (const b of demoBatches({ userId: 'fay', nights: 40, firstNight: '2026-01-01', seed: 13, batchSize: 20 })) {
        if (!rebuilding) break
        await post('fay', [b])
      }
    })()
    const result = await rebuildProjection(rebuildOpts('samples', { batchSize: 100, onProgress })).finally(() => {
      rebuilding = false
      return Promise.all([watch.stop(), steady])
    })
    const seen = await watch.stop()

    expect(seen.errors).toEqual([])
    expect(seen.drops).toEqual([])
    expect(seen.queries).toBeGreaterThan(10)
    expect([...phases]).toEqual(['replay', 'catch-up', 'swap'])
    expect(result.messages).toBe(result.throughSeq - result.fromSeq + 1)

    // every sample of the stream is a row exactly once, and the rows that were there are unchanged
    const after = await samplesRows()
    // the resent event's samples are in the stream twice, in the table once
    const resent = SampleEvent.parse(again).data.samples.length
    expect(after.length).toBe((await samplesInStream()) - resent)
    expect(after.filter((r) => r.ingest_id === 'resent-a-month-later')).toEqual([])
    const byId = new Map(after.map((r) => [`${String(r.sample_id)}|${(r.start_ts as Date).toISOString()}`, r]))
    for (const r of before) expect(byId.get(`${String(r.sample_id)}|${(r.start_ts as Date).toISOString()}`)).toEqual(r)
    expect(after.filter((r) => r.user_id === 'dee').length).toBeGreaterThan(100)
    expect(after.filter((r) => r.user_id === 'fay').length).toBeGreaterThan(20)
    expect(after.filter((r) => r.user_id === 'gus').length).toBeGreaterThan(10)

    // the new table is the migrated one in every name: partitions, key, index, grants; the shadow is gone
    const names = await sql<{ relname: string }>`select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = ${env.config.HPH_DB_SCHEMA} and c.relname like 'samples%' and c.relkind in ('p', 'r', 'I') order by 1`.execute(p.db)
    const rel = names.rows.map((r) => r.relname)
    expect(rel).toContain('samples_pkey')
    expect(rel).toContain('samples_user_start_idx')
    expect(rel.filter((r) => r.includes('__rebuild'))).toEqual([])
    expect(rel.filter((r) => /^samples_p\d{6}$/.test(r)).length).toBeGreaterThanOrEqual(2)
    const grant = await sql<{ ok: boolean }>`select has_table_privilege(${env.config.HPH_ANALYST_ROLE}, ${`${env.config.HPH_DB_SCHEMA}.samples`}, 'select') as ok`.execute(p.db)
    expect(grant.rows[0]?.ok).toBe(true)
    const perUser = await sql<{ user_id: string; n: number }>`select * from v_samples_per_user order by 1`.execute(p.db)
    expect(perUser.rows.find((r) => r.user_id === 'dee')?.n).toBe(after.filter((r) => r.user_id === 'dee').length)
    const view = await sql<{
      ok: boolean
      comment: string
    }>`select has_table_privilege(${env.config.HPH_ANALYST_ROLE}, ${`${env.config.HPH_DB_SCHEMA}.v_samples_per_user`}, 'select') as ok,
      obj_description(${`${env.config.HPH_DB_SCHEMA}.v_samples_per_user`}::regclass, 'pg_class') as comment`.execute(p.db)
    expect(view.rows[0]).toEqual({ ok: true, comment: 'samples per user' })

    // and the live writer goes on into the new table
    await post('eve', demoBatches({ userId: 'eve', nights: 3, firstNight: '2026-03-01', seed: 11, batchSize: 100 }))
    await waitForIdle(env.nats, env.config.HPH_PREFIX, { timeoutMs: 60_000 })
    expect((await counts(['samples'])).samples).toBe((await samplesInStream()) - resent)
  })

  it('`hph replay samples --into samples --from-seq N` keeps the rows before N and re-applies the rest; a wrong stream is refused', async () => {
    const before = await samplesRows()
    const last = (await env.nats.jsm.streams.info(streamName(env.config.HPH_PREFIX, 'SAMPLES'))).state.last_seq
    const from = Math.floor(last / 2)
    const r = await hph(['replay', 'samples', '--into', 'samples', '--from-seq', String(from), '--json'])
    expect(r.code, r.out).toBe(0)
    const result = JSON.parse(r.out.slice(r.out.indexOf('{'))) as { fromSeq: number; throughSeq: number; messages: number }
    expect(result.fromSeq).toBe(from)
    expect(result.throughSeq).toBe(last)
    expect(result.messages).toBe(last - from + 1)
    expect(await samplesRows()).toEqual(before)

    const wrong = await hph(['replay', 'samples', '--into', 'insights'])
    expect(wrong.code).toBe(2)
    expect(wrong.out).toContain('--recompute')
    expect((await hph(['rebuild', 'nothing'])).code).toBe(2)
  })
})

describe('a pull of a samples rebuild', () => {
  it("of v2 and v1 events alike writes every sample with its event's sequence; an event that breaks the schema is skipped, the rest written", async () => {
    const samples = canonicalSamples(2, 3, '2026-04-01')
    // half of the samples as the batch events of today, the other half as the one-sample events of before
    const events = [...sampleEvents(env.config.HPH_PREFIX, samples.slice(0, 50)), ...legacySampleEvents(env.config.HPH_PREFIX, samples.slice(50))]
    const raw = events.map((e, i) => ({ data: encodeEnvelope(e.event), seq: 100_000 + i, subject: e.subject }))
    const table = 'samples__rebuild'
    const client = await p.pool.connect()
    try {
      await createShadow(client, env.config.HPH_DB_SCHEMA, 'samples')
    } finally {
      client.release()
    }
    const rowsOf = async () =>
      (
        await p.pool.query<{ sample_id: string; value: number | null; stage: string | null; start_ts: Date; ingest_id: string; stream_seq: string }>(
          `select sample_id, value, stage, start_ts, ingest_id, stream_seq from ${table} order by sample_id, start_ts`,
        )
      ).rows
    const deps = { db: p.db, pool: p.pool, prefix: env.config.HPH_PREFIX, schema: env.config.HPH_DB_SCHEMA }
    try {
      // April has no partition yet: the writer creates it
      const decoded = decodeBatch(SampleEvent, raw)
      expect(decoded.skipped).toBe(0)
      await writeSamples(deps, decoded.items, table)
      const rows = await rowsOf()
      expect(rows.length).toBe(samples.length)
      const seqOf = new Map(decoded.items.flatMap((d) => d.data.samples.map((x) => [x.id, d.seq] as const)))
      const byId = new Map(samples.map((x) => [x.id, x.sample]))
      for (const r of rows) {
        const x = byId.get(r.sample_id)!
        expect([r.value, r.stage, r.start_ts.toISOString(), r.ingest_id, Number(r.stream_seq)]).toEqual([
          x.value ?? null,
          x.stage ?? null,
          x.start,
          x.ingestId,
          seqOf.get(r.sample_id),
        ])
      }

      // each rule of the schema: the event that breaks it is skipped (it reached the DLQ when first delivered)
      type Batch = { data: { metric: string; samples: Array<Record<string, unknown>> } & Record<string, unknown> }
      const first = events[0]!.event as unknown as Batch
      const sleep = events.find((e) => (e.event.data as { metric: string }).metric === 'sleep_stage')!.event as unknown as Batch
      const legacy = events.at(-1)!.event as { data: Record<string, unknown> }
      const withSample = (e: Batch, change: Record<string, unknown>) => ({ ...e, data: { ...e.data, samples: [{ ...e.data.samples[0], ...change }, ...e.data.samples.slice(1)] } })
      const broken = [
        { ...first, type: 'hph.other.v1' },
        { ...first, data: { ...first.data, metric: 'steps' } },
        { ...first, data: { ...first.data, userId: 'a b' } },
        withSample(first, { utcOffsetMinutes: 900 }),
        withSample(first, { value: 'high' }),
        withSample(first, { id: 'not-a-uuid' }),
        withSample(sleep, { value: 1 }),
        withSample(sleep, { stage: 'dozing' }),
        withSample(first, { start: 'yesterday' }),
        { ...legacy, data: { ...legacy.data, utcOffsetMinutes: 900 } },
        { ...legacy, data: { ...legacy.data, start: 'yesterday' } },
      ]
      for (const b of broken) {
        const pull = decodeBatch(SampleEvent, [...raw.slice(0, 5), { data: Buffer.from(JSON.stringify(b)), seq: 1, subject: 'x' }])
        expect(pull.skipped, JSON.stringify(b.data).slice(0, 200)).toBe(1)
        expect(pull.items.map((d) => d.seq)).toEqual(raw.slice(0, 5).map((m) => m.seq))
      }
    } finally {
      await p.pool.query(`drop table if exists ${table} cascade`)
    }
  })
})

describe('hph rebuild insights', () => {
  it('rebuilds every insight table from HPH_INSIGHTS with identical rows, readers never seeing one missing', async () => {
    const before = await snapshotInsights(p.db, { versions: true })
    const tombstones = await snapshotTombstones(p.db)
    const floor = await counts(INSIGHT_PROJECTION_TABLES)
    expect(floor.readiness_daily).toBeGreaterThan(50)
    await sql`create view v_today as select r.user_id, r.day, r.score, b.hrv_baseline_sdnn from readiness_daily r join user_baselines b using (user_id)`.execute(p.db)
    const today = (await sql`select * from v_today order by user_id, day`.execute(p.db)).rows
    const watch = readers([...INSIGHT_PROJECTION_TABLES, 'v_today'], { ...floor, v_today: today.length }, 2)
    // a second rebuild of the same projection while the first runs is refused, and does not disturb it
    let second: Promise<unknown> | undefined
    const result = await rebuildProjection(
      rebuildOpts('insights', {
        batchSize: 250,
        onProgress: async () => {
          second ??= rebuildProjection(rebuildOpts('insights')).then(
            () => 'ran',
            (err: Error) => err.message,
          )
          await second
        },
      }),
    ).finally(() => watch.stop())
    expect(await second).toBe('another rebuild of insights, or an erase, is running on this database')
    const seen = await watch.stop()
    expect((await sql`select * from v_today order by user_id, day`.execute(p.db)).rows).toEqual(today)

    expect(seen.errors).toEqual([])
    expect(seen.drops).toEqual([])
    expect(result.messages).toBe((await env.nats.jsm.streams.info(streamName(env.config.HPH_PREFIX, 'INSIGHTS'))).state.messages)
    // versions included: each row was written from the same event as the live one
    expect(snapshotDifferences(await snapshotInsights(p.db, { versions: true }), before, 0)).toEqual([])
    expect(await snapshotTombstones(p.db)).toEqual(tombstones)
    const checkpoint = await sql<{ last_seq: number }>`select last_seq from projection_checkpoints where projection = 'insights'`.execute(p.db)
    expect(checkpoint.rows[0]?.last_seq).toBe(result.throughSeq)
  })

  it('`hph rebuild insights --recompute` re-derives every row from samples: stale numbers are replaced, rows no longer produced are removed', async () => {
    // rows as an older algorithm might have left them: other numbers, and a day the current one does not produce
    await sql`update readiness_daily set score = 0, label = 'stale' where user_id = 'ana'`.execute(p.db)
    await sql`update hrv_daily set value_ms = value_ms * 2 where user_id = 'ben'`.execute(p.db)
    await sql`update user_baselines set hrv_baseline_sdnn = -1`.execute(p.db)
    await sql`insert into readiness_daily (user_id, day, score, label, p_high, p_medium, p_low, sleep_state, hrv_state, data_version)
      values ('cyd', '2025-06-01', 50, 'medium', 0.3, 0.4, 0.3, 'good', 'good', 1)`.execute(p.db)
    const reference = await referenceInsights(p.db)
    expect(snapshotDifferences(await snapshotInsights(p.db, { versions: false }), reference, 1e-9)).not.toEqual([])

    const r = await hph(['rebuild', 'insights', '--recompute', '--json'])
    expect(r.code, r.out).toBe(0)
    const result = JSON.parse(r.out.slice(r.out.indexOf('{'))) as { users: number; tombstones: number; applied: boolean }
    expect(result.users).toBeGreaterThanOrEqual(5)
    expect(result.tombstones).toBeGreaterThanOrEqual(1)
    expect(result.applied).toBe(true)
    await waitForIdle(env.nats, env.config.HPH_PREFIX, { timeoutMs: 60_000 })
    expect(snapshotDifferences(await snapshotInsights(p.db, { versions: false }), reference, 1e-9)).toEqual([])
    const stray = await sql<{ n: number }>`select count(*)::int as n from readiness_daily where user_id = 'cyd' and day = '2025-06-01'`.execute(p.db)
    expect(stray.rows[0]?.n).toBe(0)
    const full = await sql<{ n: number }>`select count(*)::int as n from user_baselines where last_full_update is null`.execute(p.db)
    expect(full.rows[0]?.n).toBe(0)

    expect((await hph(['rebuild', 'samples', '--recompute'])).code).toBe(2)
  })
})

const hph = (args: string[]) => runHph(args, { DATABASE_URL: env.config.DATABASE_URL, HPH_PREFIX: env.config.HPH_PREFIX })
