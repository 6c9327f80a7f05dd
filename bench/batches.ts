import { spawn } from 'node:child_process'
import { createReadStream } from 'node:fs'
import http from 'node:http'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { performance } from 'node:perf_hooks'
import { StringDecoder } from 'node:string_decoder'
import { sql, type Kysely } from 'kysely'
import type pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { SaxesParser } from 'saxes'
import { demoBatches } from '../cli/demo-data.ts'
import { prepare, startPipeline, waitForIdle, type Pipeline } from '../pipeline/start.ts'
import type { ImportResult } from '../ingest/healthkit-export/import.ts'
import { parseSlices, readExport } from '../ingest/healthkit-export/reader.ts'
import { normalizeBatch, parseBatchEnvelope, type NormalizedSample } from '../processors/normalize/healthkit.ts'
import { sampleEventsOf } from '../processors/normalize/stage.ts'
import { rebuildProjection } from '../projections/rebuild.ts'
import { copyRowsOf, insertFromStageSql, SAMPLE_COLUMNS, samplesWriter, stageSql, STAGE_TABLE } from '../projections/samples/writer.ts'
import { createDb, type Database } from '../schema/db.ts'
import { ensurePartitions } from '../schema/partitions.ts'
import { inTransaction } from '../schema/transaction.ts'
import { startConsumer, type Delivered } from '../streams/consumer.ts'
import { hashUuid } from '../streams/ids.ts'
import { publishAll, type Outgoing } from '../streams/publish.ts'
import type { SampleBatch } from '../streams/schemas.ts'
import { testEnv, type TestEnv } from '../test/helpers/env.ts'
import { legacySampleEvents } from '../test/helpers/samples.ts'
import { writeExport } from '../test/helpers/export-generator.ts'
import { freePort } from '../test/helpers/proxy.ts'
import type { Nats } from '../streams/connect.ts'
import { streamName } from '../streams/subjects.ts'
import { CONSUMERS } from '../streams/topology.ts'
import { busyShare, cpuSecondsOf, cpuSecondsOfPid, machine, machineTicks, rate } from './machine.ts'

// The figures of the batch events (docs/benchmarks.md): every throughput as a ratio to the bare 1000-row insert
// of the same rows measured in the same run (this machine is shared and its speed drifts), and the CPU each
// process spends per sample, read from /proc.

const USERS = Number(process.env.BENCH_BATCH_USERS ?? 200)
const DAYS = Number(process.env.BENCH_BATCH_DAYS ?? 90)
const HTTP_BATCH = Number(process.env.BENCH_BATCH_HTTP_SIZE ?? 1000)
const CONCURRENCY = Number(process.env.BENCH_BATCH_CONCURRENCY ?? 8)
const EXPORT_MB = Number(process.env.BENCH_BATCH_EXPORT_MB ?? 100)
/** rows a transaction in the second comparison of unnest and COPY: what a samples-writer pull holds */
const PULL_ROWS = 30_000
const MB = 1024 * 1024
/** BENCH_BATCH_FIGURES: which figures to measure, e.g. `2,4` (default all; (3) needs (2)'s stream) */
const FIGURES = new Set((process.env.BENCH_BATCH_FIGURES ?? '1,2,3,3b,4').split(',').map((f) => f.trim()))
const wanted = (figure: string) => FIGURES.has(figure) || (figure === '2' && FIGURES.has('3'))

interface Cpu {
  node: number
  nats: number
  postgres: number
}

/** CPU seconds so far: this process (all its threads), nats-server and PostgreSQL. */
async function cpuNow(): Promise<Cpu> {
  const others = (await cpuSecondsOf(['postgres', 'nats-server'])) ?? {}
  const self = process.cpuUsage()
  return { node: (self.user + self.system) / 1e6, nats: others['nats-server'] ?? NaN, postgres: others.postgres ?? NaN }
}

function perSample(a: Cpu, b: Cpu, n: number): string {
  const us = (s: number) => ((s / n) * 1e6).toFixed(1)
  return `µs CPU per sample: node ${us(b.node - a.node)}, nats-server ${us(b.nats - a.nats)}, postgres ${us(b.postgres - a.postgres)}`
}

/** The CPU seconds of a figure's processes between two readings, all of them together (`extra`: a process read apart). */
const cpuSum = (a: Cpu, b: Cpu, extra = 0): number => b.node - a.node + (b.nats - a.nats) + (b.postgres - a.postgres) + extra

/**
 * What a goal leaves each sample of the machine's CPU: at `goal` × the ceiling's rate, with every core busy from the
 * first sample to the last, n samples may cost at most cores / rate seconds. A figure whose processes spend more
 * than that a sample cannot meet its goal on this machine, however they are scheduled.
 */
function cpuBudget(seconds: number, n: number, goal: number, ceilingRate: number): string {
  const cores = availableParallelism()
  const most = (cores * 1e6) / (goal * ceilingRate)
  return `all its processes ${((seconds / n) * 1e6).toFixed(1)} µs CPU a sample, where ${goal} of the bare insert allows at most ${most.toFixed(1)} with all ${cores} cores busy throughout`
}

/** Each sample as an event of its own, so that statements of exactly `size` rows can be cut from them. */
function oneEach(samples: readonly NormalizedSample[]): Delivered<SampleBatch>[] {
  return samples.map((s, i) => {
    const { userId, metric, ingestId, ...rest } = s.sample
    const data: SampleBatch = { userId, metric, ingestId, samples: [{ id: s.id, ...rest }] }
    return {
      event: { specversion: '1.0', id: s.id, type: 'hph.sample.v2', source: 'bench', subject: userId, time: '', data },
      data,
      subject: '',
      seq: i + 1,
      deliveries: 1,
      traceparent: undefined,
    }
  })
}

const COLUMNS = SAMPLE_COLUMNS.join(', ')

/** The insert the samples-writer made before COPY: one statement of unnested column arrays. */
function unnestSql(schema: string): string {
  return `insert into "${schema}".samples (${COLUMNS})
    select * from unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::smallint[],
       $7::float8[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[])
    on conflict do nothing`
}

/** The rows as the unnest insert's column arrays. */
function columnsOf(batch: readonly Delivered<SampleBatch>[]): unknown[][] {
  const cols: unknown[][] = SAMPLE_COLUMNS.map(() => [])
  for (const d of batch) {
    const b = d.data
    for (const s of b.samples) {
      const row = [
        s.id,
        b.userId,
        b.metric,
        s.start,
        s.end,
        s.utcOffsetMinutes,
        s.value ?? null,
        s.stage ?? null,
        s.source.name,
        s.source.bundleId ?? null,
        s.source.device ?? null,
        s.externalId ?? null,
        b.ingestId,
        d.seq,
      ]
      row.forEach((v, c) => (cols[c] as unknown[]).push(v))
    }
  }
  return cols
}

/** What the samples-writer does with a pull: COPY into its staging table, then one insert from it. */
async function copyInsert(client: pg.PoolClient, schema: string, batch: readonly Delivered<SampleBatch>[]): Promise<void> {
  await client.query(stageSql(schema))
  await pipeline(Readable.from(copyRowsOf(batch)), client.query(copyFrom(`copy ${STAGE_TABLE} (${COLUMNS}) from stdin`)))
  await client.query(insertFromStageSql(schema))
}

/** The ceiling: the rows inserted `size` a transaction, no messaging; rows/s. */
async function bareInsert(db: Kysely<Database>, pool: pg.Pool, schema: string, rows: Delivered<SampleBatch>[], size: number, how: 'unnest' | 'copy'): Promise<number> {
  await sql`truncate samples`.execute(db)
  const t = performance.now()
  for (let i = 0; i < rows.length; i += size) {
    const pull = rows.slice(i, i + size)
    await inTransaction(pool, async (c) => {
      if (how === 'unnest') await c.query({ name: `bench_insert_${schema}`, text: unnestSql(schema), values: columnsOf(pull) })
      else await copyInsert(c, schema, pull)
    })
  }
  const ms = performance.now() - t
  await sql`truncate samples`.execute(db)
  return (rows.length / ms) * 1000
}

/** Rows of the ceiling measured again just before and just after each figure (the machine's speed drifts from minute to minute). */
const CEILING_ROWS = 100_000

const countRows = async (db: Kysely<Database>) => (await sql<{ n: number }>`select count(*)::int as n from samples`.execute(db)).rows[0]?.n ?? 0

/**
 * Whether `samples` holds at least `n` rows, asking PostgreSQL only once normalize and the samples-writer have
 * nothing pending or unacknowledged (each acks only after its effect is stored): a count(*) every 50 ms over a
 * table of 300k rows took a good part of a core from the pipeline being measured.
 */
async function rowsAtLeast(nats: Nats, prefix: string, db: Kysely<Database>, n: number): Promise<boolean> {
  for (const stage of ['normalize', 'samples-writer'] as const) {
    const info = await nats.jsm.consumers.info(streamName(prefix, CONSUMERS[stage].stream), CONSUMERS[stage].durable)
    if (info.num_pending > 0 || info.num_ack_pending > 0) return false
  }
  return (await countRows(db)) >= n
}

async function until(probe: () => Promise<boolean>, ms = 1_800_000): Promise<void> {
  const t0 = Date.now()
  while (!(await probe())) {
    if (Date.now() - t0 > ms) throw new Error(`not done within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/**
 * POSTs a JSON body already encoded, on a kept-alive connection of `agent`; resolves with the status once the answer
 * is read. node:http with a Buffer, not fetch with a string: the client shares the machine with what it measures,
 * and fetch took more of it (the text encoded again for every request, undici's streams).
 */
function post(agent: http.Agent, url: string, body: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

/**
 * The time of saxes alone over the file (ms): decoded and fed as readExport feeds it, with no handler. The floor of
 * the export's parse, whatever the reader does with its records (measured: htmlparser2 reads this file no faster,
 * sax-wasm and libxmljs's SAX push parser more slowly; docs/benchmarks.md §2).
 */
async function saxesAlone(path: string): Promise<number> {
  const t = performance.now()
  const parser = new SaxesParser({ position: true, xmlns: false })
  const decoder = new StringDecoder('utf8')
  for await (const chunk of createReadStream(path, { highWaterMark: 120 * 1024 }) as AsyncIterable<Buffer>) {
    for (const text of parseSlices(decoder, chunk)) parser.write(text)
  }
  parser.close()
  return performance.now() - t
}

/** A generated export of EXPORT_MB and its bare parse (the export reader, no messaging), printed as a ceiling. */
async function bareParse(path: string): Promise<{ path: string; bytes: number; parsed: number; parseMs: number }> {
  const gen = await writeExport(path, { targetBytes: EXPORT_MB * MB })
  const t = performance.now()
  let parsed = 0
  for await (const batch of readExport(createReadStream(path, { highWaterMark: 120 * 1024 }), { format: 'xml', batchSize: 1000 }).batches) parsed += batch.size
  const parseMs = performance.now() - t
  const saxesMs = await saxesAlone(path)
  process.stdout.write(
    `ceiling — bare parse of a generated ${(gen.bytes / MB).toFixed(0)} MB export.xml (the export reader, no messaging): ${rate(parsed, parseMs)} samples, ` +
      `${((parseMs / parsed) * 1000).toFixed(1)} µs a sample; of which the XML parser alone (saxes with no handler, the same slices): ${((saxesMs / parsed) * 1000).toFixed(1)} µs a sample\n`,
  )
  return { path, bytes: gen.bytes, parsed, parseMs }
}

/** `hph import healthkit` as its own process; its CPU read from /proc while it runs (it is gone once it exits). */
async function cliImport(path: string, env: Record<string, string>, nodeFlags: readonly string[]): Promise<{ result: ImportResult; cpuSeconds: number }> {
  const child = spawn(process.execPath, [...nodeFlags, 'bin/hph.js', 'import', 'healthkit', path, '--user', 'bench', '--json'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  let cpuSeconds = 0
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  const watch = setInterval(() => {
    // NaN once it is gone: the largest reading stands
    void cpuSecondsOfPid(child.pid!).then((s) => (cpuSeconds = Math.max(cpuSeconds, Number.isNaN(s) ? 0 : s)))
  }, 50)
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  clearInterval(watch)
  if (code !== 0) throw new Error(`hph import exited ${code}: ${out}`)
  return { result: JSON.parse(out) as ImportResult, cpuSeconds }
}

/** node flags of the `hph up` of (2), the `hph worker` and `hph import` of (4), after bin/hph.js's own: BENCH_UP_NODE_FLAGS, space-separated (none by default) */
const UP_NODE_FLAGS = (process.env.BENCH_UP_NODE_FLAGS ?? '').split(' ').filter(Boolean)

/** The node flags bin/hph.js's first line runs it with (`#!/usr/bin/env -S node --flag …`): (2) runs `hph up` as a user's shell would. */
async function shebangFlags(): Promise<string[]> {
  const first = (await readFile('bin/hph.js', 'utf8')).split('\n')[0] ?? ''
  return first.split(' ').filter((f) => f.startsWith('--'))
}

/** `hph up` (the built program), or another of its services (`worker …`), as its own process on a free port, once it answers /readyz. */
async function startUp(
  config: TestEnv['config'],
  nodeFlags: readonly string[],
  command: readonly string[] = ['up'],
): Promise<{ url: string; pid: number; stop: () => Promise<void> }> {
  const port = await freePort()
  const child = spawn(process.execPath, [...nodeFlags, 'bin/hph.js', ...command], {
    env: {
      ...process.env,
      DATABASE_URL: config.DATABASE_URL,
      HPH_PREFIX: config.HPH_PREFIX,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      HPH_ACK_WAIT_S: '60',
      HPH_RATE_LIMIT_PER_IP: '1000000000',
      HPH_RATE_LIMIT_PER_TOKEN: '1000000000',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const url = `http://127.0.0.1:${port}`
  await until(async () => {
    if (child.exitCode !== null) throw new Error(`hph ${command.join(' ')} exited ${child.exitCode}`)
    return (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200
  }, 60_000)
  let stopped = false
  return {
    url,
    pid: child.pid!,
    async stop() {
      if (stopped) return
      stopped = true
      child.kill('SIGTERM')
      await exited
    },
  }
}

/** CPU seconds so far of the `hph up` process (all its threads), nats-server and PostgreSQL. */
async function upCpu(pid: number): Promise<Cpu> {
  const others = (await cpuSecondsOf(['postgres', 'nats-server'])) ?? {}
  return { node: await cpuSecondsOfPid(pid), nats: others['nats-server'] ?? NaN, postgres: others.postgres ?? NaN }
}

const benchEnv = () => testEnv({ LOG_LEVEL: 'warn', HPH_ACK_WAIT_S: '60', HPH_RATE_LIMIT_PER_IP: '1000000000', HPH_RATE_LIMIT_PER_TOKEN: '1000000000' })

export async function batchesBench(): Promise<void> {
  const envs: TestEnv[] = []
  const pipelines: Pipeline[] = []
  const stops: Array<() => Promise<void>> = []
  const dir = await mkdtemp(join(tmpdir(), 'hph-bench-batches-'))
  try {
    // ── the data: USERS × DAYS nights of demo data in HTTP batches of HTTP_BATCH, and the rows they give ──
    const firstNight = '2026-01-01'
    const perUser = Array.from({ length: USERS }, (_, u) =>
      demoBatches({ userId: `b${u}`, nights: DAYS, firstNight, seed: u + 1, batchSize: HTTP_BATCH }).map((b) => ({ userId: `b${u}`, b })),
    )
    const bodies: Array<{ userId: string; body: Buffer; n: number }> = []
    for (let i = 0; i < Math.max(...perUser.map((x) => x.length)); i++)
      for (const list of perUser) if (list[i]) bodies.push({ userId: list[i]!.userId, body: Buffer.from(JSON.stringify(list[i]!.b)), n: list[i]!.b.samples.length })
    const now = new Date()
    const samples = perUser
      .flat()
      .flatMap(({ userId, b }) => normalizeBatch(parseBatchEnvelope(b, { maxSamples: 100_000 }), { userId, ingestId: hashUuid('ingest', userId, b.batchId), now }).samples)
    const N = samples.length

    // ── ceilings, on a database of their own ──
    const env = await benchEnv()
    envs.push(env)
    const { db, pool } = createDb(env.config, { max: 4 })
    await prepare(env.config, env.log, env.nats, db)
    const schema = env.config.HPH_DB_SCHEMA
    process.stdout.write(`machine: ${await machine(env.nats, db as never)}\n`)
    process.stdout.write(`data: ${USERS} users × ${DAYS} nights (demoBatches), ${bodies.length} HTTP batches of ≤ ${HTTP_BATCH}, ${N.toLocaleString('en-US')} samples\n`)
    const rows = oneEach(samples)
    await ensurePartitions(
      db,
      schema,
      samples.map((s) => s.sample.start),
    )
    const bare = await bareInsert(db, pool, schema, rows, 1000, 'unnest')
    const copy1000 = await bareInsert(db, pool, schema, rows, 1000, 'copy')
    const unnestPull = await bareInsert(db, pool, schema, rows, PULL_ROWS, 'unnest')
    const copyPull = await bareInsert(db, pool, schema, rows, PULL_ROWS, 'copy')
    const fmt = (r: number) => `${Math.round(r).toLocaleString('en-US')} rows/s`
    process.stdout.write(
      `ceiling — bare insert … select from unnest, 1000 rows a transaction (no messaging): ${fmt(bare)}; measured again on ${CEILING_ROWS.toLocaleString('en-US')} rows just before and just after each figure, whose ratio is to their mean\n`,
    )
    process.stdout.write(`    COPY into a staging table + insert from it, 1000 rows a transaction: ${fmt(copy1000)} (${(copy1000 / bare).toFixed(2)} of unnest)\n`)
    process.stdout.write(
      `    at a pull's size (${PULL_ROWS.toLocaleString('en-US')} rows a transaction): unnest ${fmt(unnestPull)}, COPY ${fmt(copyPull)} (${(copyPull / unnestPull).toFixed(2)} of unnest); the samples-writer copies\n`,
    )

    // the export: its bare parse, beside the bare insert
    const exported = wanted('4') ? await bareParse(join(dir, 'export.xml')) : undefined
    let t = 0
    /** (1)'s CPU a sample in all its processes: the samples-writer's own share of any figure that writes samples */
    let writerAloneUs: number | undefined

    // ── (1) samples-writer alone on a pre-filled HPH_SAMPLES of v2 events ──
    /** the bare insert again, on the ceilings' database (its rows are truncated before and after) */
    const ceilingNow = () => bareInsert(db, pool, schema, rows.slice(0, CEILING_ROWS), 1000, 'unnest')
    /** a figure's ceiling: the mean of the bare insert just before it and just after it (one measure moved by a quarter from minute to minute) */
    const around = (before: number, after: number) => ({ rate: (before + after) / 2, text: `mean of ${fmt(before)} before and ${fmt(after)} after` })
    /** `hph rebuild samples` of env's HPH_SAMPLES, its figure printed as `label` */
    const rebuildFigure = async (label: string, e: TestEnv, into: { db: Kysely<Database>; pool: pg.Pool }, goal: string) => {
      const before = await ceilingNow()
      const cpu0 = await cpuNow()
      const rb = await rebuildProjection({
        nats: e.nats,
        db: into.db,
        pool: into.pool,
        prefix: e.config.HPH_PREFIX,
        schema: e.config.HPH_DB_SCHEMA,
        log: e.log,
        projection: 'samples',
      })
      const cpu1 = await cpuNow()
      const ceiling = around(before, await ceilingNow())
      process.stdout.write(
        `${label}: ${rb.messages} messages, ${rate(N, rb.seconds * 1000)} samples = ${(N / rb.seconds / ceiling.rate).toFixed(2)} of the bare insert measured around it (${ceiling.text}${goal}); swap held readers ${rb.swapPauseMs.toFixed(0)} ms; ${perSample(cpu0, cpu1, N)}\n`,
      )
    }

    if (wanted('1')) {
      const byBatch = new Map<string, NormalizedSample[]>()
      for (const s of samples) byBatch.set(s.sample.ingestId, [...(byBatch.get(s.sample.ingestId) ?? []), s])
      const events: Outgoing[] = [...byBatch.values()].flatMap((list) =>
        sampleEventsOf(
          env.config.HPH_PREFIX,
          { userId: list[0]!.sample.userId, ingestId: list[0]!.sample.ingestId, receivedAt: now.toISOString() },
          list,
          env.config.HPH_EVENT_MAX_BYTES,
        ),
      )
      for (let i = 0; i < events.length; i += 2000) await publishAll(env.nats.js, events.slice(i, i + 2000), 100)
      const before1 = await ceilingNow()
      let written = 0
      let pulls = 0
      const writer = samplesWriter({ db, pool, nats: env.nats, prefix: env.config.HPH_PREFIX, schema })
      const cpu0 = await cpuNow()
      t = performance.now()
      const c = await startConsumer(writer, {
        nats: env.nats,
        prefix: env.config.HPH_PREFIX,
        log: env.log,
        batchSize: env.config.HPH_BATCH_SIZE,
        pullMaxBytes: env.config.HPH_PULL_MAX_BYTES,
        maxDeliver: 5,
        shutdownTimeoutMs: 10_000,
        ackWaitS: env.config.HPH_ACK_WAIT_S,
        onBatch: (s) => {
          written += s.items
          pulls++
        },
      })
      await until(async () => written >= N)
      const writerMs = performance.now() - t
      const cpu1 = await cpuNow()
      await c.stop()
      if ((await countRows(db)) !== N) throw new Error(`samples-writer wrote ${await countRows(db)} rows of ${N}`)
      const ceiling1 = around(before1, await ceilingNow())
      writerAloneUs = (cpuSum(cpu0, cpu1) / N) * 1e6
      process.stdout.write(
        `(1) samples-writer alone, ${events.length} v2 events pre-filled: ${rate(N, writerMs)} samples in ${pulls} pulls (${Math.round(N / pulls)} samples a pull) = ${(((N / writerMs) * 1000) / ceiling1.rate).toFixed(2)} of the bare insert measured around it (${ceiling1.text}; goal ≥ 0.8); ${perSample(cpu0, cpu1, N)}\n`,
      )
    }

    if (wanted('2')) {
      // ── (2) HTTP → samples → every insight table: every stage in one `hph up`, its own process (as deployed), the
      // client here; the CPU of that process read from /proc ──
      const env2 = await benchEnv()
      envs.push(env2)
      const upFlags = [...(await shebangFlags()), ...UP_NODE_FLAGS]
      const up = await startUp(env2.config, upFlags)
      stops.push(up.stop)
      const p = createDb(env2.config, { max: 4 })
      const before2 = await ceilingNow()
      let next = 0
      const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY })
      const c0 = await upCpu(up.pid)
      const m0 = await machineTicks()
      const client0 = process.cpuUsage()
      t = performance.now()
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < bodies.length) {
            const b = bodies[next++]!
            const status = await post(agent, `${up.url}/v1/users/${b.userId}/samples`, b.body)
            if (status !== 202) throw new Error(`POST answered ${status}`)
          }
        }),
      )
      const postedMs = performance.now() - t
      await until(() => rowsAtLeast(env2.nats, env2.config.HPH_PREFIX, p.db, N))
      const toRowsMs = performance.now() - t
      const c1 = await upCpu(up.pid)
      const m1 = await machineTicks()
      const client = process.cpuUsage(client0)
      const clientSeconds = (client.user + client.system) / 1e6
      await waitForIdle(env2.nats, env2.config.HPH_PREFIX, { timeoutMs: 1_800_000, settleMs: 50 })
      const settledMs = performance.now() - t
      const c2 = await upCpu(up.pid)
      const m2 = await machineTicks()
      agent.destroy()
      await up.stop()
      const ceiling2 = around(before2, await ceilingNow())
      process.stdout.write(
        `(2) HTTP, ${bodies.length} POSTs of ≤ ${HTTP_BATCH} samples, ${CONCURRENCY} at once, to \`hph up\` (every stage, its own process${upFlags.length ? `, node ${upFlags.join(' ')}` : ''}): all answered in ${(postedMs / 1000).toFixed(1)} s; until the last row the machine was ${busyShare(m0, m1)} busy (of all its cores) and the HTTP client (this process) spent ${((client.user + client.system) / N).toFixed(1)} µs CPU per sample\n`,
      )
      process.stdout.write(
        `    → table samples: ${rate(N, toRowsMs)} = ${(((N / toRowsMs) * 1000) / ceiling2.rate).toFixed(2)} of the bare insert measured around it (${ceiling2.text}; goal ≥ 0.5); ${perSample(c0, c1, N)}; ` +
          `${cpuBudget(cpuSum(c0, c1, clientSeconds), N, 0.5, ceiling2.rate)} (the HTTP client's included)\n`,
      )
      process.stdout.write(
        `    → every insight table settled: ${rate(N, settledMs)} = ${(((N / settledMs) * 1000) / ceiling2.rate).toFixed(2)} of it (goal ≥ 0.35); ${perSample(c0, c2, N)}; ` +
          `${cpuBudget(cpuSum(c0, c2, clientSeconds), N, 0.35, ceiling2.rate)}; from the last row on, the machine was ${busyShare(m1, m2)} busy\n`,
      )
      const streams = await Promise.all(
        (['INGEST', 'SAMPLES', 'CHANGES', 'INSIGHTS'] as const).map(
          async (k) => `${k} ${(await env2.nats.jsm.streams.info(`${env2.config.HPH_PREFIX.toUpperCase()}_${k}`)).state.messages.toLocaleString('en-US')}`,
        ),
      )
      process.stdout.write(`    messages: ${streams.join(', ')}\n`)

      // ── (3) hph rebuild samples, from the stream (2) wrote ──
      if (FIGURES.has('3')) {
        await rebuildFigure('(3) hph rebuild samples', env2, p, '; goal ≥ 0.8')
      }
      await p.db.destroy()
    }

    if (wanted('3b')) {
      // ── (3b) the same rebuild of a stream written before the batch events: one hph.sample.v1 event a sample ──
      const envV1 = await benchEnv()
      envs.push(envV1)
      const v1 = createDb(envV1.config, { max: 8 })
      await prepare(envV1.config, envV1.log, envV1.nats, v1.db)
      const legacy = legacySampleEvents(envV1.config.HPH_PREFIX, samples)
      // 500 awaiting at once: on a loaded machine a window of thousands of one-sample publishes ran past the publish timeout
      for (let i = 0; i < legacy.length; i += 20_000) await publishAll(envV1.nats.js, legacy.slice(i, i + 20_000), 500)
      await rebuildFigure('(3b) hph rebuild samples of the same samples as hph.sample.v1 events (the stream of before)', envV1, v1, '')
      await v1.db.destroy()
    }

    if (exported) {
      const { parsed, parseMs } = exported
      // ── (4) export import → samples rows: `hph import healthkit` in its own process (as an operator runs it)
      // beside a running pipeline of normalize and the samples-writer, `hph worker normalize samples-writer` in a
      // process of its own too (in this one, whose heap holds the bench's data, the stages spent 1.3–1.7× the CPU) ──
      const env3 = await benchEnv()
      envs.push(env3)
      // the database and the streams made here (a worker prepares nothing), and this process's connection for the counts
      const p3 = await startPipeline(env3.config, env3.log, { stages: [], api: false, prepare: true })
      pipelines.push(p3)
      const workers = await startUp(env3.config, [...(await shebangFlags()), ...UP_NODE_FLAGS], ['worker', 'normalize', 'samples-writer'])
      stops.push(workers.stop)
      const before4 = await ceilingNow()
      const i0 = await upCpu(workers.pid)
      t = performance.now()
      const cli = await cliImport(exported.path, { DATABASE_URL: env3.config.DATABASE_URL, HPH_PREFIX: env3.config.HPH_PREFIX, LOG_LEVEL: 'warn' }, [
        ...(await shebangFlags()),
        ...UP_NODE_FLAGS,
      ])
      const importedMs = performance.now() - t
      await until(() => rowsAtLeast(env3.nats, env3.config.HPH_PREFIX, p3.db, cli.result.accepted))
      const landedMs = performance.now() - t
      const i1 = await upCpu(workers.pid)
      const ceiling4 = around(before4, await ceilingNow())
      const n4 = cli.result.accepted
      process.stdout.write(
        `(4) hph import healthkit, a generated ${(exported.bytes / MB).toFixed(0)} MB export (${n4.toLocaleString('en-US')} samples; into HPH_INGEST in ${(importedMs / 1000).toFixed(1)} s, start-up included) → table samples: ` +
          `${rate(n4, landedMs)} = ${(((n4 / landedMs) * 1000) / ceiling4.rate).toFixed(2)} of the bare insert measured around it (${ceiling4.text}; goal ≥ 0.5), ${(n4 / landedMs / (parsed / parseMs)).toFixed(2)} of the bare parse; ` +
          `${perSample(i0, i1, n4)} (node: the pipeline's process), the import's process ${((cli.cpuSeconds / n4) * 1e6).toFixed(1)}; ${cpuBudget(cpuSum(i0, i1, cli.cpuSeconds), n4, 0.5, ceiling4.rate)}` +
          // the bare parse is one thread busy throughout: its time is its CPU
          `${writerAloneUs === undefined ? '' : `, of which the bare parse and the samples-writer alone ((1)) already take ${((parseMs / parsed) * 1000 + writerAloneUs).toFixed(1)}`}\n`,
      )
      await workers.stop()
      await p3.stop()
    }
    await db.destroy()
  } finally {
    for (const p of pipelines) await p.stop()
    for (const stop of stops) await stop()
    for (const e of envs) await e.cleanup()
    await rm(dir, { recursive: true, force: true })
  }
}
