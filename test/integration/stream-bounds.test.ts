import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { STREAM_KEYS, streamName, subjects } from '../../streams/subjects.ts'
import { applyTopology, erasingStream } from '../../streams/topology.ts'
import { testEnv, type TestEnv } from '../helpers/env.ts'

// docs/architecture.md §6: every stream has a size bound from config beside its age bound, and a
// full stream refuses what comes next (the publisher is told) rather than dropping the oldest in silence.

const MIB = 1024 * 1024
let env: TestEnv

beforeAll(async () => {
  env = await testEnv({
    HPH_INGEST_MAX_BYTES: String(3 * MIB),
    HPH_SAMPLES_MAX_BYTES: String(4 * MIB),
    HPH_CHANGES_MAX_BYTES: String(2 * MIB),
    HPH_INSIGHTS_MAX_BYTES: String(5 * MIB),
    HPH_DLQ_MAX_BYTES: String(6 * MIB),
    HPH_AUDIT_MAX_BYTES: String(MIB),
    HPH_ERASING_MAX_BYTES: String(MIB),
  })
  await applyTopology(env.nats.jsm, env.config)
})
afterAll(async () => {
  await env?.cleanup()
})

describe('stream bounds', () => {
  it('gives every stream the max_bytes of its setting', async () => {
    const want = { INGEST: 3, SAMPLES: 4, CHANGES: 2, INSIGHTS: 5, DLQ: 6, AUDIT: 1 }
    for (const key of STREAM_KEYS) {
      const info = await env.nats.jsm.streams.info(streamName(env.config.HPH_PREFIX, key))
      expect(info.config.max_bytes, key).toBe(want[key] * MIB)
      expect(info.config.discard, key).toBe('new')
    }
    expect((await env.nats.jsm.streams.info(erasingStream(env.config.HPH_PREFIX))).config.max_bytes).toBe(MIB)
  })

  it('refuses a message once HPH_AUDIT is full, and keeps the oldest', async () => {
    const stream = streamName(env.config.HPH_PREFIX, 'AUDIT')
    const body = 'x'.repeat(16 * 1024)
    let refused: Error | undefined
    for (let i = 0; i < 200 && !refused; i++) {
      await env.nats.js.publish(subjects.audit(env.config.HPH_PREFIX, 'denied', '_'), body).catch((err: Error) => (refused = err))
    }
    expect(refused?.message).toMatch(/maximum bytes/i)
    const { state } = await env.nats.jsm.streams.info(stream)
    expect(state.first_seq).toBe(1)
    expect(state.bytes).toBeLessThanOrEqual(MIB)
  })
})
