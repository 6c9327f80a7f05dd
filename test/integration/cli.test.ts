import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Status } from '../../streams/status.ts'
import { migrations } from '../../schema/migrate.ts'
import { streamName, STREAM_KEYS } from '../../streams/subjects.ts'
import { eventually, testEnv, type TestEnv } from '../helpers/env.ts'
import { createTestDatabase } from '../helpers/db.ts'
import { startNatsServer } from '../helpers/nats-server.ts'
import { HPH_ENTRY } from '../helpers/processes.ts'

let env: TestEnv
beforeAll(async () => {
  env = await testEnv()
})
afterAll(async () => {
  await env?.cleanup()
})

function hph(args: string[], extra: Record<string, string> = {}) {
  const child = spawn(process.execPath, [...HPH_ENTRY, ...args], {
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

  it('status shows every stream and consumer, the lag of work not yet done, the DLQ depth and the migration', async () => {
    // a raw batch nobody has normalised yet (no stage runs here): one message of lag on normalize
    await env.nats.js.publish(`${env.config.HPH_PREFIX}.ingest.v1.healthkit.zed`, '{}', { msgID: 'status-test' })
    await new Promise((r) => setTimeout(r, 1100))
    const r = hph(['status', '--json'])
    expect(await r.exit, r.output()).toBe(0)
    const s = JSON.parse(r.output()) as Status
    expect(s.nats.reachable).toBe(true)
    expect(s.database).toEqual({ reachable: true, migration: Object.keys(migrations(env.config)).at(-1) })
    expect(s.streams.map((x) => x.stream)).toEqual(STREAM_KEYS.map((k) => streamName(env.config.HPH_PREFIX, k)))
    expect(s.consumers.map((c) => c.stage)).toEqual(['normalize', 'samples-writer', 'insights-engine', 'insights-writer'])
    const normalize = s.consumers.find((c) => c.stage === 'normalize')!
    expect(normalize).toMatchObject({ pending: 1, ackPending: 0, lagMessages: 1 })
    expect(normalize.lagSeconds).toBeGreaterThanOrEqual(1)
    expect(s.consumers.find((c) => c.stage === 'samples-writer')).toMatchObject({ lagMessages: 0, lagSeconds: 0 })
    expect(s.dlq.depth).toBe(0)
    // the output tables' rows beside the messages, read from PostgreSQL's statistics
    expect(s.tables.map((t) => t.table)).toEqual(['samples', 'hrv_daily', 'sleep_daily', 'baseline_history', 'readiness_daily', 'user_baselines', 'user_cpt_tables'])
    for (const t of s.tables)
      expect(
        [t.rows, t.written].every((n) => Number.isInteger(n) && n >= 0),
        t.table,
      ).toBe(true)

    const human = hph(['status'])
    expect(await human.exit).toBe(0)
    expect(human.output()).toMatch(/consumers\nconsumer\s+pending\s+ack pending\s+redelivered\s+ack floor\s+lag msgs\s+lag s/)
    expect(human.output()).toContain(`${streamName(env.config.HPH_PREFIX, 'INGEST')}/normalize`)
    expect(human.output()).toMatch(/\ntable\s+rows\s+written\n/)

    const away = hph(['status', '--json'], { NATS_URL: 'nats://127.0.0.1:1' })
    expect(await away.exit).toBe(1)
    expect(JSON.parse(away.output())).toMatchObject({ nats: { reachable: false }, database: { reachable: true } })
  })

  it('status answers at once, and the other commands say that they wait, when the server has no JetStream', async () => {
    const server = await startNatsServer('nats-server', { jetstream: false })
    try {
      // status reports the server as it is, without the minute connectNats may wait for JetStream
      const status = hph(['status', '--json'], { NATS_URL: server.url })
      const code = await Promise.race([status.exit, new Promise<'still running'>((resolve) => setTimeout(resolve, 30_000, 'still running'))])
      if (code === 'still running') status.child.kill('SIGKILL')
      expect(code, status.output()).toBe(1)
      expect(JSON.parse(status.output())).toMatchObject({ nats: { reachable: false, error: expect.stringMatching(/jetstream/i) }, database: { reachable: true } })
      // a command that needs JetStream waits for it, and says so on stderr (stdout is its output) before the wait ends
      const streams = hph(['streams', 'apply'], { NATS_URL: server.url })
      let stderr = ''
      streams.child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
      try {
        await eventually(async () => stderr.includes('hph streams: JetStream does not answer yet'), 20_000, 'the wait said on stderr')
        expect(stderr).toMatch(/waiting up to 60 s for it/)
        expect(streams.child.exitCode).toBe(null)
      } finally {
        streams.child.kill('SIGKILL')
      }
    } finally {
      await server.close()
    }
  })

  it('stops with a message naming the variable when the configuration is bad', async () => {
    const r = hph(['migrate'], { HPH_STREAM_REPLICAS: 'many' })
    expect(await r.exit).toBe(2)
    expect(r.output()).toContain('HPH_STREAM_REPLICAS')
  })

  it('stops the same way once `hph import` has started its parse thread ahead of the configuration (cli/commands.ts: EARLY)', async () => {
    const fixture = fileURLToPath(new URL('../fixtures/healthkit-export-small.xml', import.meta.url))
    // a thread started, then a bad variable: of another setting, or of the parser's own heap
    for (const [name, value] of [
      ['HPH_STREAM_REPLICAS', 'many'],
      ['HPH_EXPORT_PARSER_HEAP_MB', '16'],
    ] as const) {
      const r = hph(['import', 'healthkit', fixture, '--user', 'ana'], { [name]: value })
      // the thread started ahead keeps no process alive: the command ends, naming the variable
      expect(await r.exit, r.output()).toBe(2)
      expect(r.output()).toContain(name)
    }
  })

  it('`hph import` into streams that are not there exits 1 naming the stream: the parse it began before connecting is let go', async () => {
    const fixture = fileURLToPath(new URL('../fixtures/healthkit-export-30-nights.xml', import.meta.url))
    const prefix = `${env.config.HPH_PREFIX}_none`
    const r = hph(['import', 'healthkit', fixture, '--user', 'ana'], { HPH_PREFIX: prefix })
    const code = await Promise.race([r.exit, new Promise<'still running'>((resolve) => setTimeout(resolve, 20_000, 'still running'))])
    if (code === 'still running') r.child.kill('SIGKILL')
    expect(code, r.output()).toBe(1)
    expect(r.output()).toContain(`stream ${streamName(prefix, 'INGEST')} is not there`)
  })

  it('refuses an option its command does not take (a misspelt one is never ignored): exit 2, naming it, before doing anything', async () => {
    for (const [args, named, takes] of [
      [['replay', 'samples', '--into', 'samples', '--form-seq', '3'], '--form-seq', '--from-seq'],
      [['status', '--form-seq', '3'], '--form-seq', '--json'],
      [['migrate', '--json'], '--json', 'no options'],
      [['demo', '--exit=3'], '--exit', '--exit'],
      [['import', 'healthkit', 'x.xml', '--user'], '--user', '--user'],
    ] as const) {
      const r = hph([...args])
      expect(await r.exit, r.output()).toBe(2)
      expect(r.output(), args.join(' ')).toContain(named)
      expect(r.output(), args.join(' ')).toContain(`hph ${args[0]} takes`)
      expect(r.output(), args.join(' ')).toContain(takes)
    }
    const unknown = hph(['--form-seq'])
    expect(await unknown.exit).toBe(2)
    expect(unknown.output()).toMatch(/Unknown option '--form-seq'/)
  })

  it('logs JSON when its output is not a terminal, readable lines when HPH_LOG_FORMAT=pretty (what a terminal gets)', async () => {
    // a database of its own each: the migrations it applies are what gets logged
    const [a, b] = [await createTestDatabase(), await createTestDatabase()]
    try {
      const json = hph(['migrate'], { DATABASE_URL: a.config.DATABASE_URL })
      expect(await json.exit, json.output()).toBe(0)
      const lines = json
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
      expect(lines.length).toBeGreaterThan(0)
      expect(JSON.parse(lines[0]!)).toMatchObject({ level: 30, service: 'hph', msg: 'migration applied' })
      const pretty = hph(['migrate'], { DATABASE_URL: b.config.DATABASE_URL, HPH_LOG_FORMAT: 'pretty' })
      expect(await pretty.exit, pretty.output()).toBe(0)
      // eslint-disable-next-line no-control-regex -- the colours a terminal gets
      const text = pretty.output().replace(/\x1b\[[0-9;]*m/g, '')
      expect(text).toMatch(/^\[\d{2}:\d{2}:\d{2}\.\d{3}\] INFO: migration applied \{"migration":"0001_initial"\}$/m)
      expect(text).not.toMatch(/^\{"level"/m)
    } finally {
      await a.drop()
      await b.drop()
    }
  })

  it('up serves, ingests, and on SIGTERM drains and exits 0', async () => {
    const port = String(20_000 + Math.floor(Math.random() * 20_000))
    const up = hph(['up'], { PORT: port })
    const url = `http://127.0.0.1:${port}`
    await eventually(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200, 60_000, 'readyz')
    const res = await fetch(`${url}/v1/users/zed/samples`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        samples: [{ type: 'HKQuantityTypeIdentifierRestingHeartRate', value: 55, unit: 'count/min', startDate: '2026-03-01T08:00:00Z', endDate: '2026-03-01T08:00:00Z' }],
      }),
    })
    expect(res.status).toBe(202)
    up.child.kill('SIGTERM')
    expect(await up.exit, up.output()).toBe(0)
    expect(up.output()).toContain('stopped cleanly')
  })

  it('worker runs the stages it is given in one process, and refuses a stage it does not know: exit 2, naming it', async () => {
    for (const [args, named] of [
      [['worker'], 'name a stage'],
      [['worker', 'normalize', 'samples-writr'], "'samples-writr'"],
    ] as const) {
      const r = hph([...args])
      expect(await r.exit, r.output()).toBe(2)
      expect(r.output()).toContain(named)
      expect(r.output()).toContain('one or more of: api, normalize, samples-writer')
    }
    // a worker prepares nothing: the database and the streams are there before it, as an operator's deploy has them
    for (const prep of [['migrate'], ['streams', 'apply']]) expect(await hph(prep).exit).toBe(0)
    const port = String(20_000 + Math.floor(Math.random() * 20_000))
    const w = hph(['worker', 'samples-writer', 'normalize'], { PORT: port })
    try {
      const url = `http://127.0.0.1:${port}`
      await eventually(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200, 60_000, 'readyz')
      expect(await (await fetch(`${url}/readyz`)).json()).toEqual({ ready: true, checks: { nats: 'ok', postgres: 'ok', normalize: 'ok', 'samples-writer': 'ok' } })
      // no api in it: the routes of the api are not served
      expect((await fetch(`${url}/v1/users/zed/samples`, { method: 'POST', body: '{}' })).status).toBe(404)
    } finally {
      // a failed expectation leaves no worker running after the file
      w.child.kill('SIGTERM')
    }
    expect(await w.exit, w.output()).toBe(0)
  })

  it('worker exits 1 naming what is missing when its durable is not there, instead of serving "not ready" for ever', async () => {
    const port = String(20_000 + Math.floor(Math.random() * 20_000))
    // a prefix whose streams nobody applied
    const w = hph(['worker', 'normalize'], { PORT: port, HPH_PREFIX: `${env.config.HPH_PREFIX}x` })
    const code = await Promise.race([w.exit, new Promise<'still running'>((resolve) => setTimeout(resolve, 30_000, 'still running'))])
    if (code === 'still running') w.child.kill('SIGKILL')
    expect(code, w.output()).toBe(1)
    expect(w.output()).toMatch(/hph: .*not found/)
  })

  it('demo --exit runs the pipeline with demo data, finds every sample in the table and shows the insights', async () => {
    const port = String(20_000 + Math.floor(Math.random() * 20_000))
    const demo = hph(['demo', '--exit'], { PORT: port, LOG_LEVEL: 'warn' })
    expect(await demo.exit, demo.output()).toBe(0)
    expect(demo.output()).toMatch(/posted \d+ samples \(1 rejected, 1 ignored\); \d+ rows in table samples; insights settled/)
    // ana: 75 nights from two sources: her ring's RMSSD is the metric of her days (it is there most days), a
    // personal baseline from 60 nights of sleep and the ring's days, and a week of readiness
    expect(demo.output()).toMatch(/'ana'\s+│\s+'\d{4}-\d{2}-\d{2}'\s+│\s+'rmssd'\s+│\s+'[\d.]+'\s+│\s+\d+\s+│\s+'[\d.]+'\s+│\s+60\s+│\s+'personal'/)
    const week = demo.output().split('ana: readiness of the last 7 days')[1] ?? ''
    expect(week.match(/'\d{4}-\d{2}-\d{2}'\s+│\s+\d+\s+│\s+'(high|medium|low)'/g)).toHaveLength(7)
  })
})
