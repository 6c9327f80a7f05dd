import { randomBytes, randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { demoBatches } from '../../cli/demo-data.ts'
import { STAGES, startPipeline, waitForIdle, type Pipeline } from '../../pipeline/start.ts'
import { eraseUser } from '../../privacy/erase.ts'
import { clearErasing, markErasing } from '../../privacy/erasing.ts'
import { userMessages } from '../../privacy/messages.ts'
import { userTables } from '../../privacy/tables.ts'
import { rebuildProjection } from '../../projections/rebuild.ts'
import { rebuildLockKey } from '../../schema/locks.ts'
import { inTransaction } from '../../schema/transaction.ts'
import { userRef } from '../../streams/audit.ts'
import { decodeJson } from '../../streams/envelope.ts'
import { streamName } from '../../streams/subjects.ts'
import { eventually, testEnv, type TestEnv } from '../helpers/env.ts'

// docs/operating.md §7: an erase holds the rebuild locks (a rebuild in flight cannot bring the user back),
// refuses writes for the user while it runs (409 erasure_in_progress), and answers 503 with its report, audited as
// failed, when it could not finish.

const ADMIN = 'erase-guards-admin-key-0123456789abcdef'
const LOCK_TIMEOUT_MS = 8_000

let env: TestEnv
let p: Pipeline

beforeAll(async () => {
  env = await testEnv({ HPH_API_KEYS: `${ADMIN}:admin`, HPH_ERASE_LOCK_TIMEOUT_MS: String(LOCK_TIMEOUT_MS) })
  p = await startPipeline(env.config, env.log, { stages: STAGES, api: true, prepare: true })
})
afterAll(async () => {
  await p?.stop()
  await env?.cleanup()
})

const auth = { authorization: `Bearer ${ADMIN}` }

async function postSamples(userId: string, body: unknown): Promise<Response> {
  return fetch(`${p.url}/v1/users/${userId}/samples`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) })
}

async function load(userId: string, seed: number): Promise<void> {
  for (const b of demoBatches({ userId, nights: 6, firstNight: '2026-02-01', seed, batchSize: 60 })) {
    const res = await postSamples(userId, { ...b, samples: b.samples.map((s) => ({ ...s, uuid: randomUUID() })) })
    expect(res.status).toBe(202)
  }
}

const samplesOf = async (userId: string) => (await sql<{ n: number }>`select count(*)::int as n from samples where user_id = ${userId}`.execute(p.db)).rows[0]?.n ?? 0

const erase = (userId: string) => fetch(`${p.url}/v1/users/${userId}`, { method: 'DELETE', headers: auth })

/** The erase events of a user in HPH_AUDIT (under its userRef), oldest first. */
async function eraseEvents(userId: string): Promise<Array<Record<string, unknown>>> {
  const out: Array<Record<string, unknown>> = []
  const ref = userRef(env.config.HPH_USER_REF_SECRET!, userId)
  for await (const m of userMessages(env.nats, streamName(env.config.HPH_PREFIX, 'AUDIT'), `${env.config.HPH_PREFIX}.audit.v1.erase.${ref}`, { withData: true })) {
    out.push((decodeJson(m.data) as { data: Record<string, unknown> }).data)
  }
  return out
}

describe('erase beside a rebuild', () => {
  it("waits for a rebuild in flight (holding its lock), refuses the user's writes meanwhile, and leaves nothing of the user once both are done", async () => {
    const victim = `victim-${randomBytes(4).toString('hex')}`
    const keeper = `keeper-${randomBytes(4).toString('hex')}`
    await load(victim, 1)
    await load(keeper, 2)
    await waitForIdle(p.nats, env.config.HPH_PREFIX, { timeoutMs: 60_000 })
    const keeperRows = await samplesOf(keeper)
    expect(await samplesOf(victim)).toBeGreaterThan(0)

    // a rebuild of samples that has read every message (the victim's too) into its shadow, held there
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    let paused!: () => void
    const pausedAt = new Promise<void>((r) => (paused = r))
    let first = true
    const rebuild = rebuildProjection({
      nats: env.nats,
      db: p.db,
      pool: p.pool,
      prefix: env.config.HPH_PREFIX,
      schema: env.config.HPH_DB_SCHEMA,
      log: env.log,
      projection: 'samples',
      onProgress: async () => {
        if (!first) return
        first = false
        paused()
        await gate
      },
    })
    await pausedAt

    let answered = false
    const erasing = erase(victim).then(async (res) => {
      answered = true
      return { status: res.status, body: (await res.json()) as { complete: boolean } }
    })
    // while it waits for the rebuild, the user's writes are refused
    await eventually(
      async () => (await postSamples(victim, demoBatches({ userId: victim, nights: 1, firstNight: '2026-03-01', seed: 3, batchSize: 10 })[0])).status === 409,
      10_000,
      'a 409 for the victim',
    )
    const refused = await postSamples(victim, demoBatches({ userId: victim, nights: 1, firstNight: '2026-03-01', seed: 3, batchSize: 10 })[0])
    expect(refused.status).toBe(409)
    expect(((await refused.json()) as { error: string }).error).toBe('erasure_in_progress')
    // another user's are not
    expect((await postSamples(keeper, { samples: [] })).status).not.toBe(409)
    await new Promise((r) => setTimeout(r, 1_000))
    expect(answered).toBe(false)
    expect(await samplesOf(victim)).toBeGreaterThan(0)

    release()
    await rebuild
    const r = await erasing
    expect(r.status).toBe(200)
    expect(r.body.complete).toBe(true)
    await waitForIdle(p.nats, env.config.HPH_PREFIX, { timeoutMs: 60_000 })
    expect(await samplesOf(victim)).toBe(0)
    expect(await samplesOf(keeper)).toBe(keeperRows)
    // and the erase is over: the user may write again
    expect((await postSamples(victim, demoBatches({ userId: victim, nights: 1, firstNight: '2026-03-01', seed: 3, batchSize: 10 })[0])).status).toBe(202)
  })
})

describe('an erase that cannot finish', () => {
  it('answers 503 with the report (complete: false, and why), audited as failed; called again once free, it completes', async () => {
    const user = `stuck-${randomBytes(4).toString('hex')}`
    await load(user, 4)
    await waitForIdle(p.nats, env.config.HPH_PREFIX, { timeoutMs: 60_000 })
    // a rebuild (another process) holds the samples lock past the erase's patience
    const holder = await p.pool.connect()
    try {
      await holder.query('select pg_advisory_lock(hashtext($1))', [rebuildLockKey(env.config.HPH_DB_SCHEMA, 'samples')])
      const t0 = Date.now()
      const res = await erase(user)
      expect(res.status).toBe(503)
      expect(Date.now() - t0).toBeGreaterThanOrEqual(LOCK_TIMEOUT_MS - 500)
      const body = (await res.json()) as { userId: string; complete: boolean; problem: string; rounds: number }
      expect(body).toMatchObject({ userId: user, complete: false, rounds: 0 })
      expect(body.problem).toContain('HPH_ERASE_LOCK_TIMEOUT_MS')
      expect(await samplesOf(user)).toBeGreaterThan(0)
      await eventually(async () => (await eraseEvents(user)).length === 1, 10_000, 'the erase event')
      expect((await eraseEvents(user))[0]).toMatchObject({ action: 'erase', outcome: 'failed', status: 503, userRef: userRef(env.config.HPH_USER_REF_SECRET!, user) })
    } finally {
      await holder.query('select pg_advisory_unlock(hashtext($1))', [rebuildLockKey(env.config.HPH_DB_SCHEMA, 'samples')])
      holder.release()
    }
    const again = await erase(user)
    expect(again.status).toBe(200)
    expect(await samplesOf(user)).toBe(0)
    await eventually(async () => (await eraseEvents(user)).length === 2, 10_000, 'the second erase event')
    expect((await eraseEvents(user))[1]).toMatchObject({ outcome: 'ok', status: 200 })
  })
})

describe('an upload running when an erase begins', () => {
  it('stops before its next batch with 409 erasure_in_progress, saying what it had stored', async () => {
    const user = `upl-${randomBytes(4).toString('hex')}`
    const erasing = { nats: env.nats, prefix: env.config.HPH_PREFIX, userRefSecret: env.config.HPH_USER_REF_SECRET! }
    const records = (from: number, n: number) =>
      Array.from({ length: n }, (_, k) => {
        const t = new Date(Date.UTC(2026, 1, 1) + (from + k) * 60_000).toISOString().replace('T', ' ').slice(0, 19)
        return `<Record type="HKQuantityTypeIdentifierHeartRate" sourceName="Apple Watch" unit="count/min" creationDate="${t} +0000" startDate="${t} +0000" endDate="${t} +0000" value="${60 + (k % 30)}"/>\n`
      }).join('')
    const enc = new TextEncoder()
    let send!: (text: string) => void
    let end!: () => void
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        send = (text) => c.enqueue(enc.encode(text))
        end = () => c.close()
      },
    })
    const answer = fetch(`${p.url}/v1/users/${user}/healthkit-export`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/xml' },
      body,
      duplex: 'half',
    } as RequestInit)
    send(`<?xml version="1.0" encoding="UTF-8"?>\n<HealthData locale="en_US">\n<ExportDate value="2026-03-01 10:00:00 +0000"/>\n${records(0, 2500)}`)
    await eventually(async () => (await samplesOf(user)) >= 2000, 60_000, 'the first two batches stored')
    await markErasing(erasing, user, Date.now() + 60_000)
    try {
      send(records(2500, 3000))
      send('</HealthData>\n')
      end()
      const res = await answer
      expect(res.status).toBe(409)
      const error = (await res.json()) as { error: string; message: string }
      expect(error.error).toBe('erasure_in_progress')
      expect(error.message).toMatch(/batch/)
      await waitForIdle(p.nats, env.config.HPH_PREFIX, { timeoutMs: 60_000 })
      expect(await samplesOf(user)).toBeLessThan(5500)
    } finally {
      await clearErasing(erasing, user)
    }
  })
})

describe('an erase beside a stage writing the same rows', () => {
  it("completes when a writer's transaction holds the user's rows of two tables and touches the first while the erase waits for the last", async () => {
    const victim = `contended-${randomBytes(4).toString('hex')}`
    await load(victim, 4)
    await waitForIdle(p.nats, env.config.HPH_PREFIX, { timeoutMs: 60_000 })
    const schema = env.config.HPH_DB_SCHEMA
    const rowsOf = async (table: string) =>
      (await sql<{ n: number }>`select count(*)::int as n from ${sql.id(schema, table)} where user_id = ${victim}`.execute(p.db)).rows[0]?.n ?? 0
    /** this database's deletes from `table` waiting for a lock */
    const deletesWaiting = async (table: string) =>
      (
        await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock' and query like ${`delete from "${schema}"."${table}"%`}`.execute(p.db)
      ).rows[0]?.n ?? 0
    const holding: string[] = []
    for (const t of await userTables(p.db, schema)) if ((await rowsOf(t.table)) > 0) holding.push(t.table)
    expect(holding.length).toBeGreaterThanOrEqual(2)
    // the erase deletes table by table in name order: the writer takes the last table's rows first, as a stage's
    // transaction over several tables may
    const first = holding[0]!
    const last = holding.at(-1)!
    let erasing: ReturnType<typeof eraseUser> | undefined
    await inTransaction(p.pool, async (writer) => {
      await writer.query(`update "${schema}"."${last}" set user_id = user_id where user_id = $1`, [victim])
      erasing = eraseUser({ nats: p.nats, db: p.db, prefix: env.config.HPH_PREFIX, schema, log: env.log, userRefSecret: env.config.HPH_USER_REF_SECRET! }, victim)
      // once the erase waits for those rows, the writer touches the first table's: had the erase kept that table's
      // rows locked in a transaction still open, PostgreSQL would find a deadlock and cancel the erase (first to wait)
      await eventually(async () => (await deletesWaiting(last)) > 0, 30_000, 'the erase waiting for the writer')
      await writer.query(`update "${schema}"."${first}" set user_id = user_id where user_id = $1`, [victim])
    })
    const report = await erasing!
    expect(report.complete, JSON.stringify(report)).toBe(true)
    for (const t of holding) expect(await rowsOf(t), t).toBe(0)
  })
})
