import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { prepare } from '../../pipeline/start.ts'
import { samplesWriter } from '../../projections/samples/writer.ts'
import { createDb } from '../../schema/db.ts'
import { connectNats } from '../../streams/connect.ts'
import { startConsumer } from '../../streams/consumer.ts'
import { eventually, testEnv, type TestEnv } from '../helpers/env.ts'
import { startTcpProxy, throughProxy } from '../helpers/proxy.ts'
import { canonicalSamples, fillSamples } from '../helpers/samples.ts'

// A stage that hears nothing from the server for longer than two of its pull request's idle heartbeats, while the
// server is delivering to it (its event loop busy, its connection behind another stage's large messages; made here
// by a proxy that holds every byte for 2 s). nats.js ends such a fetch and drops its subscription, so what the
// server had sent meanwhile arrives for nobody and waits out the ack wait, 30 s here. streams/consumer.ts switches
// that monitor off and ends a request only after PULL_SILENT_MS (3 s) of silence, so the samples land at once.

let env: TestEnv

beforeAll(async () => {
  env = await testEnv({ HPH_ACK_WAIT_S: '30' })
})
afterAll(async () => {
  await env?.cleanup()
})

describe('a pull request the server goes quiet on for two heartbeats', () => {
  it('keeps what the server delivered meanwhile: nothing waits for the ack wait', async () => {
    const { db, pool } = createDb(env.config)
    await prepare(env.config, env.log, env.nats, db)
    const server = env.config.NATS_URL.split(',')[0]!
    const url = new URL(server)
    const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 4222) })
    const nats = await connectNats({ NATS_URL: throughProxy(server, proxy) }, 'test:quiet')
    const writer = samplesWriter({ db, pool, nats, prefix: env.config.HPH_PREFIX, schema: env.config.HPH_DB_SCHEMA })
    // a request open for 10 s, heartbeated every 0.5 s: the silence falls well inside it
    const c = await startConsumer(writer, {
      nats,
      prefix: env.config.HPH_PREFIX,
      log: env.log,
      batchSize: 1000,
      pullMaxBytes: 8 * 1024 * 1024,
      maxDeliver: 3,
      shutdownTimeoutMs: 10_000,
      ackWaitS: env.config.HPH_ACK_WAIT_S,
      pullExpiresMs: 10_000,
    })
    const count = async () => (await sql<{ n: number }>`select count(*)::int as n from samples`.execute(db)).rows[0]?.n ?? 0
    try {
      // the stage's request is open, and idle
      await new Promise((r) => setTimeout(r, 1_500))
      proxy.hang()
      const hungAt = Date.now()
      // published on the test's own connection: the server delivers them on the open request, into the held bytes
      const samples = canonicalSamples(2, 3, '2026-07-01')
      await fillSamples(env.nats, env.config.HPH_PREFIX, samples)
      // past two heartbeats (nats.js gives up after two of its 0.5 s ticks without a word), short of PULL_SILENT_MS
      await new Promise((r) => setTimeout(r, Math.max(0, hungAt + 2_000 - Date.now())))
      expect(await count()).toBe(0)
      proxy.restore()
      const t0 = Date.now()
      await eventually(async () => (await count()) === samples.length, 60_000, 'the samples')
      // a delivery that reached a dropped subscription comes back only after the 30 s ack wait
      expect(Date.now() - t0).toBeLessThan(10_000)
    } finally {
      await c.stop()
      await nats.nc.close()
      await proxy.close()
      await db.destroy()
    }
  })
})
