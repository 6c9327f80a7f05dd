import { sql, type Kysely } from 'kysely'
import pg from 'pg'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { demoBatches } from '../../cli/demo-data.ts'
import { prepare, waitForIdle } from '../../pipeline/start.ts'
import { createDb, type Database } from '../../schema/db.ts'
import type { Nats } from '../../streams/connect.ts'
import { streamName } from '../../streams/subjects.ts'
import { eventually, testEnv, type TestEnv } from '../helpers/env.ts'
import { referenceInsights, snapshotDifferences, snapshotInsights } from '../helpers/insights.ts'
import { startNatsServer, type NatsServer } from '../helpers/nats-server.ts'
import { freePort, startTcpProxy, throughProxy, type TcpProxy } from '../helpers/proxy.ts'
import { canonicalSamples, fillSamples } from '../helpers/samples.ts'
import { alive, exitWithin, killAll, showOnFailure, spawnHph, type Child } from '../helpers/processes.ts'
import { startPoster } from '../helpers/poster.ts'

// docs/architecture.md §8 (SIGTERM drains and acks nothing uncommitted) and §9.1, §9.2 through outages, with real
// processes: `hph worker` / `hph up` as children, a held table lock or a cut TCP proxy in front of
// PostgreSQL, and a private nats-server that is stopped and started again on the same store.

const DAY_MS = 86_400_000

// ── child processes ──

const children: Child[] = []
/** closed after each test, once its processes are gone */
const closers: Array<() => Promise<void>> = []

/** Runs `hph <args>`; the process is killed after the test unless `owner` is another list. */
const hph = (args: string[], env: Record<string, string>, owner: Child[] = children): Child => spawnHph(args, env, owner)

afterEach(async () => {
  // a test that failed half-way leaves no process behind
  await killAll(children)
  for (const close of closers.splice(0).reverse()) await close()
})

// ── what the consumer acknowledged, as seen on the wire ──

interface AckEvent {
  seq: number
  /** +ACK, -NAK, +TERM, +WPI… */
  kind: string
  at: number
}

/**
 * Every acknowledgement a durable's subscribers send, read from its ack subjects
 * ($JS.ACK.<stream>.<durable>.<deliveries>.<stream seq>.<consumer seq>.<time>.<pending>).
 */
function recordAcks(nats: Nats, stream: string, durable: string) {
  const events: AckEvent[] = []
  const sub = nats.nc.subscribe(`$JS.ACK.${stream}.${durable}.>`, {
    callback: (err, msg) => {
      if (err) throw err
      const tokens = msg.subject.split('.')
      const seq = Number(tokens.length === 9 ? tokens[5] : tokens[7]) // the 2.10+ form adds domain and account
      const body = msg.string()
      events.push({ seq, kind: body === '' ? '+ACK' : (body.split(' ')[0] ?? body), at: Date.now() })
    },
  })
  return {
    events,
    acked: (since = 0) => new Set(events.filter((e) => e.kind === '+ACK' && e.at >= since).map((e) => e.seq)),
    stop: () => sub.unsubscribe(),
  }
}

const committedSeqs = async (db: Kysely<Database>) => new Set((await sql<{ s: number }>`select stream_seq as s from samples`.execute(db)).rows.map((r) => Number(r.s)))

const sampleCounts = async (db: Kysely<Database>) =>
  (
    await sql<{
      n: number
      ids: number
      seqs: number
    }>`select count(*)::int as n, count(distinct sample_id)::int as ids, count(distinct stream_seq)::int as seqs from samples`.execute(db)
  ).rows[0]!

// ── graceful shutdown ──

const WORKER_APP = 'hph-resilience-worker'

interface ShutdownScene {
  env: TestEnv
  db: Kysely<Database>
  total: number
  /** messages in HPH_SAMPLES */
  messages: number
  acks: ReturnType<typeof recordAcks>
  /** holds `lock table samples in share mode` in an open transaction: every insert waits */
  lock: pg.Client
  worker(extra?: Record<string, string>): Child
  /** the workers' inserts waiting for the lock */
  blockedInserts(): Promise<number>
  /** the workers' connections to PostgreSQL */
  workerBackends(): Promise<number>
  ackFloor(): Promise<number>
  settled(): Promise<boolean>
}

async function shutdownScene(): Promise<ShutdownScene> {
  const env = await testEnv()
  const { db } = createDb(env.config, { max: 2 })
  await prepare(env.config, env.log, env.nats, db)
  const prefix = env.config.HPH_PREFIX
  const stream = streamName(prefix, 'SAMPLES')
  // nights of the last month: their monthly partitions were made by the migration, so the first
  // statement of a pull that waits for the lock is its insert, inside the pull's transaction
  const firstNight = new Date(Date.now() - 30 * DAY_MS).toISOString().slice(0, 10)
  const samples = canonicalSamples(20, 24, firstNight) // ≈ 8k samples in ≈ 60 events: several pulls
  await fillSamples(env.nats, prefix, samples)
  const messages = (await env.nats.jsm.streams.info(stream)).state.messages
  const acks = recordAcks(env.nats, stream, 'samples-writer')
  await env.nats.nc.flush()
  const lock = new pg.Client({ connectionString: env.config.DATABASE_URL })
  await lock.connect()
  await lock.query('begin')
  await lock.query(`lock table "${env.config.HPH_DB_SCHEMA}".samples in share mode`)
  // the workers' connections are told apart by their application_name
  const workerUrl = new URL(env.config.DATABASE_URL)
  workerUrl.searchParams.set('application_name', WORKER_APP)
  closers.push(async () => {
    acks.stop()
    await lock.end()
    await db.destroy()
    await env.cleanup()
  })
  return {
    env,
    db,
    acks,
    lock,
    total: samples.length,
    messages,
    worker(extra = {}) {
      // pulls of one or two events: several in hand at once, the rest still in the stream or given back at a stop
      const c = hph(['worker', 'samples-writer'], { DATABASE_URL: workerUrl.toString(), HPH_PREFIX: prefix, PORT: '0', HPH_PULL_MAX_BYTES: String(256 * 1024), ...extra })
      showOnFailure(c, 'hph worker samples-writer')
      return c
    },
    async blockedInserts() {
      const r = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
        where application_name = ${WORKER_APP} and wait_event_type = 'Lock' and query ilike 'insert into%samples%'`.execute(db)
      return r.rows[0]!.n
    },
    async workerBackends() {
      const r = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where application_name = ${WORKER_APP}`.execute(db)
      return r.rows[0]!.n
    },
    ackFloor: async () => (await env.nats.jsm.consumers.info(stream, 'samples-writer')).ack_floor.stream_seq,
    async settled() {
      const i = await env.nats.jsm.consumers.info(stream, 'samples-writer')
      return i.num_pending === 0 && i.num_ack_pending === 0
    },
  }
}

/** Every acknowledged stream sequence, and every one up to the ack floor, has its row committed. */
async function expectNothingAckedUncommitted(s: ShutdownScene) {
  const committed = await committedSeqs(s.db)
  const ackedNotCommitted = [...s.acks.acked()].filter((seq) => !committed.has(seq))
  expect(ackedNotCommitted).toEqual([])
  const floor = await s.ackFloor()
  expect(floor).toBeLessThanOrEqual(committed.size)
  for (let seq = 1; seq <= floor; seq++) if (!committed.has(seq)) throw new Error(`stream seq ${seq} is below the ack floor ${floor} but not committed`)
}

/** A new worker drains the stream: every sample exactly once; it stops cleanly. */
async function expectRestartWritesEverythingOnce(s: ShutdownScene) {
  const again = s.worker()
  await eventually(async () => (await s.settled()) && (await sampleCounts(s.db)).n === s.total, 60_000, 'the restarted writer to drain the stream')
  // every sample once, and every message of the stream committed (each event's samples carry its sequence)
  expect(await sampleCounts(s.db)).toEqual({ n: s.total, ids: s.total, seqs: s.messages })
  again.child.kill('SIGTERM')
  expect(await exitWithin(again, 15_000)).toMatchObject({ code: 0, signal: null })
}

describe('SIGTERM', () => {
  it('mid-batch: finishes the batch in hand, acks no uncommitted row, exits 0 within the deadline', async () => {
    const s = await shutdownScene()
    const deadlineMs = 15_000
    const w = s.worker({ HPH_SHUTDOWN_TIMEOUT_MS: String(deadlineMs) })
    await eventually(async () => (await s.blockedInserts()) > 0, 60_000, 'a pull blocked in its transaction')
    expect(s.acks.acked().size).toBe(0)

    const sentAt = Date.now()
    w.child.kill('SIGTERM')
    // the worker waits for the batch in hand rather than walking away from it (the deadline is far)
    await new Promise((r) => setTimeout(r, 1500))
    expect(alive(w)).toBe(true)
    expect(s.acks.acked().size).toBe(0)
    expect(await s.ackFloor()).toBe(0)

    await s.lock.query('commit') // the transactions in hand can commit now
    const exit = await exitWithin(w, deadlineMs + 5_000)
    expect(exit).toMatchObject({ code: 0, signal: null })
    expect(exit.at - sentAt).toBeLessThan(deadlineMs)
    await s.env.nats.nc.flush()

    // the batches in hand were committed, then acked; what was pulled but not handled was given back
    const committed = await committedSeqs(s.db)
    expect(committed.size).toBeGreaterThan(0)
    expect(committed.size).toBeLessThan(s.messages)
    expect(s.acks.acked(sentAt).size).toBeGreaterThan(0)
    await expectNothingAckedUncommitted(s)

    await expectRestartWritesEverythingOnce(s)
  })

  it('past the deadline: exits non-zero at the deadline saying what it cut, the blocked batch unacked and redelivered later, rows exactly once', async () => {
    const s = await shutdownScene()
    const deadlineMs = 3_000
    const w = s.worker({ HPH_SHUTDOWN_TIMEOUT_MS: String(deadlineMs) })
    await eventually(async () => (await s.blockedInserts()) > 0, 60_000, 'a pull blocked in its transaction')

    const sentAt = Date.now()
    w.child.kill('SIGTERM')
    const exit = await exitWithin(w, deadlineMs + 10_000)
    // a stop that had to cut work is not clean: its supervisor sees it, and the log says what was given back
    expect(exit).toMatchObject({ code: 1, signal: null })
    expect(w.output()).toMatch(/shutdown deadline passed/)
    expect(w.output()).toMatch(/"stage":"samples-writer","givenBack":[1-9]/)
    // the deadline, plus the margin the connections get to close (cli/commands.ts)
    expect(exit.at - sentAt).toBeLessThan(deadlineMs + 3_000)
    await s.env.nats.nc.flush()
    expect(s.acks.acked().size).toBe(0)
    expect(await s.ackFloor()).toBe(0)
    // the batches in hand were given back at the deadline, not left to ack_wait
    expect(s.acks.events.filter((e) => e.kind === '-NAK' && e.at >= sentAt + deadlineMs - 500).length).toBeGreaterThan(0)

    // the lock goes; the abandoned transactions never commit (their process is gone)
    await s.lock.query('rollback')
    await eventually(async () => (await s.workerBackends()) === 0, 15_000, 'the abandoned backends to end')
    expect((await sampleCounts(s.db)).n).toBe(0)
    await expectNothingAckedUncommitted(s)

    await expectRestartWritesEverythingOnce(s)
  })
})

// ── outages: one `hph up` behind a cuttable PostgreSQL proxy and on a private nats-server ──

/**
 * Shorter than a 30 s outage to keep the file quick, long enough for every retry path (nak backoff to 8 s,
 * reconnects, the pull's reset after one) to run; HPH_TEST_OUTAGE_MS=30000 runs the full length.
 */
const OUTAGE_MS = Number(process.env.HPH_TEST_OUTAGE_MS ?? 12_000)
interface Stack {
  env: TestEnv
  db: Kysely<Database>
  nats: NatsServer
  pg: TcpProxy
  up: Child
  url: string
  readyz(): Promise<{ status: number; checks?: Record<string, string> }>
}

const UP_APP = 'hph-resilience-up'
let stack: Stack | undefined
const stackChildren: Child[] = []

describe('outages', () => {
  beforeAll(async () => {
    const nats = await startNatsServer()
    const env = await testEnv({ NATS_URL: nats.url })
    const target = new URL(env.config.DATABASE_URL)
    const pgProxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) })
    const port = await freePort()
    const proxied = new URL(throughProxy(env.config.DATABASE_URL, pgProxy))
    proxied.searchParams.set('application_name', UP_APP)
    const up = hph(
      ['up'],
      {
        NATS_URL: nats.url,
        DATABASE_URL: proxied.toString(),
        HPH_PREFIX: env.config.HPH_PREFIX,
        HOST: '127.0.0.1',
        PORT: String(port),
        // deliveries lost with a connection come back after ack_wait: short, so the test stays short
        HPH_ACK_WAIT_S: '5',
        HPH_SHUTDOWN_TIMEOUT_MS: '10000',
      },
      stackChildren,
    )
    const url = `http://127.0.0.1:${port}`
    const readyz = async () => {
      try {
        const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(10_000) })
        return { status: res.status, ...((await res.json()) as { checks?: Record<string, string> }) }
      } catch (err) {
        if (!alive(up)) throw new Error(`hph up exited (${up.child.exitCode ?? up.child.signalCode}):\n${up.output()}`)
        return { status: 0, checks: { fetch: (err as Error).message } }
      }
    }
    await eventually(async () => (await readyz()).status === 200, 60_000, 'hph up to be ready')
    const { db } = createDb(env.config, { max: 2 })
    stack = { env, db, nats, pg: pgProxy, up, url, readyz }
  })

  afterAll(async () => {
    for (const c of stackChildren.splice(0)) {
      if (alive(c)) c.child.kill('SIGKILL')
      await c.exit
    }
    if (!stack) return
    await stack.db.destroy()
    await stack.env.cleanup()
    await stack.pg.close()
    await stack.nats.close()
  })

  /** Users of their own per test, ≈ 25 samples a batch, more batches than the test will send. */
  const postings = (tag: string) =>
    [0, 1, 2, 3, 4].flatMap((u) =>
      demoBatches({ userId: `${tag}${u}`, nights: 120, firstNight: '2026-05-01', seed: u + 7, batchSize: 25 }).map((batch) => ({ userId: `${tag}${u}`, batch })),
    )

  /** Every accepted batch's samples are in `samples` exactly once, and nothing else of these users is. */
  async function expectEveryAcceptedSampleOnce(s: Stack, users: string, accepted: ReadonlyMap<string, { eventId: string; accepted: number }>) {
    const rows = (
      await sql<{ ingest_id: string; n: number; ids: number }>`select ingest_id, count(*)::int as n, count(distinct sample_id)::int as ids
      from samples where user_id like ${`${users}%`} group by ingest_id`.execute(s.db)
    ).rows
    const byIngest = new Map(rows.map((r) => [r.ingest_id, r]))
    const missing = [...accepted]
      .filter(([, a]) => byIngest.get(a.eventId)?.n !== a.accepted)
      .map(([batchId, a]) => `${batchId}: ${byIngest.get(a.eventId)?.n ?? 0} of ${a.accepted}`)
    expect(missing).toEqual([])
    expect(rows.every((r) => r.n === r.ids)).toBe(true)
    const ingests = new Set([...accepted.values()].map((a) => a.eventId))
    expect(rows.filter((r) => !ingests.has(r.ingest_id))).toEqual([])
    // and the insights the engine made of them are what the samples say (docs/insights.md §0)
    expect(snapshotDifferences(await snapshotInsights(s.db, { versions: false }), await referenceInsights(s.db), 1e-9)).toEqual([])
  }

  it(`PostgreSQL away for ${OUTAGE_MS / 1000} s: ingest keeps accepting, readyz 503 then 200, every accepted sample written once`, async () => {
    const s = stack!
    showOnFailure(s.up, 'hph up')
    const poster = startPoster(s.url, postings('pg'))
    await eventually(async () => poster.accepted.size >= 5, 30_000, 'the first batches accepted')

    // PostgreSQL goes away with a pull's transaction open: its insert waits on a lock when the connections die
    const lock = new pg.Client({ connectionString: s.env.config.DATABASE_URL })
    await lock.connect()
    await lock.query('begin')
    await lock.query(`lock table "${s.env.config.HPH_DB_SCHEMA}".samples in share mode`)
    const blockedInserts = async () =>
      (
        await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
        where application_name = ${UP_APP} and wait_event_type = 'Lock' and query ilike 'insert into%samples%'`.execute(s.db)
      ).rows[0]!.n
    await eventually(async () => (await blockedInserts()) > 0, 30_000, 'a pull blocked in its transaction')
    const cutAt = Date.now()
    s.pg.cut()
    await lock.query('rollback')
    await lock.end()
    await eventually(async () => (await s.readyz()).status === 503, 10_000, 'readyz to turn 503')
    expect((await s.readyz()).checks).toMatchObject({ nats: 'ok', postgres: expect.not.stringMatching(/^ok$/) })
    const acceptedDuring = poster.accepted.size
    await new Promise((r) => setTimeout(r, cutAt + OUTAGE_MS - Date.now()))
    // the api needs no database to take a batch: HPH_INGEST holds it until the writers are back
    expect(poster.accepted.size).toBeGreaterThan(acceptedDuring)
    s.pg.restore()

    await eventually(async () => (await s.readyz()).status === 200, 30_000, 'readyz to be 200 again')
    const afterRestore = poster.accepted.size
    await eventually(async () => poster.accepted.size >= afterRestore + 5, 30_000, 'batches accepted after the outage')
    await poster.stop()
    await waitForIdle(s.env.nats, s.env.config.HPH_PREFIX, { timeoutMs: 90_000 })

    expect(alive(s.up)).toBe(true)
    expect(poster.attempts.filter((a) => a.status !== 202)).toEqual([])
    await expectEveryAcceptedSampleOnce(s, 'pg', poster.accepted)
  })

  it.each(['SIGTERM', 'SIGKILL'] as const)(
    `NATS away for ${OUTAGE_MS / 1000} s (%s, restarted on its store): posts answer 503 (no hang, no 500), readyz 503 then 200, every 202 written once`,
    async (signal) => {
      const s = stack!
      showOnFailure(s.up, 'hph up')
      const tag = `nats${signal === 'SIGKILL' ? 'k' : 't'}`
      const poster = startPoster(s.url, postings(tag))
      await eventually(async () => poster.accepted.size >= 5, 30_000, 'the first batches accepted')

      const stopAt = Date.now()
      await s.nats.stop(signal)
      await eventually(async () => (await s.readyz()).status === 503, 10_000, 'readyz to turn 503')
      expect((await s.readyz()).checks).toMatchObject({ postgres: 'ok', nats: expect.not.stringMatching(/^ok$/) })
      await new Promise((r) => setTimeout(r, stopAt + OUTAGE_MS - Date.now()))
      await s.nats.start()

      await eventually(async () => (await s.readyz()).status === 200, 30_000, 'readyz to be 200 again')
      const afterRestore = poster.accepted.size
      await eventually(async () => poster.accepted.size >= afterRestore + 5, 30_000, 'batches accepted after the outage')
      await poster.stop()
      await waitForIdle(s.env.nats, s.env.config.HPH_PREFIX, { timeoutMs: 90_000 })

      expect(alive(s.up)).toBe(true)
      // every post was answered; while NATS was away with a 503 and the error body of docs/api.md §1
      expect(poster.attempts.filter((a) => a.status === 0)).toEqual([])
      const refused = poster.attempts.filter((a) => a.status !== 200 && a.status !== 202)
      expect(refused.length).toBeGreaterThan(0)
      for (const a of refused) expect(a).toMatchObject({ status: 503, body: { error: 'unavailable', message: expect.any(String), details: [] } })
      expect(refused.every((a) => a.at >= stopAt - 1_000)).toBe(true)
      await expectEveryAcceptedSampleOnce(s, tag, poster.accepted)
    },
  )

  it(`PostgreSQL hung for ${OUTAGE_MS / 1000} s (a proxy that stops moving bytes): reads 503 fast, readyz within 5 s naming it, ingest 202, every row lands after`, async () => {
    const s = stack!
    showOnFailure(s.up, 'hph up')
    const poster = startPoster(s.url, postings('hang'))
    await eventually(async () => poster.accepted.size >= 5, 30_000, 'the first batches accepted')
    const read = async () => {
      const t0 = Date.now()
      const res = await fetch(`${s.url}/v1/users/hang0/hrv/daily?from=2026-05-01&to=2026-08-31`, { signal: AbortSignal.timeout(30_000) })
      return { status: res.status, ms: Date.now() - t0, body: (await res.json()) as { error?: string } }
    }
    const timedReadyz = async () => {
      const t0 = Date.now()
      const r = await s.readyz()
      return { ...r, ms: Date.now() - t0 }
    }
    expect((await read()).status).toBe(200)

    const hungAt = Date.now()
    s.pg.hang()
    const reads: Array<Awaited<ReturnType<typeof read>>> = []
    const probes: Array<Awaited<ReturnType<typeof timedReadyz>>> = []
    // reads and probes side by side for the whole outage, as clients and a load balancer would
    while (Date.now() < hungAt + OUTAGE_MS) {
      const [r, p] = await Promise.all([read(), timedReadyz()])
      reads.push(r)
      probes.push(p)
    }
    const acceptedDuring = [...poster.accepted.values()].filter((a) => a.at > hungAt).length
    s.pg.restore()
    const worst = (xs: Array<{ ms: number }>) => Math.max(...xs.map((x) => x.ms))
    console.log(
      `PostgreSQL hung: ${reads.length} reads, worst ${worst(reads)} ms (statuses ${[...new Set(reads.map((r) => r.status))].join(',')}); ` +
        `${probes.length} readyz, worst ${worst(probes)} ms; ${acceptedDuring} batches accepted meanwhile`,
    )

    // every read answered within 10 s, and once the pool's connections were stuck, with a 503 (never a 500)
    expect(worst(reads)).toBeLessThan(10_000)
    expect(reads.every((r) => r.status === 200 || r.status === 503)).toBe(true)
    expect(reads.filter((r) => r.status === 503).length).toBeGreaterThan(0)
    for (const r of reads.filter((x) => x.status === 503)) expect(r.body.error).toBe('unavailable')
    // readyz within 5 s, naming the part with a fixed word, never an error's text
    expect(worst(probes)).toBeLessThan(5_000)
    expect(probes.some((p) => p.status === 503 && p.checks?.postgres !== 'ok')).toBe(true)
    for (const p of probes) for (const v of Object.values(p.checks ?? {})) expect(['ok', 'timeout', 'unavailable', 'not pulling', 'migrations pending']).toContain(v)
    expect(probes.filter((p) => p.status === 503).every((p) => p.checks?.nats === 'ok')).toBe(true)
    // the api needs no database to take a batch
    expect(acceptedDuring).toBeGreaterThan(0)

    await eventually(async () => (await s.readyz()).status === 200, 60_000, 'readyz to be 200 again')
    await poster.stop()
    await waitForIdle(s.env.nats, s.env.config.HPH_PREFIX, { timeoutMs: 120_000 })
    expect(alive(s.up)).toBe(true)
    expect(poster.attempts.filter((a) => a.status !== 202)).toEqual([])
    await expectEveryAcceptedSampleOnce(s, 'hang', poster.accepted)
  })

  it('after the outages, SIGTERM still drains and exits 0', async () => {
    const s = stack!
    showOnFailure(s.up, 'hph up')
    s.up.child.kill('SIGTERM')
    expect(await exitWithin(s.up, 15_000)).toMatchObject({ code: 0, signal: null })
  })
})
