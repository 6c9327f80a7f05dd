import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DlqEntry } from '../../cli/dlq.ts'
import { startPipeline, waitForIdle, type Pipeline } from '../../pipeline/start.ts'
import { streamName } from '../../streams/subjects.ts'
import { testEnv, type TestEnv } from '../helpers/env.ts'
import { runHph } from '../helpers/processes.ts'

// docs/operating.md §5: a poison message → HPH_DLQ → the stage is fixed → `hph dlq redrive` → processed once.

let env: TestEnv
const running: Pipeline[] = []
beforeAll(async () => {
  env = await testEnv()
})
afterAll(async () => {
  for (const p of running) await p.stop()
  await env?.cleanup()
})

const hph = (args: string[]) => runHph(args, { DATABASE_URL: env.config.DATABASE_URL, HPH_PREFIX: env.config.HPH_PREFIX })

const rows = async (p: Pipeline) => (await sql<{ n: number }>`select count(*)::int as n from samples`.execute(p.db)).rows[0]?.n ?? 0
const sample = (minute: number) => ({
  type: 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN',
  value: 40 + minute,
  unit: 'ms',
  startDate: `2026-03-01T02:${String(minute).padStart(2, '0')}:00-08:00`,
  endDate: `2026-03-01T02:${String(minute).padStart(2, '0')}:30-08:00`,
})

describe('hph dlq', () => {
  it('lists a poison message with its reason, and after the fix redrives it to be processed once', async () => {
    // the api takes batches of up to 10,000 samples; a misconfigured normalize only 2: a batch of 5 is poison to it
    const api = await startPipeline(env.config, env.log, { stages: [], api: true, prepare: true })
    running.push(api)
    const broken = await startPipeline({ ...env.config, HPH_MAX_SAMPLES: 2 }, env.log, { stages: ['normalize', 'samples-writer'], api: false, prepare: false })
    const res = await fetch(`${api.url}/v1/users/ida/samples`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ batchId: 'ida-1', samples: [1, 2, 3, 4, 5].map(sample) }),
    })
    expect(res.status).toBe(202)
    await waitForIdle(env.nats, env.config.HPH_PREFIX, { timeoutMs: 30_000 })
    expect(await rows(api)).toBe(0)
    await broken.stop()

    const list = await hph(['dlq', 'list', '--json'])
    expect(list.code, list.out).toBe(0)
    const entries = JSON.parse(list.out) as Array<Omit<DlqEntry, 'letter'>>
    expect(entries).toHaveLength(1)
    expect(entries[0]).toMatchObject({
      stage: 'normalize',
      kind: 'poison',
      subject: `${env.config.HPH_PREFIX}.ingest.v1.healthkit.ida`,
      originalStream: streamName(env.config.HPH_PREFIX, 'INGEST'),
      originalSeq: 1,
    })
    expect(entries[0]?.reason).toContain('samples must have 1..2 entries')
    expect((await hph(['dlq', 'list', '--stage', 'samples-writer', '--json'])).out.trim()).toBe('[]')
    const human = await hph(['dlq', 'list'])
    expect(human.out).toMatch(/id\s+stage\s+kind\s+first seen\s+deliveries\s+subject\s+reason/)

    // the fix: normalize with the right limit; then the dead letter goes back, and is gone from the DLQ
    const fixed = await startPipeline(env.config, env.log, { stages: ['normalize', 'samples-writer', 'insights-engine', 'insights-writer'], api: false, prepare: false })
    running.push(fixed)
    const redriven = await hph(['dlq', 'redrive', '--stage', 'normalize'])
    expect(redriven.code, redriven.out).toBe(0)
    expect(redriven.out).toContain('1 dead letter(s) redriven')
    await waitForIdle(env.nats, env.config.HPH_PREFIX, { timeoutMs: 30_000 })
    expect(await rows(fixed)).toBe(5)
    expect(JSON.parse((await hph(['dlq', 'list', '--json'])).out)).toEqual([])

    // once: redriving again finds nothing, and the same batch posted again adds no row
    expect((await hph(['dlq', 'redrive'])).out).toContain('0 dead letter(s) redriven')
    expect((await hph(['dlq', 'redrive', '--id', '1'])).code).toBe(1)
    await fetch(`${api.url}/v1/users/ida/samples`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ batchId: 'ida-1', samples: [1, 2, 3, 4, 5].map(sample) }),
    })
    await waitForIdle(env.nats, env.config.HPH_PREFIX, { timeoutMs: 30_000 })
    expect(await rows(fixed)).toBe(5)
  })
})
