import type { JetStreamClient } from '@nats-io/jetstream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { prepare } from '../../pipeline/start.ts'
import { createDb } from '../../schema/db.ts'
import { publishAll } from '../../streams/publish.ts'
import { streamName } from '../../streams/subjects.ts'
import { testEnv, type TestEnv } from '../helpers/env.ts'
import { canonicalSamples, legacySampleEvents } from '../helpers/samples.ts'

let env: TestEnv

beforeAll(async () => {
  env = await testEnv()
  const { db } = createDb(env.config, { max: 1 })
  await prepare(env.config, env.log, env.nats, db)
  await db.destroy()
})
afterAll(async () => {
  await env?.cleanup()
})

describe('publishAll', () => {
  it('keeps at most its window of publishes unacknowledged, and stores every event once', async () => {
    const events = legacySampleEvents(env.config.HPH_PREFIX, canonicalSamples(3, 100))
    expect(events.length).toBeGreaterThan(4000)
    let inFlight = 0
    let most = 0
    // the real client, counted: every publish goes to the real NATS
    const counted = new Proxy(env.nats.js, {
      get(target, prop, receiver) {
        if (prop !== 'publish') return Reflect.get(target, prop, receiver) as unknown
        return async (...args: Parameters<JetStreamClient['publish']>) => {
          most = Math.max(most, ++inFlight)
          try {
            return await target.publish(...args)
          } finally {
            inFlight--
          }
        }
      },
    })
    const acks = await publishAll(counted, events, 64)
    expect(most).toBe(64)
    expect(acks.map((a) => a.seq).sort((a, b) => a - b)).toEqual(events.map((_, i) => i + 1))
    const info = await env.nats.jsm.streams.info(streamName(env.config.HPH_PREFIX, 'SAMPLES'))
    expect(info.state.messages).toBe(events.length)
    // again: the ids make every one a duplicate, nothing is stored twice
    expect((await publishAll(env.nats.js, events)).every((a) => a.duplicate)).toBe(true)
    expect((await env.nats.jsm.streams.info(streamName(env.config.HPH_PREFIX, 'SAMPLES'))).state.messages).toBe(events.length)
  })
})
