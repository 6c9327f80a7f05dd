import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { STAGES, startPipeline, type Pipeline } from '../../pipeline/start.ts'
import { streamName } from '../../streams/subjects.ts'
import { eventually, testEnv, type TestEnv } from '../helpers/env.ts'
import type { IngestResult } from '../../ingest/raw-batch.ts'

const ADMIN = 'admin-key'
const ANA = 'ana-key'

let env: TestEnv
let p: Pipeline

beforeAll(async () => {
  env = await testEnv({ HPH_API_KEYS: `${ADMIN}:admin,${ANA}:user:ana`, HPH_MAX_BODY_BYTES: String(64 * 1024) })
  p = await startPipeline(env.config, env.log, { stages: STAGES, api: true, prepare: true })
})
afterAll(async () => {
  await p?.stop()
  await env?.cleanup()
})

function post(userId: string, body: unknown, opts: { token?: string | null; contentType?: string; raw?: string } = {}) {
  const token = opts.token === undefined ? ADMIN : opts.token
  return fetch(`${p.url}/v1/users/${encodeURIComponent(userId)}/samples`, {
    method: 'POST',
    headers: { 'content-type': opts.contentType ?? 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: opts.raw ?? JSON.stringify(body),
  })
}

/** A 202/200 answer (the raw-event path's result), or an error body. */
interface Answer extends IngestResult {
  error?: string
  message?: string
  details?: unknown[]
}
const json = async (r: Response | Promise<Response>) => (await (await r).json()) as Answer

const hrv = (uuid: string | undefined, value: number, start = '2026-03-01T02:14:00-08:00', end = '2026-03-01T02:15:00-08:00') => ({
  ...(uuid ? { uuid } : {}),
  type: 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN',
  value,
  unit: 'ms',
  startDate: start,
  endDate: end,
})

const rowsOf = async (userId: string) => (await sql<{ n: number }>`select count(*)::int as n from samples where user_id = ${userId}`.execute(p.db)).rows[0]?.n ?? 0

const ingestMessages = async () => (await env.nats.jsm.streams.info(streamName(env.config.HPH_PREFIX, 'INGEST'))).state.messages

describe('POST /v1/users/:userId/samples', () => {
  it('answers 202 with the event id and sequence, and the samples become rows', async () => {
    const res = await post('ana', { batchId: 'b-first', source: { name: 'Apple Watch' }, samples: [hrv('3a1f2b4c-0000-4000-8000-000000000001', 48.2), hrv(undefined, 51)] })
    expect(res.status).toBe(202)
    const body = await json(res)
    expect(body).toMatchObject({ stream: streamName(env.config.HPH_PREFIX, 'INGEST'), duplicate: false, accepted: 2, ignored: 0, rejected: [] })
    expect(body.seq).toBeGreaterThan(0)
    expect(body.eventId).toMatch(/^[0-9a-f-]{36}$/)
    await eventually(async () => (await rowsOf('ana')) === 2, 30_000, 'two rows for ana')
    const row = (
      await sql<{ sample_id: string; source_name: string; value: number; utc_offset_min: number }>`
      select sample_id, source_name, value, utc_offset_min from samples where external_id is not null and user_id = 'ana'`.execute(p.db)
    ).rows[0]
    expect(row).toEqual({ sample_id: '3a1f2b4c-0000-4000-8000-000000000001', source_name: 'Apple Watch', value: 48.2, utc_offset_min: -480 })
  })

  it('stores a batch posted twice once: the second answer is 200 duplicate with the same event id', async () => {
    const batch = { batchId: 'b-twice', samples: [hrv(undefined, 60, '2026-03-02T02:14:00-08:00', '2026-03-02T02:15:00-08:00')] }
    const before = await ingestMessages()
    const first = await json(post('bo', batch))
    const again = await post('bo', batch)
    expect(again.status).toBe(200)
    const second = await json(again)
    expect(second).toMatchObject({ eventId: first.eventId, seq: first.seq, duplicate: true })
    expect(await ingestMessages()).toBe(before + 1)
    // without a batchId the body hash is the key
    const noId = { samples: [hrv(undefined, 61, '2026-03-02T03:14:00-08:00', '2026-03-02T03:15:00-08:00')] }
    const a = await json(post('bo', noId))
    const b = await post('bo', noId)
    expect(b.status).toBe(200)
    expect((await json(b)).eventId).toBe(a.eventId)
    expect(await ingestMessages()).toBe(before + 2)
    await eventually(async () => (await rowsOf('bo')) === 2, 30_000, 'two rows for bo')
  })

  it('keeps one row for the same sample sent in two different batches', async () => {
    const s = hrv(undefined, 70, '2026-03-03T02:14:00-08:00', '2026-03-03T02:15:00-08:00')
    const sameInstantOtherSpelling = { ...s, startDate: '2026-03-03 10:14:00 +0000', endDate: '2026-03-03T10:15:00Z' }
    expect((await post('cy', { batchId: 'one', samples: [s] })).status).toBe(202)
    expect((await post('cy', { batchId: 'two', samples: [sameInstantOtherSpelling, hrv(undefined, 71)] })).status).toBe(202)
    await eventually(async () => (await rowsOf('cy')) === 2, 30_000, 'rows for cy')
    await new Promise((r) => setTimeout(r, 300))
    expect(await rowsOf('cy')).toBe(2)
  })

  it('lists rejected samples with index and reason, counts ignored ones, and stores the rest', async () => {
    const res = await post('dee', {
      samples: [
        hrv(undefined, 900),
        { type: 'HKQuantityTypeIdentifierStepCount', value: 10, unit: 'count', startDate: '2026-03-01T02:14:00Z', endDate: '2026-03-01T02:15:00Z' },
        hrv(undefined, 40, '2026-03-04T02:14:00-08:00', '2026-03-04T02:15:00-08:00'),
      ],
    })
    expect(res.status).toBe(202)
    const body = await json(res)
    expect(body.accepted).toBe(1)
    expect(body.ignored).toBe(1)
    expect(body.rejected).toEqual([{ index: 0, problem: expect.stringContaining('out of range') }])
    await eventually(async () => (await rowsOf('dee')) === 1, 30_000, 'one row for dee')
  })

  it('refuses what is not a batch with the error body of docs/api.md §1, storing nothing', async () => {
    const before = await ingestMessages()
    const cases: Array<[Promise<Response>, number, string]> = [
      [post('ana', null, { raw: '{"samples": [' }), 400, 'invalid_json'],
      [post('ana', { samples: [] }), 400, 'validation_failed'],
      [post('ana', { nope: 1 }), 400, 'validation_failed'],
      [post('not a user!', { samples: [hrv(undefined, 50)] }), 400, 'invalid_user_id'],
      [post('ana', null, { raw: JSON.stringify({ samples: [hrv(undefined, 50)], pad: 'x'.repeat(70 * 1024) }) }), 413, 'payload_too_large'],
      [post('ana', null, { raw: 'samples', contentType: 'text/plain' }), 415, 'unsupported_media_type'],
      [post('ana', { samples: [hrv(undefined, 50)] }, { token: null }), 401, 'unauthorized'],
      [post('ana', { samples: [hrv(undefined, 50)] }, { token: 'wrong' }), 401, 'unauthorized'],
      [post('bo', { samples: [hrv(undefined, 50)] }, { token: ANA }), 403, 'forbidden'],
      [post('ana', null, { raw: '{"__proto__": {"x": 1}, "samples": [1]}' }), 400, 'invalid_json'],
      // a content type and no body: no batch
      [post('ana', null, { raw: '' }), 400, 'validation_failed'],
    ]
    for (const [response, status, error] of cases) {
      const res = await response
      const body = await json(res)
      expect({ status: res.status, error: body.error }).toEqual({ status, error })
      expect(typeof body.message).toBe('string')
      expect(Array.isArray(body.details)).toBe(true)
    }
    expect(await ingestMessages()).toBe(before)
  })

  it('stores the body as sent, around which the raw event is written: a byte-order mark, white space, escapes and a number beyond a double all arrive as parsed', async () => {
    const text = `\ufeff {\n  "batchId" : "b-raw",\n  "source": {"name": "W\\u00e4tch \\"2\\""},\n  "samples": [ ${JSON.stringify(hrv(undefined, 45, '2026-03-06T02:14:00-08:00', '2026-03-06T02:15:00-08:00'))},\n ${JSON.stringify(hrv(undefined, 7777))} ]\n}\n`
    const res = await post('raw', null, { raw: text.replace('7777', '1e400') })
    expect(res.status).toBe(202)
    expect(await json(res)).toMatchObject({ accepted: 1, rejected: [{ index: 1, problem: expect.stringContaining('not a finite number') }] })
    await eventually(async () => (await rowsOf('raw')) === 1, 30_000, 'one row for raw')
    const row = (await sql<{ source_name: string; value: number }>`select source_name, value from samples where user_id = 'raw'`.execute(p.db)).rows[0]
    expect(row).toEqual({ source_name: 'Wätch "2"', value: 45 })
  })

  it('lets a user token post its own samples', async () => {
    expect((await post('ana', { samples: [hrv(undefined, 44, '2026-03-05T02:14:00-08:00', '2026-03-05T02:15:00-08:00')] }, { token: ANA })).status).toBe(202)
  })
})

describe('probes', () => {
  it('answers healthz and readyz', async () => {
    expect(await (await fetch(`${p.url}/healthz`)).json()).toEqual({ status: 'ok' })
    const ready = await fetch(`${p.url}/readyz`)
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({
      ready: true,
      checks: { nats: 'ok', postgres: 'ok', normalize: 'ok', 'samples-writer': 'ok', 'insights-engine': 'ok', 'insights-writer': 'ok' },
    })
  })
})
