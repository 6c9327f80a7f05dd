import { spawn } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { streamName, STREAM_KEYS } from '../../streams/subjects.ts'
import { eventually, testEnv, type TestEnv } from '../helpers/env.ts'

let env: TestEnv
beforeAll(async () => {
  env = await testEnv()
})
afterAll(async () => {
  await env?.cleanup()
})

function hph(args: string[], extra: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['bin/hph.js', ...args], {
    env: { ...process.env, DATABASE_URL: env.config.DATABASE_URL, HPH_PREFIX: env.config.HPH_PREFIX, LOG_LEVEL: 'info', ...extra },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (out += d.toString()))
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, exit, output: () => out }
}

describe('hph', () => {
  it('migrate and streams apply are idempotent', async () => {
    for (let i = 0; i < 2; i++) {
      const m = hph(['migrate'])
      expect(await m.exit, m.output()).toBe(0)
      const s = hph(['streams', 'apply'])
      expect(await s.exit, s.output()).toBe(0)
    }
    for (const key of STREAM_KEYS) expect((await env.nats.jsm.streams.info(streamName(env.config.HPH_PREFIX, key))).config.name).toBeTruthy()
  })

  it('stops with a message naming the variable when the configuration is bad', async () => {
    const r = hph(['migrate'], { HPH_STREAM_REPLICAS: 'many' })
    expect(await r.exit).toBe(2)
    expect(r.output()).toContain('HPH_STREAM_REPLICAS')
  })

  it('up serves, ingests, and on SIGTERM drains and exits 0', async () => {
    const port = String(20_000 + Math.floor(Math.random() * 20_000))
    const up = hph(['up'], { PORT: port })
    const url = `http://127.0.0.1:${port}`
    await eventually(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200, 60_000, 'readyz')
    const res = await fetch(`${url}/v1/users/zed/samples`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ samples: [{ type: 'HKQuantityTypeIdentifierRestingHeartRate', value: 55, unit: 'count/min', startDate: '2026-03-01T08:00:00Z', endDate: '2026-03-01T08:00:00Z' }] }),
    })
    expect(res.status).toBe(202)
    up.child.kill('SIGTERM')
    expect(await up.exit, up.output()).toBe(0)
    expect(up.output()).toContain('stopped cleanly')
  })

  it('demo --exit runs the pipeline with demo data and finds every sample in the table', async () => {
    const port = String(20_000 + Math.floor(Math.random() * 20_000))
    const demo = hph(['demo', '--exit'], { PORT: port, LOG_LEVEL: 'warn' })
    expect(await demo.exit, demo.output()).toBe(0)
    expect(demo.output()).toMatch(/posted \d+ samples \(1 rejected, 1 ignored\); \d+ rows in table samples/)
  })
})
