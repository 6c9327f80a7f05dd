import { Writable } from 'node:stream'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMetrics } from '../../api/metrics.ts'
import { buildApi } from '../../api/server.ts'
import { closeDb, createDb } from '../../schema/db.ts'
import { testEnv, type TestEnv } from '../helpers/env.ts'

// A person at a terminal (the demo) gets the api's request logs at debug; services keep them at info.

let env: TestEnv
beforeAll(async () => {
  env = await testEnv()
})
afterAll(async () => {
  await env?.cleanup()
})

async function requestLogLevels(requestLogs: 'info' | 'debug' | undefined, level: 'info' | 'debug'): Promise<Array<{ level: number; msg: string }>> {
  const lines: Array<{ level: number; msg: string }> = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as { level: number; msg: string })
      done()
    },
  })
  const { db, pool } = createDb(env.config, { max: 1 })
  const app = await buildApi({
    config: env.config,
    log: pino({ level }, sink),
    nats: env.nats,
    db,
    probes: [],
    metrics: createMetrics({ readJetStream: async () => ({ consumers: [], dlq: null, complete: true }), stages: [] }),
    ...(requestLogs ? { requestLogs } : {}),
  })
  try {
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200)
  } finally {
    await app.close()
    await closeDb(db, pool)
  }
  return lines.filter((l) => l.msg === 'incoming request' || l.msg === 'request completed')
}

describe('request logs', () => {
  it('are at info by default', async () => {
    expect((await requestLogLevels(undefined, 'info')).map((l) => [l.msg, l.level])).toEqual([
      ['incoming request', 30],
      ['request completed', 30],
    ])
  })

  it('are at debug for a terminal: gone at LOG_LEVEL=info, there at debug', async () => {
    expect(await requestLogLevels('debug', 'info')).toEqual([])
    expect((await requestLogLevels('debug', 'debug')).map((l) => [l.msg, l.level])).toEqual([
      ['incoming request', 20],
      ['request completed', 20],
    ])
  })
})
