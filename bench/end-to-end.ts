import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import { performance } from 'node:perf_hooks'
import { sql } from 'kysely'
import { STAGES, startPipeline, waitForIdle } from '../pipeline/start.ts'
import { demoBatches } from '../cli/demo-data.ts'
import { addDays } from '../processors/insights/days.ts'
import { loadUserSamples } from '../processors/insights/load.ts'
import { insightEvents, LOOKBACK_DAYS, recomputeUser } from '../processors/insights/stage.ts'
import { affectedRange } from '../processors/insights/touched.ts'
import type { BatchStats } from '../streams/consumer.ts'
import { streamName, type StreamKey } from '../streams/subjects.ts'
import { CONSUMERS, type StageName } from '../streams/topology.ts'
import { testEnv } from '../test/helpers/env.ts'
import { cpuSecondsOf, machine, percentile, rate } from './machine.ts'

const USERS = Number(process.env.BENCH_E2E_USERS ?? 200)
const DAYS = Number(process.env.BENCH_E2E_DAYS ?? 90)
const CONCURRENCY = Number(process.env.BENCH_E2E_CONCURRENCY ?? 16)
/** recomputations timed per shape in the after-the-run part */
const RECOMPUTES = Number(process.env.BENCH_E2E_RECOMPUTES ?? 200)
const IDLE_TIMEOUT_MS = Number(process.env.BENCH_E2E_TIMEOUT_S ?? 1800) * 1000
/** a file to write a V8 CPU profile of exactly the window of (b) to (open it in Chrome DevTools or speedscope) */
const CPU_PROFILE = process.env.BENCH_E2E_CPU_PROF
const INSIGHT_TABLES = ['sleep_daily', 'hrv_daily', 'baseline_history', 'readiness_daily', 'user_baselines', 'user_cpt_tables'] as const

/** A fixed past first night (the data is the same on every run), moved back only if the last night would not be over yet. */
function firstNightOf(days: number): string {
  const latest = new Date(Date.now() - 2 * 86_400_000).toISOString().slice(0, 10)
  const fixed = '2026-01-01'
  return addDays(fixed, days - 1) <= latest ? fixed : addDays(latest, -(days - 1))
}

interface StageFigures {
  batches: number
  messages: number
  ok: number
  poison: number
  retried: number
  ms: number
  maxMs: number
  firstAt: number
  lastAt: number
}

/**
 * The whole pipeline in one process (api + every stage), fed over HTTP with realistic data of many users
 * at once: ingest and end-to-end throughput, the rows it ends with, each stage's share, and what one
 * recomputation of the insights engine costs per touched user-day.
 */
export async function endToEndBench(): Promise<void> {
  // a throughput figure from one address: the rate limits (a guard against abuse) stay out of it
  const env = await testEnv({ LOG_LEVEL: 'warn', HPH_ACK_WAIT_S: '60', HPH_RATE_LIMIT_PER_IP: '1000000000', HPH_RATE_LIMIT_PER_TOKEN: '1000000000' })
  const stats = new Map<StageName, StageFigures>()
  let t0 = Infinity
  /** every batch, to see what is left once the last sample row is written */
  const batchLog: Array<{ stage: StageName; at: number; size: number; ms: number }> = []
  const onBatch = (s: BatchStats) => {
    const now = performance.now() - t0
    let f = stats.get(s.stage)
    if (!f) stats.set(s.stage, (f = { batches: 0, messages: 0, ok: 0, poison: 0, retried: 0, ms: 0, maxMs: 0, firstAt: now - s.ms, lastAt: 0 }))
    f.batches++
    f.messages += s.size
    f.ok += s.ok
    f.poison += s.poison
    f.retried += s.retried
    f.ms += s.ms
    f.maxMs = Math.max(f.maxMs, s.ms)
    f.lastAt = now
    batchLog.push({ stage: s.stage, at: now, size: s.size, ms: s.ms })
  }
  const p = await startPipeline(env.config, env.log, { stages: STAGES, api: true, prepare: true, onBatch })
  try {
    process.stdout.write(`machine: ${await machine(env.nats, p.db as never)}\n`)
    const firstNight = firstNightOf(DAYS)
    const perUser = Array.from({ length: USERS }, (_, u) =>
      demoBatches({ userId: `e${u}`, nights: DAYS, firstNight, seed: u + 1, batchSize: 100 }).map((b) => ({ userId: `e${u}`, body: JSON.stringify(b), n: b.samples.length })),
    )
    // users' batches interleaved, as many phones syncing at once: batch i of every user before batch i+1 of any
    const bodies: Array<{ userId: string; body: string; n: number }> = []
    for (let i = 0; i < Math.max(...perUser.map((b) => b.length)); i++) for (const batches of perUser) if (batches[i]) bodies.push(batches[i]!)
    const total = bodies.reduce((a, b) => a + b.n, 0)
    process.stdout.write(
      `data: ${USERS} users × ${DAYS} nights from ${firstNight} (demoBatches), ${bodies.length} batches of ≤ 100 (${total.toLocaleString('en-US')} samples), users interleaved, ${CONCURRENCY} concurrent POSTs\n`,
    )

    const latencies: number[] = []
    let accepted = 0
    let next = 0
    const cpu0 = process.cpuUsage()
    const elu0 = performance.eventLoopUtilization()
    const others0 = await cpuSecondsOf(['postgres', 'nats-server'])
    const profiler = CPU_PROFILE ? new Session() : undefined
    if (profiler) {
      profiler.connect()
      await profiler.post('Profiler.enable')
      await profiler.post('Profiler.setSamplingInterval', { interval: 1000 })
      await profiler.post('Profiler.start')
    }
    t0 = performance.now()
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < bodies.length) {
          const b = bodies[next++]!
          const t = performance.now()
          const res = await fetch(`${p.url}/v1/users/${b.userId}/samples`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: b.body })
          const reply = (await res.json()) as { accepted?: number }
          if (res.status !== 202) throw new Error(`status ${res.status}`)
          accepted += reply.accepted ?? 0
          latencies.push(performance.now() - t)
        }
      }),
    )
    const httpMs = performance.now() - t0
    latencies.sort((a, b) => a - b)
    // every demo sample is valid: the rates count the samples posted, and the api must have accepted them all
    if (accepted !== total) process.stdout.write(`warning: the api reported ${accepted} of ${total} samples accepted\n`)
    process.stdout.write(
      `(a) http ingest (every stage running): ${bodies.length} requests, ${total.toLocaleString('en-US')} samples in ${(httpMs / 1000).toFixed(1)} s = ${rate(total, httpMs)} samples (${rate(bodies.length, httpMs)} requests); latency p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms\n`,
    )

    await waitForIdle(p.nats, env.config.HPH_PREFIX, { timeoutMs: IDLE_TIMEOUT_MS })
    const e2eMs = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    const elu = performance.eventLoopUtilization(elu0)
    const others = await cpuSecondsOf(['postgres', 'nats-server'])
    if (profiler && CPU_PROFILE) {
      const { profile } = await profiler.post('Profiler.stop')
      profiler.disconnect()
      await writeFile(CPU_PROFILE, JSON.stringify(profile))
    }
    const writerAt = stats.get('samples-writer')?.lastAt ?? NaN
    process.stdout.write(
      `(b) end to end, first POST → every stage idle (readiness settled): ${(e2eMs / 1000).toFixed(1)} s = ${rate(total, e2eMs)} samples (goal ≥ 25,000/s); the last sample row was written at ${(writerAt / 1000).toFixed(1)} s (${rate(total, writerAt)})\n`,
    )
    const cpuLine = [`this process ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s (event loop ${(elu.utilization * 100).toFixed(0)}% busy)`]
    if (others0 && others) for (const n of Object.keys(others)) cpuLine.push(`${n} ${((others[n] ?? 0) - (others0[n] ?? 0)).toFixed(1)} s`)
    process.stdout.write(`    cpu over those ${(e2eMs / 1000).toFixed(1)} s wall: ${cpuLine.join(', ')}\n`)
    if (CPU_PROFILE) process.stdout.write(`    cpu profile of (b) written to ${CPU_PROFILE}\n`)

    // (c) what it ends with
    const counts = await Promise.all(
      ['samples', ...INSIGHT_TABLES].map(
        async (t) => `${t} ${(await sql<{ n: number }>`select count(*)::int as n from ${sql.table(t)}`.execute(p.db)).rows[0]?.n.toLocaleString('en-US')}`,
      ),
    )
    process.stdout.write(`(c) rows: ${counts.join(', ')}\n`)
    const streams = await Promise.all(
      (['INGEST', 'SAMPLES', 'CHANGES', 'INSIGHTS', 'DLQ'] as StreamKey[]).map(
        async (k) => `${k} ${(await p.nats.jsm.streams.info(streamName(env.config.HPH_PREFIX, k))).state.last_seq.toLocaleString('en-US')}`,
      ),
    )
    process.stdout.write(`    events published: ${streams.join(', ')}\n`)
    // every recomputation publishes exactly one `baseline` event, so its count is the engine's number of recomputes
    const insightSubjects = (await p.nats.jsm.streams.info(streamName(env.config.HPH_PREFIX, 'INSIGHTS'), { subjects_filter: '>' })).state.subjects ?? {}
    const byKind = new Map<string, number>()
    for (const [subject, n] of Object.entries(insightSubjects)) byKind.set(subject.split('.')[3] ?? '?', (byKind.get(subject.split('.')[3] ?? '?') ?? 0) + n)
    process.stdout.write(
      `    insight events by kind (rows and tombstones): ${[...byKind].map(([k, n]) => `${k} ${n.toLocaleString('en-US')}`).join(', ')}; recomputes ${(byKind.get('baseline') ?? 0).toLocaleString('en-US')} (${((byKind.get('baseline') ?? 0) / USERS).toFixed(1)} per user)\n`,
    )

    // (d) each stage's share; a handler's ms include waiting for the one event loop all stages share, so read them beside the cpu line
    process.stdout.write(`(d) per stage (handler ms = pull handled + acked; samples-writer keeps 3 batches in flight, so its ms overlap):\n`)
    for (const stage of STAGES) {
      const f = stats.get(stage)
      const info = await p.nats.jsm.consumers.info(streamName(env.config.HPH_PREFIX, CONSUMERS[stage].stream), CONSUMERS[stage].durable)
      if (!f) {
        process.stdout.write(`    ${stage}: no batch\n`)
        continue
      }
      process.stdout.write(
        `    ${stage.padEnd(16)} ${String(f.batches).padStart(6)} batches, ${f.messages.toLocaleString('en-US').padStart(9)} messages, avg ${(f.messages / f.batches).toFixed(0).padStart(4)}/batch, handler ${(f.ms / 1000).toFixed(1).padStart(6)} s total (${(f.ms / f.batches).toFixed(1)} ms/batch, max ${f.maxMs.toFixed(0)} ms, ${((f.ms / f.messages) * 1000).toFixed(0)} µs/message), busy ${(f.firstAt / 1000).toFixed(1)}–${(f.lastAt / 1000).toFixed(1)} s; poison ${f.poison}, retried ${f.retried}, redelivered ${info.num_redelivered}\n`,
      )
    }
    // the tail: the batches of the insight stages that finished after the last sample row
    const tail = STAGES.slice(2).map((stage) => {
      const after = batchLog.filter((b) => b.stage === stage && b.at > writerAt)
      return `${stage} ${after.length} batches, ${after.reduce((a, b) => a + b.size, 0).toLocaleString('en-US')} messages, handler ${(after.reduce((a, b) => a + b.ms, 0) / 1000).toFixed(1)} s`
    })
    process.stdout.write(`    batches finished after the last sample row (${(writerAt / 1000).toFixed(1)} s → ${(e2eMs / 1000).toFixed(1)} s): ${tail.join('; ')}\n`)

    // (e) the insights engine's unit of work on the loaded data: one user's load + compute + events
    const users = Array.from({ length: Math.min(USERS, RECOMPUTES) }, (_, u) => `e${u}`)
    const lastNight = addDays(firstNight, DAYS - 1)
    const deps = { pool: p.pool, schema: env.config.HPH_DB_SCHEMA }
    const shapes: Array<{ name: string; days: (i: number) => string[] }> = [
      { name: 'the latest night (a nightly sync)', days: () => [addDays(lastNight, 1)] },
      { name: 'a night mid-history', days: (i) => [addDays(firstNight, Math.floor(DAYS / 2) + (i % 7))] },
      { name: 'the latest 7 nights (a week offline)', days: () => Array.from({ length: 7 }, (_, k) => addDays(lastNight, k - 5)) },
    ]
    process.stdout.write(`(e) insights recompute cost (recomputeUser + insightEvents, one at a time, ${RECOMPUTES} recomputes of ${users.length} users on the loaded data):\n`)
    for (const shape of shapes) {
      let loadMs = 0
      let eventsMs = 0
      let samples = 0
      let events = 0
      const each: number[] = []
      for (let i = 0; i < RECOMPUTES; i++) {
        const userId = users[i % users.length]!
        const days = shape.days(i)
        // the load alone, to split the cost: the same statement recomputeUser runs first
        let t = performance.now()
        const loaded = await loadUserSamples(deps.pool, deps.schema, userId, new Date(`${addDays(affectedRange(days).first, -LOOKBACK_DAYS)}T00:00:00Z`))
        loadMs += performance.now() - t
        samples += loaded.samples.length
        t = performance.now()
        const r = await recomputeUser(deps, userId, days)
        const tEvents = performance.now()
        events += insightEvents(env.config.HPH_PREFIX, r, env.config.HPH_EVENT_MAX_BYTES).length
        eventsMs += performance.now() - tEvents
        each.push(performance.now() - t)
      }
      const sum = each.reduce((a, b) => a + b, 0)
      const touched = shape.days(0).length
      each.sort((a, b) => a - b)
      process.stdout.write(
        `    ${touched} touched day${touched > 1 ? 's' : ''}, ${shape.name}: ${(sum / RECOMPUTES).toFixed(1)} ms per recompute (p50 ${percentile(each, 50).toFixed(1)}, p99 ${percentile(each, 99).toFixed(1)}), ${(sum / RECOMPUTES / touched).toFixed(1)} ms per touched user-day; of which load ≈ ${(loadMs / RECOMPUTES).toFixed(1)} ms (${(samples / RECOMPUTES).toFixed(0)} samples read), compute ≈ ${((sum - loadMs - eventsMs) / RECOMPUTES).toFixed(1)} ms, insightEvents ${(eventsMs / RECOMPUTES).toFixed(1)} ms (${(events / RECOMPUTES).toFixed(0)} events)\n`,
      )
    }
  } finally {
    await p.stop()
    await env.cleanup()
  }
}
