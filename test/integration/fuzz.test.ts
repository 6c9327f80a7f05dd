import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startPipeline, type Pipeline } from '../../pipeline/start.ts'
import { listDlq } from '../../cli/dlq.ts'
import { streamName } from '../../streams/subjects.ts'
import { CONSUMERS } from '../../streams/topology.ts'
import { bodyText } from '../helpers/hostile.ts'
import { eventually, testEnv, type TestEnv } from '../helpers/env.ts'

// docs/api.md §9 and docs/architecture.md §9.6: 10,000 adversarial requests at the API (the real NATS behind it,
// the normalizer running) → no 5xx, every refusal in the error body of docs/api.md §1, no stage crashed or stuck.

const ADMIN = 'fuzz-admin'
let env: TestEnv
let p: Pipeline

beforeAll(async () => {
  env = await testEnv({ HPH_API_KEYS: `${ADMIN}:admin`, HPH_RATE_LIMIT_PER_IP: '1000000', HPH_RATE_LIMIT_PER_TOKEN: '1000000', HPH_MAX_BODY_BYTES: String(256 * 1024) })
  p = await startPipeline(env.config, env.log, { stages: ['normalize'], api: true, prepare: true })
})
afterAll(async () => {
  await p?.stop()
  await env?.cleanup()
})

const userIdArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('ana', 'bo', 'fuzz_user-1') },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 0, maxLength: 70 }) },
  { weight: 1, arbitrary: fc.constantFrom('a'.repeat(65), '..', '*', '>', 'a.b', 'ü', '🙂', '__proto__', 'constructor', '%00', ' ana', 'ana\n') },
)
const contentTypeArb = fc.oneof(
  { weight: 8, arbitrary: fc.constant('application/json') },
  {
    weight: 1,
    arbitrary: fc.constantFrom('application/json; charset=utf-8', 'text/plain', 'application/xml', 'application/x-www-form-urlencoded', 'application/json; charset=utf-16', ''),
  },
)

interface ErrorBody {
  error: string
  message: string
  details: unknown[]
}

describe('the API under adversarial requests', () => {
  it('answers 10,000 generated bodies without a 5xx, each refusal with the error body', async () => {
    const statuses = new Map<number, number>()
    await fc.assert(
      fc.asyncProperty(userIdArb, contentTypeArb, bodyText, async (userId, contentType, body) => {
        const res = await p.api!.inject({
          method: 'POST',
          url: `/v1/users/${encodeURIComponent(userId)}/samples`,
          headers: { authorization: `Bearer ${ADMIN}`, ...(contentType ? { 'content-type': contentType } : {}) },
          payload: body,
        })
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
        expect(res.statusCode, `${res.statusCode} ${res.body.slice(0, 300)}`).toBeLessThan(500)
        if (res.statusCode >= 400) {
          const e = res.json() as ErrorBody
          expect(typeof e.error).toBe('string')
          expect(typeof e.message).toBe('string')
          expect(Array.isArray(e.details)).toBe(true)
        } else expect([200, 202]).toContain(res.statusCode)
      }),
      { numRuns: 10_000 },
    )
    // the run exercised both sides: stored batches and refusals
    expect((statuses.get(202) ?? 0) + (statuses.get(200) ?? 0)).toBeGreaterThan(500)
    expect(statuses.get(400) ?? 0).toBeGreaterThan(500)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('leaves the normalizer alive and caught up: everything stored was handled, nothing was poison', async () => {
    const stream = streamName(env.config.HPH_PREFIX, CONSUMERS.normalize.stream)
    await eventually(
      async () => {
        const c = await env.nats.jsm.consumers.info(stream, CONSUMERS.normalize.durable)
        return c.num_pending === 0 && c.num_ack_pending === 0
      },
      120_000,
      'normalize to catch up',
    )
    const letters = await listDlq(env.nats, env.config.HPH_PREFIX, 'normalize')
    expect(letters.filter((l) => l.kind === 'poison').map((l) => l.reason)).toEqual([])
    expect((await fetch(`${p.url}/healthz`)).status).toBe(200)
  })
})
