import { performance } from 'node:perf_hooks'
import { sql } from 'kysely'
import pg from 'pg'
import { prepare } from '../pipeline/start.ts'
import { spawn } from 'node:child_process'
import type { RebuildResult } from '../projections/rebuild.ts'
import { createDb } from '../schema/db.ts'
import { testEnv } from '../test/helpers/env.ts'
import { fillSamples, manySamples } from '../test/helpers/samples.ts'
import { machine, rate } from './machine.ts'

const N = Number(process.env.BENCH_REBUILD_SAMPLES ?? 1_000_000)

/**
 * `hph rebuild samples` on N samples in HPH_SAMPLES (docs/benchmarks.md; goal ≥ 50k events/s), twice: into an empty live
 * table, then over a full one while readers query it — the longest query a reader saw is the swap's pause.
 */
async function hph(args: string[], env: Record<string, string>): Promise<RebuildResult> {
  const child = spawn(process.execPath, ['bin/hph.js', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  if (code !== 0) throw new Error(`hph ${args.join(' ')} exited ${code}: ${out}`)
  return JSON.parse(out) as RebuildResult
}

export async function rebuildBench(): Promise<void> {
  const env = await testEnv({ LOG_LEVEL: 'warn' })
  const { db } = createDb(env.config, { max: 2 })
  try {
    await prepare(env.config, env.log, env.nats, db)
    process.stdout.write(`machine: ${await machine(env.nats, db as never)}\n`)
    const samples = manySamples(N)
    const users = [...new Set(samples.map((s) => s.sample.userId))]
    let t = performance.now()
    await fillSamples(env.nats, env.config.HPH_PREFIX, samples)
    process.stdout.write(`filled HPH_SAMPLES with ${samples.length} samples of ${users.length} users in ${((performance.now() - t) / 1000).toFixed(1)} s\n`)

    const line = (what: string, r: RebuildResult) =>
      process.stdout.write(
        `${what}: ${r.messages} events in ${r.seconds.toFixed(1)} s = ${rate(r.messages, r.seconds * 1000)}; swap: readers held ${r.swapPauseMs.toFixed(1)} ms, writer held ${r.swapMs.toFixed(1)} ms\n`,
      )
    // the command an operator runs, in its own process (this one holds a million samples)
    const rebuild = () => hph(['rebuild', 'samples', '--json'], { DATABASE_URL: env.config.DATABASE_URL, HPH_PREFIX: env.config.HPH_PREFIX, LOG_LEVEL: 'warn' })
    line('`hph rebuild samples` into an empty live table', await rebuild())

    // readers: one user's latest samples (an indexed query of ~1 ms) every 5 ms on their own connections
    let reading = true
    const latencies: number[] = []
    const readers = Array.from({ length: 2 }, async (_, k) => {
      const client = new pg.Client({ connectionString: env.config.DATABASE_URL, options: `-c search_path=${env.config.HPH_DB_SCHEMA}` })
      await client.connect()
      for (let i = k; reading; i++) {
        const q0 = performance.now()
        await client.query('select start_ts, value from samples where user_id = $1 order by start_ts desc limit 50', [users[i % users.length]])
        latencies.push(performance.now() - q0)
        // an analyst's pace, not a load test: a query every 5 ms per reader
        await new Promise((r) => setTimeout(r, 5))
      }
      await client.end()
    })
    t = performance.now()
    const second = await rebuild()
    reading = false
    await Promise.all(readers)
    line('`hph rebuild samples` over a full live table, 2 readers querying it', second)
    latencies.sort((a, b) => a - b)
    const pct = (p: number) => (latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0).toFixed(1)
    process.stdout.write(`readers during the rebuild: ${latencies.length} queries, p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms, longest ${pct(1)} ms (none failed)\n`)
    const rows = (await sql<{ n: number }>`select count(*)::int as n from samples`.execute(db)).rows[0]?.n
    process.stdout.write(`rows after: ${rows} (stream: ${samples.length})\n`)
  } finally {
    await db.destroy()
    await env.cleanup()
  }
}
