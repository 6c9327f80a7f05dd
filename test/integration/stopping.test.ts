import { Writable } from 'node:stream'
import { sql, type Kysely } from 'kysely'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { demoBatches } from '../../cli/demo-data.ts'
import { prepare, startPipeline, type Pipeline } from '../../pipeline/start.ts'
import { createDb, type Database } from '../../schema/db.ts'
import { streamName } from '../../streams/subjects.ts'
import { eventually, testEnv, type TestEnv } from '../helpers/env.ts'
import { startPoster } from '../helpers/poster.ts'
import { alive, exitWithin, killAll, showOnFailure, spawnHph, type Child } from '../helpers/processes.ts'
import { freePort } from '../helpers/proxy.ts'
import { canonicalSamples, fillSamples } from '../helpers/samples.ts'

// docs/architecture.md §8.1, §8.2, §9.7 and §9.8: a stage stopped strands nothing, a stage
// whose pull stopped for good says so and recovers, and a stop cut at its deadline says what it cut.

const children: Child[] = []
const closers: Array<() => Promise<void>> = []

afterEach(async () => {
  await killAll(children)
  for (const close of closers.splice(0).reverse()) await close()
})

async function scene(): Promise<{ env: TestEnv; db: Kysely<Database> }> {
  const env = await testEnv()
  const { db } = createDb(env.config, { max: 2 })
  await prepare(env.config, env.log, env.nats, db)
  closers.push(async () => {
    await db.destroy()
    await env.cleanup()
  })
  return { env, db }
}

/** How many of each accepted batch's samples are in `samples`, against how many it carried. */
async function missingSamples(db: Kysely<Database>, accepted: ReadonlyMap<string, { eventId: string; accepted: number }>): Promise<number> {
  const ids = [...accepted.values()].map((a) => a.eventId)
  if (ids.length === 0) return 0
  const rows = (await sql<{ ingest_id: string; n: number }>`select ingest_id, count(*)::int as n from samples where ingest_id = any(${ids}) group by ingest_id`.execute(db)).rows
  const have = new Map(rows.map((r) => [r.ingest_id, r.n]))
  return [...accepted.values()].reduce((n, a) => n + Math.max(0, a.accepted - (have.get(a.eventId) ?? 0)), 0)
}

describe('a pipeline stopped and started again at once', () => {
  it('three SIGTERM restarts under load: every accepted sample lands within seconds of its last POST, none waits for the ack wait', async () => {
    const { env, db } = await scene()
    const up = async () => {
      const port = await freePort()
      const c = spawnHph(
        ['up'],
        {
          DATABASE_URL: env.config.DATABASE_URL,
          HPH_PREFIX: env.config.HPH_PREFIX,
          HOST: '127.0.0.1',
          PORT: String(port),
          // long on purpose: a message stranded by a stop would land only after it, far past the bound below
          HPH_ACK_WAIT_S: '60',
          HPH_SHUTDOWN_TIMEOUT_MS: '15000',
        },
        children,
      )
      showOnFailure(c, `hph up on ${port}`)
      const url = `http://127.0.0.1:${port}`
      await eventually(
        async () =>
          (await fetch(`${url}/readyz`).then(
            (r) => r.status,
            () => 0,
          )) === 200,
        60_000,
        'hph up to be ready',
      )
      return { c, url }
    }
    let current = await up()
    const lags: number[] = []
    for (let round = 0; round < 3; round++) {
      const users = [0, 1, 2].map((u) => `r${round}u${u}`)
      const batches = users.flatMap((userId, u) =>
        demoBatches({ userId, nights: 60, firstNight: '2026-05-01', seed: round * 10 + u, batchSize: 40 }).map((batch) => ({ userId, batch })),
      )
      const poster = startPoster(() => current.url, batches, { gapMs: 20 })
      await eventually(async () => poster.accepted.size >= 30, 60_000, 'batches accepted under load')
      // SIGTERM mid-stream (the stages hold pulled and half-written work), and a new pipeline at once
      const old = current
      old.c.child.kill('SIGTERM')
      current = await up()
      await poster.stop()
      const lastPost = Math.max(...[...poster.accepted.values()].map((a) => a.at))
      expect(await exitWithin(old.c, 30_000)).toMatchObject({ code: 0, signal: null })
      await eventually(async () => (await missingSamples(db, poster.accepted)) === 0, 120_000, `round ${round}: every accepted sample written`)
      lags.push(Date.now() - lastPost)
    }
    console.log(`SIGTERM restarts under load: last POST → last row ${lags.map((l) => `${(l / 1000).toFixed(1)} s`).join(', ')} (worst ${(Math.max(...lags) / 1000).toFixed(1)} s)`)
    // a stranded delivery would come back only after the 60 s ack wait
    expect(Math.max(...lags)).toBeLessThan(25_000)
    current.c.child.kill('SIGTERM')
    expect(await exitWithin(current.c, 30_000)).toMatchObject({ code: 0, signal: null })
  }, 420_000)
})

describe('a stage whose durable consumer is deleted under it', () => {
  it('logs an error, /readyz turns 503 naming the stage, the durable is declared again and every sample lands', async () => {
    const { env, db } = await scene()
    const lines: string[] = []
    const log = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _enc, done) => void (lines.push(chunk.toString()), done()) }))
    const p: Pipeline = await startPipeline(env.config, log, { stages: ['samples-writer'], api: false, prepare: false })
    closers.push(async () => void (await p.stop()))
    const readyz = async () => {
      const res = await fetch(`${p.url}/readyz`)
      return { status: res.status, ...((await res.json()) as { checks: Record<string, string> }) }
    }
    expect(await readyz()).toMatchObject({ status: 200, checks: { nats: 'ok', postgres: 'ok', 'samples-writer': 'ok' } })
    const stream = streamName(env.config.HPH_PREFIX, 'SAMPLES')
    const first = canonicalSamples(5, 10, '2026-03-01')
    await fillSamples(env.nats, env.config.HPH_PREFIX, first)
    const count = async () => (await sql<{ n: number }>`select count(*)::int as n from samples`.execute(db)).rows[0]!.n
    await eventually(async () => (await count()) === first.length, 60_000, 'the first samples written')

    await env.nats.jsm.consumers.delete(stream, 'samples-writer')
    const seen: Array<{ status: number; checks: Record<string, string> }> = []
    await eventually(
      async () => {
        const r = await readyz()
        seen.push(r)
        return r.status === 503
      },
      30_000,
      'readyz to turn 503',
    )
    expect(seen.at(-1)).toMatchObject({ status: 503, checks: { nats: 'ok', postgres: 'ok', 'samples-writer': 'not pulling' } })
    expect(lines.some((l) => l.includes('"level":50') && l.includes('durable consumer is gone'))).toBe(true)

    // more samples meanwhile: the stream keeps them until the stage pulls again
    const more = canonicalSamples(5, 10, '2026-04-01')
    await fillSamples(env.nats, env.config.HPH_PREFIX, more)
    await eventually(async () => (await readyz()).status === 200, 60_000, 'readyz to be 200 again')
    expect((await env.nats.jsm.consumers.info(stream, 'samples-writer')).config.ack_wait).toBe(env.config.HPH_ACK_WAIT_S * 1e9)
    await eventually(async () => (await count()) === first.length + more.length, 60_000, 'every sample written')
    const ids = (await sql<{ n: number }>`select count(distinct sample_id)::int as n from samples`.execute(db)).rows[0]!.n
    expect(ids).toBe(first.length + more.length)
  })
})

describe('shutdown', () => {
  it('stops the stages while a long upload is still open, then cuts it at the deadline, exits non-zero and says what it cut', async () => {
    const { env } = await scene()
    const port = await freePort()
    const deadlineMs = 6_000
    const c = spawnHph(
      ['up'],
      {
        DATABASE_URL: env.config.DATABASE_URL,
        HPH_PREFIX: env.config.HPH_PREFIX,
        HOST: '127.0.0.1',
        PORT: String(port),
        HPH_SHUTDOWN_TIMEOUT_MS: String(deadlineMs),
      },
      children,
    )
    showOnFailure(c, 'hph up')
    const url = `http://127.0.0.1:${port}`
    await eventually(
      async () =>
        (await fetch(`${url}/readyz`).then(
          (r) => r.status,
          () => 0,
        )) === 200,
      60_000,
      'hph up to be ready',
    )
    const waiting = async () => {
      const infos = await Promise.all(
        ['normalize', 'samples-writer', 'insights-engine', 'insights-writer'].map((d, i) =>
          env.nats.jsm.consumers.info(streamName(env.config.HPH_PREFIX, (['INGEST', 'SAMPLES', 'CHANGES', 'INSIGHTS'] as const)[i]!), d),
        ),
      )
      return infos.reduce((n, i) => n + i.num_waiting, 0)
    }
    await eventually(async () => (await waiting()) >= 4, 15_000, 'every stage to have a pull waiting')

    // an export upload that sends its first bytes and then nothing more (a slow phone on a train)
    let push: ((chunk: string) => void) | undefined
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        push = (chunk) => controller.enqueue(new TextEncoder().encode(chunk))
      },
    })
    const upload = fetch(`${url}/v1/users/slow/healthkit-export`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body, duplex: 'half' } as RequestInit).catch(
      (err: unknown) => err,
    )
    push?.('<?xml version="1.0" encoding="UTF-8"?>\n<HealthData locale="en_US">\n')
    await new Promise((r) => setTimeout(r, 1_000))

    const sentAt = Date.now()
    c.child.kill('SIGTERM')
    // the stages stop pulling at once, not after the upload ends
    await eventually(async () => (await waiting()) === 0, deadlineMs - 1_000, 'no stage to be pulling any more')
    expect(alive(c)).toBe(true)
    const exit = await exitWithin(c, deadlineMs + 10_000)
    expect(exit.code).not.toBe(0)
    // the deadline, the margin the connections get (cli/commands.ts), and room for a loaded machine
    expect(exit.at - sentAt).toBeLessThan(deadlineMs + 6_000)
    expect(c.output()).toMatch(/shutdown deadline passed/)
    expect(c.output()).toContain('"route":"/v1/users/:userId/healthkit-export"')
    await upload
  })
})
