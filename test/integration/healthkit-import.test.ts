import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Zip, ZipDeflate } from 'fflate'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startPipeline, type Pipeline } from '../../pipeline/start.ts'
import type { ImportResult } from '../../ingest/healthkit-export/import.ts'
import type { Sample } from '../../streams/schemas.ts'
import { streamName } from '../../streams/subjects.ts'
import { eventually, testEnv, type TestEnv } from '../helpers/env.ts'
import { startNatsServer } from '../helpers/nats-server.ts'
import { exportRecords, exportSamples } from '../helpers/export-fixture.ts'
import { runHph } from '../helpers/processes.ts'

// docs/api.md §4, through the CLI and over HTTP, on real NATS and PostgreSQL.

const ADMIN = 'admin-key'
const ANA = 'ana-key'
const BATCH = 100
const FIXTURE = 'test/fixtures/healthkit-export-30-nights.xml'
const XML = readFileSync(FIXTURE)
const UNDERSTOOD = new Set(['HKCategoryTypeIdentifierSleepAnalysis', 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN'])
/** distinct canonical samples of the fixture (an independent reading of the file: the test helper's regex) */
const keyOf = (x: { sample: unknown }) => {
  const s = x.sample as Sample
  return `${s.metric}|${s.source.name}|${s.start}|${s.end}|${s.stage ?? s.value}`
}
const DISTINCT = new Set(exportSamples(XML.toString('utf8')).map(keyOf)).size

let env: TestEnv
let p: Pipeline
let dir: string

beforeAll(async () => {
  env = await testEnv({ HPH_API_KEYS: `${ADMIN}:admin,${ANA}:user:ana`, HPH_IMPORT_BATCH_SIZE: String(BATCH), HPH_MAX_BODY_BYTES: String(64 * 1024) })
  p = await startPipeline(env.config, env.log, { stages: ['normalize', 'samples-writer'], api: true, prepare: true })
  dir = await mkdtemp(join(tmpdir(), 'hph-import-'))
})
afterAll(async () => {
  await p?.stop()
  await env?.cleanup()
  if (dir) await rm(dir, { recursive: true, force: true })
})

const hph = (args: string[]) => runHph(args, { DATABASE_URL: env.config.DATABASE_URL, HPH_PREFIX: env.config.HPH_PREFIX, HPH_IMPORT_BATCH_SIZE: String(BATCH) })

const rowsOf = async (userId: string) => (await sql<{ n: number }>`select count(*)::int as n from samples where user_id = ${userId}`.execute(p.db)).rows[0]?.n ?? 0
const ingestMessages = async () => (await env.nats.jsm.streams.info(streamName(env.config.HPH_PREFIX, 'INGEST'))).state.messages
/** waits for the rows, then a little more, and says how many there are (none may come late) */
async function settledRows(userId: string, expected: number): Promise<number> {
  await eventually(async () => (await rowsOf(userId)) >= expected, 60_000, `${expected} rows for ${userId}`)
  await new Promise((r) => setTimeout(r, 500))
  return rowsOf(userId)
}

function post(userId: string, body: Uint8Array, contentType: string, token: string | null = ADMIN) {
  return fetch(`${p.url}/v1/users/${userId}/healthkit-export`, {
    method: 'POST',
    headers: { 'content-type': contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body,
  })
}

function expectFixtureCounts(r: ImportResult): void {
  expect(r.types).toEqual({
    HKCategoryTypeIdentifierSleepAnalysis: { read: 436, accepted: 436, rejected: 0 },
    HKQuantityTypeIdentifierHeartRateVariabilitySDNN: { read: 92, accepted: 92, rejected: 0 },
  })
  expect(r.skippedRecords).toEqual({ HKQuantityTypeIdentifierStepCount: 30 })
  expect(r.otherElements).toMatchObject({ ActivitySummary: 1 })
  expect(r).toMatchObject({ records: 528, accepted: 528, rejected: 0, batches: Math.ceil(528 / BATCH) })
}

describe('hph import healthkit', () => {
  it('imports the 30-nights export into HPH_INGEST; normalize and the writer make it the expected rows', async () => {
    const before = await ingestMessages()
    const r = await hph(['import', 'healthkit', FIXTURE, '--user', 'cli-ana', '--json'])
    expect(r.code, r.stderr).toBe(0)
    const result = JSON.parse(r.stdout) as ImportResult & { peakRssBytes: number }
    expectFixtureCounts(result)
    expect(result).toMatchObject({ published: 6, duplicates: 0, stream: streamName(env.config.HPH_PREFIX, 'INGEST') })
    expect(await ingestMessages()).toBe(before + 6)
    expect(await settledRows('cli-ana', DISTINCT)).toBe(DISTINCT)

    // spot checks against the file: the first HRV record and the first iPhone in-bed sample
    const hrv = (
      await sql<{ value: number; utc_offset_min: number; start: string; device: string }>`
      select value, utc_offset_min, to_char(start_ts at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') as start, device
      from samples where user_id = 'cli-ana' and metric = 'hrv_sdnn' order by start_ts limit 1`.execute(p.db)
    ).rows[0]
    expect(hrv).toMatchObject({ value: 38.9, utc_offset_min: -480, start: '2026-03-01T08:00:00' })
    expect(hrv!.device).toContain('hardware:Watch6,2')
    const stages = (
      await sql<{ stage: string; n: number }>`
      select stage, count(*)::int as n from samples where user_id = 'cli-ana' and metric = 'sleep_stage' group by stage order by stage`.execute(p.db)
    ).rows
    const fileStages = exportSamples(XML.toString('utf8'))
      .filter((s) => s.sample.stage)
      .reduce<Record<string, number>>((m, s) => ({ ...m, [s.sample.stage!]: (m[s.sample.stage!] ?? 0) + 1 }), {})
    expect(Object.fromEntries(stages.map((s) => [s.stage, s.n]))).toEqual(fileStages)
  })

  it('imports the same export again as nothing new: zero messages in HPH_INGEST, zero rows', async () => {
    const before = await ingestMessages()
    const r = await hph(['import', 'healthkit', FIXTURE, '--user', 'cli-ana'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/HKCategoryTypeIdentifierSleepAnalysis\s+436\s+436\s+0\s+0/)
    expect(r.stdout).toContain('528 records in 6 batches')
    expect(r.stdout).toContain('0 new, 6 already there')
    expect(r.stderr).toContain('import |') // the progress bar
    expect(await ingestMessages()).toBe(before)
    expect(await settledRows('cli-ana', DISTINCT)).toBe(DISTINCT)
  })

  it('stops at a truncated file with exit 1, naming the byte and line, having stored exactly the whole batches before it', async () => {
    const cut = 150_000
    const path = join(dir, 'truncated.xml')
    await writeFile(path, XML.subarray(0, cut))
    const complete = exportRecords(XML.subarray(0, cut).toString('utf8')).filter((r) => UNDERSTOOD.has(r.type ?? '')).length
    const whole = Math.floor(complete / BATCH)
    expect(whole).toBeGreaterThan(0)
    const before = await ingestMessages()
    const r = await hph(['import', 'healthkit', path, '--user', 'cli-trunc', '--json'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(new RegExp(`ends at byte ${cut} \\(line \\d+, column \\d+\\).*truncated.*${whole} whole batches \\(${whole * BATCH} records\\) before it were stored`))
    expect(JSON.parse(r.stdout)).toMatchObject({ error: 'export_malformed', batches: whole, records: whole * BATCH })
    expect(await ingestMessages()).toBe(before + whole)
    const firstRecords = exportSamples(XML.toString('utf8'))
      .slice(0, whole * BATCH)
      .map(keyOf)
    expect(await settledRows('cli-trunc', new Set(firstRecords).size)).toBe(new Set(firstRecords).size)
  })

  it('refuses a bad command line with exit 2', async () => {
    expect((await hph(['import', 'healthkit', FIXTURE])).code).toBe(2)
    expect((await hph(['import', 'healthkit', FIXTURE, '--user', 'not a user'])).code).toBe(2)
    expect((await hph(['import', 'fitbit', FIXTURE, '--user', 'ana'])).code).toBe(2)
  })

  it('counts every bad record by type, with its line and problem (the parse thread checks them as normalize does)', async () => {
    // records made bad in three ways normalize names, each remembered with its line
    const spoiled: Array<{ line: number; problem: RegExp }> = []
    let n = 0
    const lines = XML.toString('utf8')
      .split('\n')
      .map((line, i) => {
        if (!line.includes('<Record type="HKQuantityTypeIdentifierHeartRateVariabilitySDNN"') && !line.includes('<Record type="HKCategoryTypeIdentifierSleepAnalysis"')) return line
        n++
        const bad =
          n % 29 === 0
            ? { line: line.replace('unit="ms"', 'unit="furlongs"'), problem: /^unknown unit 'furlongs'/ }
            : n % 31 === 0
              ? { line: line.replace(/value="[\d.]+"/, 'value="900"'), problem: /^value out of range 1\.\.500 ms$/ }
              : n % 37 === 0
                ? { line: line.replace(/endDate="\d{4}/, 'endDate="2099'), problem: /^date later than now/ }
                : undefined
        if (!bad || bad.line === line) return line
        spoiled.push({ line: i + 1, problem: bad.problem })
        return bad.line
      })
    expect(spoiled.length).toBeGreaterThan(10)
    const path = join(dir, 'spoiled.xml')
    await writeFile(path, lines.join('\n'))
    const r = await hph(['import', 'healthkit', path, '--user', 'cli-spoiled', '--json'])
    expect(r.code, r.stderr).toBe(0)
    const result = JSON.parse(r.stdout) as ImportResult
    expect(result).toMatchObject({ records: 528, accepted: 528 - spoiled.length, rejected: spoiled.length })
    const types = Object.values(result.types)
    expect(types.reduce((m, t) => m + t.rejected, 0)).toBe(spoiled.length)
    expect(types.reduce((m, t) => m + t.accepted, 0)).toBe(528 - spoiled.length)
    // batches are answered in the order their publishes are acknowledged: the rejections by line
    const byLine = [...result.rejections].sort((a, b) => a.line - b.line)
    expect(byLine.map((x) => x.line)).toEqual(spoiled.map((x) => x.line))
    byLine.forEach((x, i) => expect(x.problem).toMatch(spoiled[i]!.problem))
  })

  it("stores a batch larger than the server's max_payload as parts, with the same counts and rows", async () => {
    const server = await startNatsServer(undefined, { maxPayload: 64 * 1024 })
    const small = await testEnv({ NATS_URL: server.url })
    const sp = await startPipeline(small.config, small.log, { stages: ['normalize', 'samples-writer'], api: false, prepare: true })
    try {
      const run = () =>
        runHph(['import', 'healthkit', FIXTURE, '--user', 'parts', '--json'], {
          DATABASE_URL: small.config.DATABASE_URL,
          HPH_PREFIX: small.config.HPH_PREFIX,
          NATS_URL: server.url,
          HPH_IMPORT_BATCH_SIZE: '1000',
        })
      const r = await run()
      expect(r.code, r.stderr).toBe(0)
      const result = JSON.parse(r.stdout) as ImportResult
      expect(result).toMatchObject({ records: 528, accepted: 528, rejected: 0, batches: 1, published: 1 })
      const stored = (await small.nats.jsm.streams.info(streamName(small.config.HPH_PREFIX, 'INGEST'))).state
      expect(stored.messages).toBeGreaterThan(3)
      const rows = async () => (await sql<{ n: number }>`select count(*)::int as n from samples where user_id = 'parts'`.execute(sp.db)).rows[0]?.n ?? 0
      await eventually(async () => (await rows()) >= DISTINCT, 60_000, 'the rows of every part')
      expect(await rows()).toBe(DISTINCT)
      // again: every part is a duplicate
      expect(JSON.parse((await run()).stdout)).toMatchObject({ batches: 1, published: 0, duplicates: 1 })
      expect((await small.nats.jsm.streams.info(streamName(small.config.HPH_PREFIX, 'INGEST'))).state.messages).toBe(stored.messages)
    } finally {
      await sp.stop()
      await small.cleanup()
      await server.close()
    }
  })
})

function zipOf(name: string, bytes: Uint8Array): Uint8Array {
  const out: Uint8Array[] = []
  const zip = new Zip((err, data) => {
    if (err) throw err
    out.push(data)
  })
  const f = new ZipDeflate(name, { level: 6 })
  zip.add(f)
  f.push(bytes, true)
  zip.end()
  return Buffer.concat(out)
}

describe('POST /v1/users/:userId/healthkit-export', () => {
  it('streams export.xml (far over the /samples body limit) into HPH_INGEST and answers 202 with the counts per type', async () => {
    expect(XML.length).toBeGreaterThan(64 * 1024)
    const before = await ingestMessages()
    const res = await post('http-ana', XML, 'application/xml')
    const body = (await res.json()) as ImportResult
    expect(res.status, JSON.stringify(body)).toBe(202)
    expectFixtureCounts(body)
    expect(body.published).toBe(6)
    expect(await ingestMessages()).toBe(before + 6)
    expect(await settledRows('http-ana', DISTINCT)).toBe(DISTINCT)
  })

  it('adds nothing when the same export is uploaded again, also as export.zip (the same batches, so the same event ids)', async () => {
    const before = await ingestMessages()
    const again = (await (await post('http-ana', XML, 'application/xml; charset=utf-8')).json()) as ImportResult
    expect(again).toMatchObject({ published: 0, duplicates: 6 })
    const zipped = await post('http-ana', zipOf('apple_health_export/export.xml', XML), 'application/zip')
    expect(zipped.status).toBe(202)
    expect((await zipped.json()) as ImportResult).toMatchObject({ published: 0, duplicates: 6, records: 528 })
    expect(await ingestMessages()).toBe(before)
    expect(await settledRows('http-ana', DISTINCT)).toBe(DISTINCT)
  })

  it('answers 400 with the error body of docs/api.md §1 for a truncated zip, saying which whole batches were stored', async () => {
    const zip = zipOf('apple_health_export/export.xml', XML)
    const res = await post('http-trunc', zip.subarray(0, Math.floor(zip.length / 2)), 'application/zip')
    expect(res.status).toBe(400)
    const body = (await res.json()) as { error: string; message: string; details: unknown[] }
    expect(body.error).toBe('export_malformed')
    expect(body.message).toMatch(/truncated.*; \d+ whole batch(es)? \(\d+ records\) before it (was|were) stored/)
    expect(Array.isArray(body.details)).toBe(true)
  })

  it('parses at most HPH_MAX_CONCURRENT_IMPORTS (2) uploads at once: a third is asked to come back (503, Retry-After), and is taken once one is done', async () => {
    // two uploads whose bodies arrive in two halves, the second held back
    const before = await ingestMessages()
    const held = [0, 1].map((i) => {
      let release!: () => void
      const released = new Promise<void>((resolve) => (release = resolve))
      const half = Math.floor(XML.length / 2)
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(XML.subarray(0, half))
          await released
          controller.enqueue(XML.subarray(half))
          controller.close()
        },
      })
      const response = fetch(`${p.url}/v1/users/held-${i}/healthkit-export`, {
        method: 'POST',
        headers: { 'content-type': 'application/xml', authorization: `Bearer ${ADMIN}` },
        body,
        duplex: 'half',
      } as RequestInit)
      return { release, response }
    })
    // both are being imported: each first half (276 records) has given 2 whole batches of 100
    await eventually(async () => (await ingestMessages()) >= before + 4, 30_000, 'the first halves of both uploads in HPH_INGEST')
    const third = await post('held-2', XML, 'application/xml')
    expect(third.status).toBe(503)
    expect(third.headers.get('retry-after')).toBe('30')
    expect(((await third.json()) as { error: string; message: string }).error).toBe('busy')
    for (const h of held) h.release()
    for (const h of held) {
      const res = await h.response
      expect(res.status).toBe(202)
      expectFixtureCounts((await res.json()) as ImportResult)
    }
    const again = await post('held-2', XML, 'application/xml')
    expect(again.status).toBe(202)
    expectFixtureCounts((await again.json()) as ImportResult)
  })

  it('refuses other content types (415), no token (401), another user (403), a bad user id (400), storing nothing', async () => {
    const before = await ingestMessages()
    const cases: Array<[Promise<Response>, number, string]> = [
      [post('ana', XML, 'text/plain'), 415, 'unsupported_media_type'],
      [post('ana', Buffer.from('{"samples":[]}'), 'application/json'), 415, 'unsupported_media_type'],
      [post('ana', XML, 'application/xml', null), 401, 'unauthorized'],
      [post('bo', XML, 'application/xml', ANA), 403, 'forbidden'],
      [post('not%20a%20user', XML, 'application/xml'), 400, 'invalid_user_id'],
    ]
    for (const [response, status, error] of cases) {
      const res = await response
      const body = (await res.json()) as { error: string; message: string; details: unknown[] }
      expect({ status: res.status, error: body.error }).toEqual({ status, error })
      expect(typeof body.message).toBe('string')
    }
    expect(await ingestMessages()).toBe(before)
  })
})
