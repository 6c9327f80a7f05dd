import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type pg from 'pg'
import type { Kysely } from 'kysely'
import { demoBatches } from '../../cli/demo-data.ts'
import { prepare } from '../../pipeline/start.ts'
import { normalizeBatch, parseBatchEnvelope } from '../../processors/normalize/healthkit.ts'
import { sampleEventsOf } from '../../processors/normalize/stage.ts'
import { recomputeThread } from '../../processors/insights/recompute-thread.ts'
import { recomputeUser } from '../../processors/insights/stage.ts'
import { writeSamples } from '../../projections/samples/writer.ts'
import { closeDb, createDb, type Database } from '../../schema/db.ts'
import { TransientError } from '../../errors.ts'
import type { SampleBatch } from '../../streams/schemas.ts'
import { testEnv, type TestEnv } from '../helpers/env.ts'

// docs/architecture.md §7 (insights-engine): a user recomputed on the engine's thread of its own reads and computes
// exactly what the stage's thread would, fails with the database's own error, and outlives a crash of the thread.

let env: TestEnv
let db: Kysely<Database>
let pool: pg.Pool
const DAYS = ['2026-01-12', '2026-01-13', '2026-01-25']

beforeAll(async () => {
  env = await testEnv()
  ;({ db, pool } = createDb(env.config, { max: 4 }))
  await prepare(env.config, env.log, env.nats, db)
  const now = new Date('2026-03-01T00:00:00Z')
  for (const userId of ['ana', 'ben']) {
    const samples = demoBatches({ userId, nights: 30, firstNight: '2026-01-01', seed: userId.length, ring: userId === 'ana', batchSize: 100_000 }).flatMap(
      (b) => normalizeBatch(parseBatchEnvelope(b, { maxSamples: 100_000 }), { userId, ingestId: `ingest-${userId}`, now }).samples,
    )
    const events = sampleEventsOf(env.config.HPH_PREFIX, { userId, ingestId: `ingest-${userId}`, receivedAt: now.toISOString() }, samples, 1 << 20)
    await writeSamples(
      { db, pool, prefix: env.config.HPH_PREFIX, schema: env.config.HPH_DB_SCHEMA },
      events.map((o, i) => ({ event: o.event as never, data: o.event.data as SampleBatch, subject: o.subject, seq: i + 1, deliveries: 1, traceparent: undefined })),
    )
  }
}, 60_000)

afterAll(async () => {
  await closeDb(db, pool)
  await env.cleanup()
})

describe('the recompute thread', () => {
  it('gives what recomputeUser gives on the stage’s own thread, for every user, at once', async () => {
    const thread = recomputeThread({ config: env.config, connections: 2 }, env.log)
    try {
      const users = ['ana', 'ben', 'ana', 'nobody']
      const onThread = await Promise.all(users.map((u) => thread.recompute(u, DAYS)))
      const here = await Promise.all(users.map((u) => recomputeUser({ pool, schema: env.config.HPH_DB_SCHEMA }, u, DAYS)))
      expect(onThread).toEqual(here)
      expect(onThread[0]!.rows.sleepDaily.length).toBeGreaterThan(20)
      expect(onThread[3]!.dataCount).toBe(0)
    } finally {
      await thread.close()
    }
    await expect(thread.recompute('ana', DAYS)).rejects.toThrow(/closed/)
  })

  it("fails with the database's error, its code kept (the consumer's retry decides by it)", async () => {
    const thread = recomputeThread({ config: { ...env.config, HPH_DB_SCHEMA: 'no_such_schema' }, connections: 1 }, env.log)
    try {
      const err = (await thread.recompute('ana', DAYS).catch((e: unknown) => e)) as Error & { code?: string }
      expect(err).toBeInstanceOf(Error)
      expect(err.code).toBe('42P01') // undefined_table: not transient, so not retried forever
      expect(err.message).toMatch(/does not exist/)
    } finally {
      await thread.close()
    }
  })

  it('fails what it had in hand as transient when the thread dies, and the next recompute starts a new one', async () => {
    const thread = recomputeThread({ config: env.config, connections: 2 }, env.log)
    try {
      const inHand = [thread.recompute('ana', DAYS), thread.recompute('ben', DAYS)].map((p) => p.catch((e: unknown) => e))
      await thread.terminate()
      for (const outcome of await Promise.all(inHand)) expect(outcome).toBeInstanceOf(TransientError)
      const again = await thread.recompute('ana', DAYS)
      expect(again).toEqual(await recomputeUser({ pool, schema: env.config.HPH_DB_SCHEMA }, 'ana', DAYS))
    } finally {
      await thread.close()
    }
  })
})
