import { spawn } from 'node:child_process'
import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { StringDecoder } from 'node:string_decoder'
import { sql } from 'kysely'
import { SaxesParser } from 'saxes'
import { prepare, startPipeline } from '../pipeline/start.ts'
import type { ImportResult } from '../ingest/healthkit-export/import.ts'
import { UNDERSTOOD_TYPES } from '../ingest/healthkit-export/reader.ts'
import { createDb } from '../schema/db.ts'
import type { Nats } from '../streams/connect.ts'
import { streamName } from '../streams/subjects.ts'
import { isTransient } from '../streams/transient.ts'
import { applyTopology, CONSUMERS, deleteTopology } from '../streams/topology.ts'
import { testEnv } from '../test/helpers/env.ts'
import { writeExport } from '../test/helpers/export-generator.ts'
import { machine, rate } from './machine.ts'

// The import's figures (docs/benchmarks.md): a generated export of BENCH_IMPORT_MB (500 by default) through `hph import healthkit` into
// HPH_INGEST and on through normalize and the samples-writer to `samples`, beside a bare streaming parse of the
// same file with the same parser (the ceiling, goal ≥ 0.7 of it), and the import's peak RSS (goal < 300 MB).
// BENCH_IMPORT_ROUNDS (3) pairs of ceiling and import, in turns.

const TARGET_MB = Number(process.env.BENCH_IMPORT_MB ?? 500)
/** pairs of (bare parse, import) measured in turns */
const ROUNDS = Math.max(1, Number(process.env.BENCH_IMPORT_ROUNDS ?? 3))
const MB = 1024 * 1024
const READ_CHUNK = 256 * 1024
/** beats in each HRV record's list (BENCH_IMPORT_BEATS): 4 writes the short lists of the first figures; 60 a real list */
const BEATS_PER_HRV = Math.max(2, Number(process.env.BENCH_IMPORT_BEATS ?? 4))
/** where the generated file goes (it is removed afterwards) */
const DIR = process.env.BENCH_IMPORT_DIR ?? tmpdir()

/** The ceiling: the file read and parsed by saxes, each <Record>'s attributes looked at and nothing else done. */
async function bareParse(path: string): Promise<{ ms: number; records: number }> {
  const t = performance.now()
  const parser = new SaxesParser<{ xmlns: false }>({ xmlns: false })
  const decoder = new StringDecoder('utf8')
  let records = 0
  parser.on('opentag', (tag) => {
    if (tag.name === 'Record' && tag.attributes.type) records++
  })
  for await (const chunk of createReadStream(path, { highWaterMark: READ_CHUNK }) as AsyncIterable<Buffer>) parser.write(decoder.write(chunk))
  parser.write(decoder.end())
  parser.close()
  return { ms: performance.now() - t, records }
}

async function cliImport(path: string, env: Record<string, string>): Promise<ImportResult & { peakRssBytes: number }> {
  const child = spawn(process.execPath, ['bin/hph.js', 'import', 'healthkit', path, '--user', 'bench', '--json'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  if (code !== 0) throw new Error(`hph import exited ${code}: ${out}`)
  return JSON.parse(out) as ImportResult & { peakRssBytes: number }
}

/** Until normalize and the samples-writer have nothing pending, twice in a row. */
async function drained(nats: Nats, prefix: string): Promise<void> {
  let quiet = 0
  while (quiet < 2) {
    await new Promise((r) => setTimeout(r, 250))
    try {
      const infos = await Promise.all([CONSUMERS.normalize, CONSUMERS['samples-writer']].map((c) => nats.jsm.consumers.info(streamName(prefix, c.stream), c.durable)))
      quiet = infos.every((i) => i.num_pending === 0 && i.num_ack_pending === 0) ? quiet + 1 : 0
    } catch (err) {
      // a loaded machine can make a look-up time out: look again
      if (!isTransient(err)) throw err
      quiet = 0
    }
  }
}

export async function healthkitImportBench(): Promise<void> {
  const env = await testEnv({ LOG_LEVEL: 'warn', HPH_ACK_WAIT_S: '60' })
  const { db } = createDb(env.config, { max: 2 })
  const dir = await mkdtemp(join(DIR, 'hph-bench-import-'))
  try {
    await prepare(env.config, env.log, env.nats, db)
    process.stdout.write(`machine: ${await machine(env.nats, db as never)}\n`)
    const path = join(dir, 'export.xml')
    let t = performance.now()
    const gen = await writeExport(path, { targetBytes: TARGET_MB * MB, beatsPerHrv: BEATS_PER_HRV })
    const all = Object.values(gen.records).reduce((a, b) => a + b, 0)
    const understood = Object.entries(gen.records)
      .filter(([k]) => UNDERSTOOD_TYPES.has(k))
      .reduce((a, [, n]) => a + n, 0)
    const mb = gen.bytes / MB
    process.stdout.write(
      `generated export.xml: ${mb.toFixed(0)} MB, ${gen.days} days, ${all} records (${understood} of understood types, ${BEATS_PER_HRV} beats in each HRV record's list) in ${((performance.now() - t) / 1000).toFixed(1)} s\n`,
    )

    // (a) the ceiling and (b) the import, in turns: this machine's speed drifts by a third from one minute to
    // the next, so one pair says little; each pair is measured back to back and the median ratio is the figure
    const pairs: Array<{ bareMs: number; importMs: number; r: ImportResult & { peakRssBytes: number } }> = []
    for (let round = 0; round < ROUNDS; round++) {
      const bare = await bareParse(path)
      if (bare.records !== all) throw new Error(`bare parse saw ${bare.records} records, the generator wrote ${all}`)
      process.stdout.write(
        `(a${round + 1}) ceiling — bare saxes parse of the file: ${(bare.ms / 1000).toFixed(1)} s = ${(mb / (bare.ms / 1000)).toFixed(1)} MB/s, ${rate(all, bare.ms)} records\n`,
      )

      // the command an operator runs, in its own process (its peak RSS is its own); the first round into the
      // streams (c) drains, the others into streams of their own (a re-import would only meet duplicates)
      const prefix = round === 0 ? env.config.HPH_PREFIX : `${env.config.HPH_PREFIX}r${round}`
      if (round > 0) await applyTopology(env.nats.jsm, { ...env.config, HPH_PREFIX: prefix })
      try {
        t = performance.now()
        const r = await cliImport(path, { DATABASE_URL: env.config.DATABASE_URL, HPH_PREFIX: prefix, LOG_LEVEL: 'warn' })
        const importMs = performance.now() - t
        if (r.records !== understood) throw new Error(`the import read ${r.records} understood records, the generator wrote ${understood}`)
        const importMbps = mb / (importMs / 1000)
        process.stdout.write(
          `(b${round + 1}) hph import healthkit → HPH_INGEST: ${(importMs / 1000).toFixed(1)} s wall (${r.seconds.toFixed(1)} s inside) = ${importMbps.toFixed(1)} MB/s, ` +
            `${rate(all, importMs)} records read, ${rate(understood, importMs)} understood records into ${r.batches} batches; ` +
            `${r.derived} RMSSD samples derived; peak RSS ${(r.peakRssBytes / MB).toFixed(0)} MB; ${(bare.ms / importMs).toFixed(2)} of the ceiling, ${(bare.ms / 1000 / r.seconds).toFixed(2)} without the process start (tsx, NATS connect)\n`,
        )
        pairs.push({ bareMs: bare.ms, importMs, r })
      } finally {
        if (round > 0) await deleteTopology(env.nats.jsm, prefix)
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
    const ratios = pairs.map((p) => p.bareMs / p.importMs)
    const typicalMs = median(pairs.map((p) => p.importMs))
    process.stdout.write(
      `(b) import vs ceiling over ${pairs.length} rounds: ${ratios.map((x) => x.toFixed(2)).join(', ')}; median ${median(ratios).toFixed(2)} (goal ≥ 0.7); ` +
        `median import ${(typicalMs / 1000).toFixed(1)} s = ${(mb / (typicalMs / 1000)).toFixed(1)} MB/s, ${rate(understood, typicalMs)} understood records; ` +
        `peak RSS at most ${(Math.max(...pairs.map((p) => p.r.peakRssBytes)) / MB).toFixed(0)} MB (goal < 300)\n`,
    )
    /** the import (c) drains */
    const importMs = pairs[0]!.importMs

    // (c) on to `samples`: normalize and the samples-writer drain what (b) published
    t = performance.now()
    const p = await startPipeline(env.config, env.log, { stages: ['normalize', 'samples-writer'], api: false, prepare: false })
    try {
      await drained(env.nats, env.config.HPH_PREFIX)
    } finally {
      await p.stop()
    }
    const drainMs = performance.now() - t
    const rows = (await sql<{ n: number }>`select count(*)::int as n from samples where user_id = 'bench'`.execute(db)).rows[0]?.n ?? 0
    process.stdout.write(
      `(c) normalize + samples-writer, HPH_INGEST → samples: ${rows} rows in ${(drainMs / 1000).toFixed(1)} s = ${rate(rows, drainMs)}; ` +
        `file → samples ${((importMs + drainMs) / 1000).toFixed(1)} s = ${rate(rows, importMs + drainMs)} samples, ${(mb / ((importMs + drainMs) / 1000)).toFixed(1)} MB/s\n`,
    )
    // each record is a row, and each beat list that derives an RMSSD sample one more
    const expected = understood + pairs[0]!.r.derived
    if (rows !== expected)
      process.stdout.write(`  note: ${expected - rows} of the ${understood} understood records and ${pairs[0]!.r.derived} derived samples gave no row (rejected or duplicates)\n`)
  } finally {
    await rm(dir, { recursive: true, force: true })
    await db.destroy()
    await env.cleanup()
  }
}
