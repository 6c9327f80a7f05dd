import { randomBytes, randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { demoBatches } from '../../cli/demo-data.ts'
import { STAGES, startPipeline, waitForIdle, type Pipeline } from '../../pipeline/start.ts'
import { eraseUser } from '../../privacy/erase.ts'
import { exportUser } from '../../privacy/export.ts'
import { userMessages } from '../../privacy/messages.ts'
import { userRef } from '../../streams/audit.ts'
import { decodeJson } from '../../streams/envelope.ts'
import { closeDb, createDb } from '../../schema/db.ts'
import { STREAM_KEYS, streamName, subjects } from '../../streams/subjects.ts'
import { eventually, testEnv, type TestEnv } from '../helpers/env.ts'
import { runHph } from '../helpers/processes.ts'

// docs/architecture.md §9.5 and docs/operating.md §7: export returns everything posted; after `hph user erase`, no message
// in any stream and no row in any table holds the user id; other users are untouched; erasing is idempotent.

const ADMIN = 'erase-admin-key'
const VICTIM_KEY = 'erase-victim-key'
const KEEPER_KEY = 'erase-keeper-key'
const victim = `victim-${randomBytes(5).toString('hex')}`
const keeper = `keeper-${randomBytes(5).toString('hex')}`

let env: TestEnv
let p: Pipeline

beforeAll(async () => {
  env = await testEnv({ HPH_API_KEYS: `${ADMIN}:admin,${VICTIM_KEY}:user:${victim},${KEEPER_KEY}:user:${keeper}`, HPH_AUDIT_DENIED_WINDOW_S: '1' })
  p = await startPipeline(env.config, env.log, { stages: STAGES, api: true, prepare: true })
})
afterAll(async () => {
  await p?.stop()
  await env?.cleanup()
})

/** The demo nights of a user, every sample with a HealthKit uuid (the canonical sample id). */
function batchesOf(userId: string, seed: number) {
  return demoBatches({ userId, nights: 8, firstNight: '2026-02-01', seed, batchSize: 40 }).map((b) => ({ ...b, samples: b.samples.map((s) => ({ ...s, uuid: randomUUID() })) }))
}

async function post(userId: string, body: unknown, token = ADMIN) {
  const res = await fetch(`${p.url}/v1/users/${userId}/samples`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  expect(res.status).toBe(202)
  return (await res.json()) as { accepted: number; rejected: unknown[] }
}

const hph = (args: string[]) => runHph(args, { DATABASE_URL: env.config.DATABASE_URL, HPH_PREFIX: env.config.HPH_PREFIX })

/** Every message of every stream (any subject), read whole: subject, bytes, and any base64 payload decoded. */
async function allMessages(): Promise<Array<{ stream: string; subject: string; text: string }>> {
  const out: Array<{ stream: string; subject: string; text: string }> = []
  for (const key of STREAM_KEYS) {
    const stream = streamName(env.config.HPH_PREFIX, key)
    for await (const m of userMessages(env.nats, stream, `${env.config.HPH_PREFIX}.${key.toLowerCase()}.>`, { withData: true })) {
      const text = Buffer.from(m.data).toString()
      const base64 = [...text.matchAll(/"payloadBase64"\s*:\s*"([A-Za-z0-9+/=]*)"/g)].map((x) => Buffer.from(x[1] as string, 'base64').toString())
      out.push({ stream, subject: m.subject, text: [text, ...base64].join('\n') })
    }
  }
  return out
}

/** Rows of every table of the schema (whatever its columns) whose text holds `needle`, per table. */
async function rowsHolding(needle: string): Promise<Record<string, number>> {
  const tables = await sql<{ t: string }>`select c.relname as t from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = ${env.config.HPH_DB_SCHEMA} and c.relkind in ('r', 'p') and not c.relispartition`.execute(p.db)
  expect(tables.rows.length).toBeGreaterThan(8)
  const out: Record<string, number> = {}
  for (const { t } of tables.rows) {
    const r = await sql<{ n: number }>`select count(*)::int as n from ${sql.id(env.config.HPH_DB_SCHEMA, t)} x where x::text like ${`%${needle}%`}`.execute(p.db)
    out[t] = r.rows[0]?.n ?? 0
  }
  return out
}

const total = (r: Record<string, number>) => Object.values(r).reduce((a, n) => a + n, 0)

describe('user export and erase', () => {
  const posted = new Set<string>()
  let keeperBefore: { rows: Record<string, number>; messages: number }

  it('exports, as NDJSON, every sample that was posted, the raw batches and the insight rows', async () => {
    const victimBatches = batchesOf(victim, 1)
    for (const b of victimBatches) {
      await post(victim, b)
      for (const s of b.samples) posted.add(s.uuid)
    }
    // a rejected sample: its dead letter names the user too
    await post(victim, {
      batchId: 'with-a-bad-one',
      samples: [{ type: 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN', value: 9000, unit: 'ms', startDate: '2026-02-03T02:00:00Z', endDate: '2026-02-03T02:01:00Z' }],
    })
    for (const b of batchesOf(keeper, 2)) await post(keeper, b)
    // another user tries the victim's data (denied, audited under the victim), the victim writes once itself
    expect((await fetch(`${p.url}/v1/users/${victim}/export`, { headers: { authorization: `Bearer ${KEEPER_KEY}`, 'x-request-id': 'keeper-tries' } })).status).toBe(403)
    await post(
      victim,
      {
        batchId: 'own-write',
        samples: [{ type: 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN', value: 40, unit: 'ms', startDate: '2026-02-04T02:00:00Z', endDate: '2026-02-04T02:01:00Z' }],
      },
      VICTIM_KEY,
    )
    const auditOf = async () => {
      const out: Array<Record<string, unknown>> = []
      for await (const m of userMessages(env.nats, streamName(env.config.HPH_PREFIX, 'AUDIT'), subjects.ofUserIn(env.config.HPH_PREFIX, 'AUDIT', victim), { withData: true }))
        out.push((decodeJson(m.data) as { data: Record<string, unknown> }).data)
      return out
    }
    await eventually(async () => (await auditOf()).some((a) => a.action === 'denied' && a.actor === 'key#3'), 15_000, "the keeper's denied event")
    await waitForIdle(p.nats, env.config.HPH_PREFIX, { timeoutMs: 120_000 })

    const before = await rowsHolding(victim)
    for (const t of ['samples', 'hrv_daily', 'sleep_daily', 'readiness_daily', 'user_baselines', 'user_cpt_tables', 'baseline_history']) expect(before[t], t).toBeGreaterThan(0)

    // the user's own token may export its own data
    const res = await fetch(`${p.url}/v1/users/${victim}/export`, { headers: { authorization: `Bearer ${VICTIM_KEY}` } })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toContain('application/x-ndjson')
    const lines = (await res.text())
      .trimEnd()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as {
            kind: string
            stream?: string
            table?: string
            row?: Record<string, unknown>
            event?: { data?: { payload?: { samples?: Array<{ uuid: string }> } } }
            rows?: Record<string, number>
          },
      )
    expect(lines[0]).toMatchObject({ kind: 'export', format: 'hph.export.v1', userId: victim })
    const end = lines.at(-1)!
    expect(end.kind).toBe('end')
    const exportedSamples = new Set(lines.filter((l) => l.kind === 'row' && l.table === 'samples').map((l) => l.row?.sample_id as string))
    for (const id of posted) expect(exportedSamples.has(id), id).toBe(true)
    const rawUuids = new Set(
      lines
        .filter((l) => l.kind === 'message' && l.stream === streamName(env.config.HPH_PREFIX, 'INGEST'))
        .flatMap((l) => l.event?.data?.payload?.samples?.map((s) => s.uuid) ?? []),
    )
    for (const id of posted) expect(rawUuids.has(id), id).toBe(true)
    // every insight table, table by table, with the counts the database holds
    for (const t of ['hrv_daily', 'sleep_daily', 'readiness_daily', 'baseline_history', 'user_baselines', 'user_cpt_tables', 'samples']) {
      expect(lines.filter((l) => l.kind === 'row' && l.table === t).length, t).toBe(before[t])
      expect(end.rows?.[t], t).toBe(before[t])
    }
    expect(lines.some((l) => l.kind === 'message' && l.stream === streamName(env.config.HPH_PREFIX, 'DLQ'))).toBe(true)
    // nobody else's rows
    expect(lines.some((l) => JSON.stringify(l).includes(keeper))).toBe(false)
    // nor another principal: the audit trail says what was done to the user's data, not by which admin or other user, from where
    const audits = lines
      .filter((l) => l.kind === 'message' && l.stream === streamName(env.config.HPH_PREFIX, 'AUDIT'))
      .map((l) => (l.event as { data: Record<string, unknown> }).data)
    expect(audits.length).toBeGreaterThan(victimBatches.length)
    for (const a of audits.filter((x) => x.actor !== 'key#2')) {
      expect(a.ip).toBeUndefined()
      expect(a.requestId).toBeUndefined()
      expect(['an administrator', 'another user']).toContain(a.actor)
    }
    expect(audits.filter((a) => a.action === 'denied').map((a) => a.actor)).toEqual(['another user'])
    expect(audits.filter((a) => a.actor === 'key#2')).toMatchObject([{ action: 'write', ip: '127.0.0.1' }])
    const text = lines.map((l) => JSON.stringify(l)).join('\n')
    for (const other of ['key#1', 'key#3', 'keeper-tries']) expect(text).not.toContain(other)
    // read in small pages (keyset pagination), the same rows in the same order
    const paged = []
    for await (const l of exportUser({ nats: p.nats, db: p.db, prefix: env.config.HPH_PREFIX, schema: env.config.HPH_DB_SCHEMA, pageSize: 7 }, victim))
      if (l.kind === 'row') paged.push(JSON.parse(JSON.stringify(l)))
    expect(paged).toEqual(lines.filter((l) => l.kind === 'row'))
  })

  it('after hph user erase, no message in any stream and no row in any table holds the user id; the others are untouched', async () => {
    keeperBefore = { rows: await rowsHolding(keeper), messages: (await allMessages()).filter((m) => m.text.includes(keeper) || m.subject.includes(keeper)).length }
    expect(total(keeperBefore.rows)).toBeGreaterThan(0)
    expect((await allMessages()).some((m) => m.subject.endsWith(victim))).toBe(true)

    // in flight while the erase starts: a batch the stages have not finished yet
    await post(victim, { batchId: 'late', samples: batchesOf(victim, 3)[0]!.samples })
    const r = await hph(['user', 'erase', victim])
    expect(r.code, r.out).toBe(0)
    const report = JSON.parse(r.out.trim().split('\n').at(-1)!) as { complete: boolean; rounds: number; purged: Record<string, number>; deleted: Record<string, number> }
    expect(report.complete).toBe(true)
    expect(report.deleted.samples).toBeGreaterThan(0)

    // whatever the live pipeline still finishes afterwards must not bring anything back
    await waitForIdle(p.nats, env.config.HPH_PREFIX, { timeoutMs: 60_000 })
    await new Promise((r) => setTimeout(r, 500))
    const leftMessages = (await allMessages()).filter((m) => m.subject.includes(victim) || m.text.includes(victim))
    expect(leftMessages.map((m) => `${m.stream} ${m.subject}`)).toEqual([])
    const leftRows = await rowsHolding(victim)
    expect(Object.entries(leftRows).filter(([, n]) => n > 0)).toEqual([])

    expect(await rowsHolding(keeper)).toEqual(keeperBefore.rows)
    expect((await allMessages()).filter((m) => m.text.includes(keeper) || m.subject.includes(keeper)).length).toBeGreaterThanOrEqual(keeperBefore.messages)
  })

  it('keeps the erase in the audit trail under a one-way reference, never the id', async () => {
    const erases = (await allMessages()).filter((m) => m.stream === streamName(env.config.HPH_PREFIX, 'AUDIT') && m.subject.includes('.erase.'))
    expect(erases.length).toBeGreaterThanOrEqual(1)
    expect(erases[0]!.subject).toBe(`${env.config.HPH_PREFIX}.audit.v1.erase.${userRef(env.config.HPH_USER_REF_SECRET!, victim)}`)
    const data = (decodeJson(Buffer.from(erases[0]!.text.split('\n')[0] as string)) as { data: Record<string, unknown> }).data
    expect(data).toMatchObject({ action: 'erase', actorKind: 'admin', userRef: userRef(env.config.HPH_USER_REF_SECRET!, victim), outcome: 'ok', operation: 'hph user erase' })
    expect(String(data.actor)).toMatch(/^cli:/)
  })

  it('is idempotent: erasing again (DELETE /v1/users/:userId, admin) finds nothing and succeeds', async () => {
    const res = await fetch(`${p.url}/v1/users/${victim}`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}` } })
    expect(res.status).toBe(200)
    const body = (await res.json()) as { complete: boolean; purged: Record<string, number>; deleted: Record<string, number> }
    expect(body.complete).toBe(true)
    expect(total(body.purged) + total(body.deleted)).toBe(0)
    const unknown = await fetch(`${p.url}/v1/users/never-seen`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}` } })
    expect(unknown.status).toBe(200)
    // what many HTTP clients send: a JSON content type and no body
    const typed = await fetch(`${p.url}/v1/users/never-seen`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' } })
    expect(typed.status).toBe(200)
    expect(((await typed.json()) as { complete: boolean }).complete).toBe(true)
    expect(total(await rowsHolding(victim))).toBe(0)
    expect(await rowsHolding(keeper)).toEqual(keeperBefore.rows)
  })

  it("leaves nothing when the erase starts while every stage still has the user's batches in hand", async () => {
    const racer = `racer-${randomBytes(5).toString('hex')}`
    const bystander = `bystander-${randomBytes(5).toString('hex')}`
    const batches = demoBatches({ userId: racer, nights: 30, firstNight: '2026-03-01', seed: 9, batchSize: 200 })
    const theirs = demoBatches({ userId: bystander, nights: 30, firstNight: '2026-03-01', seed: 10, batchSize: 200 })
    // another user's batches in the same streams, not yet processed: the erase must not make the stages skip them
    const answers = await Promise.all([...batches.map((b) => post(racer, b)), ...theirs.map((b) => post(bystander, b))])
    const bystanderAccepted = answers.slice(batches.length).reduce((a, r) => a + r.accepted, 0)
    // no waiting: normalize, the writers and the engine are busy with them while the erase runs
    const report = await eraseUser(
      { nats: p.nats, db: p.db, prefix: env.config.HPH_PREFIX, schema: env.config.HPH_DB_SCHEMA, log: env.log, userRefSecret: env.config.HPH_USER_REF_SECRET! },
      racer,
    )
    expect(report.complete, JSON.stringify(report)).toBe(true)
    await waitForIdle(p.nats, env.config.HPH_PREFIX, { timeoutMs: 60_000 })
    await new Promise((r) => setTimeout(r, 500))
    expect((await allMessages()).filter((m) => m.subject.includes(racer) || m.text.includes(racer)).map((m) => `${m.stream} ${m.subject}`)).toEqual([])
    expect(Object.entries(await rowsHolding(racer)).filter(([, n]) => n > 0)).toEqual([])
    const kept = await sql<{ n: number }>`select count(*)::int as n from samples where user_id = ${bystander}`.execute(p.db)
    expect(kept.rows[0]?.n).toBe(bystanderAccepted)
    expect((await rowsHolding(bystander)).readiness_daily).toBeGreaterThan(0)
  })

  it('writes the export to a file with hph user export', async () => {
    const file = `/tmp/hph-export-${keeper}.ndjson`
    const r = await hph(['user', 'export', keeper, '--out', file])
    expect(r.code, r.out).toBe(0)
    const { readFile, rm } = await import('node:fs/promises')
    const lines = (await readFile(file, 'utf8'))
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; table?: string })
    await rm(file)
    expect(lines.filter((l) => l.kind === 'row' && l.table === 'samples').length).toBe(keeperBefore.rows.samples)
  })

  it('erases at once, without waiting for stages, when no stage is running', async () => {
    await p.stop()
    const offline = `offline-${randomBytes(5).toString('hex')}`
    await env.nats.js.publish(subjects.ingest(env.config.HPH_PREFIX, 'healthkit', offline), JSON.stringify({ not: 'processed yet' }), { msgID: `offline-${offline}` })
    // and work the insights engine has not done: HPH_CHANGES is a work queue (no second consumer may read it)
    await env.nats.js.publish(subjects.changes(env.config.HPH_PREFIX, offline), JSON.stringify({ days: ['2026-03-01'] }), { msgID: `offline-changes-${offline}` })
    const { db, pool } = createDb(env.config, { max: 2 })
    try {
      const lines = []
      for await (const l of exportUser({ nats: env.nats, db, prefix: env.config.HPH_PREFIX, schema: env.config.HPH_DB_SCHEMA }, offline)) lines.push(l)
      expect(
        lines
          .filter((l) => l.kind === 'message')
          .map((l) => (l as { stream: string }).stream)
          .sort(),
      ).toEqual([streamName(env.config.HPH_PREFIX, 'CHANGES'), streamName(env.config.HPH_PREFIX, 'INGEST')].sort())
      const t0 = Date.now()
      const report = await eraseUser(
        { nats: env.nats, db, prefix: env.config.HPH_PREFIX, schema: env.config.HPH_DB_SCHEMA, log: env.log, userRefSecret: env.config.HPH_USER_REF_SECRET! },
        offline,
        { settleTimeoutMs: 60_000 },
      )
      expect(report).toMatchObject({ complete: true })
      expect(report.purged[streamName(env.config.HPH_PREFIX, 'INGEST')]).toBe(1)
      expect(report.purged[streamName(env.config.HPH_PREFIX, 'CHANGES')]).toBe(1)
      expect(Date.now() - t0).toBeLessThan(20_000)
      expect((await allMessages()).filter((m) => m.subject.includes(offline))).toEqual([])
    } finally {
      await closeDb(db, pool)
    }
  })
})
