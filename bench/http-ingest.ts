import { performance } from 'node:perf_hooks'
import { sql } from 'kysely'
import { STAGES, startPipeline, type PipelineStage } from '../pipeline/start.ts'
import { demoBatches } from '../cli/demo-data.ts'
import { testEnv, eventually } from '../test/helpers/env.ts'
import { machine, percentile, rate } from './machine.ts'

const BATCHES = Number(process.env.BENCH_HTTP_BATCHES ?? 2000)
const CONCURRENCY = Number(process.env.BENCH_HTTP_CONCURRENCY ?? 16)

/** HTTP ingest of 100-sample batches: samples/s and latency, with every stage running in the same process. */
export async function httpIngestBench(): Promise<void> {
  await httpIngest([])
  await httpIngest(STAGES)
}

async function httpIngest(stages: readonly PipelineStage[]): Promise<void> {
  // a throughput figure from one address: the rate limits (a guard against abuse) stay out of it
  const env = await testEnv({ LOG_LEVEL: 'warn', HPH_ACK_WAIT_S: '60', HPH_RATE_LIMIT_PER_IP: '1000000000', HPH_RATE_LIMIT_PER_TOKEN: '1000000000' })
  const p = await startPipeline(env.config, env.log, { stages, api: true, prepare: true })
  try {
    process.stdout.write(`machine: ${await machine(env.nats, p.db as never)}\n`)
    const users = Math.ceil(BATCHES / 10)
    const bodies: Array<{ userId: string; body: string; n: number }> = []
    for (let u = 0; u < users && bodies.length < BATCHES; u++) {
      for (const b of demoBatches({ userId: `h${u}`, nights: 67, firstNight: '2026-01-01', seed: u + 1, batchSize: 100 })) {
        if (b.samples.length === 100 && bodies.length < BATCHES) bodies.push({ userId: `h${u}`, body: JSON.stringify(b), n: b.samples.length })
      }
    }
    const latencies: number[] = []
    let next = 0
    const t0 = performance.now()
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < bodies.length) {
          const b = bodies[next++]!
          const t = performance.now()
          const res = await fetch(`${p.url}/v1/users/${b.userId}/samples`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: b.body })
          await res.arrayBuffer()
          if (res.status !== 202) throw new Error(`status ${res.status}`)
          latencies.push(performance.now() - t)
        }
      }),
    )
    const httpMs = performance.now() - t0
    const total = bodies.reduce((a, b) => a + b.n, 0)
    latencies.sort((a, b) => a - b)
    process.stdout.write(
      `http ingest with ${stages.length ? stages.join(' + ') : 'no stage'} running: ${bodies.length} batches × 100 samples, ${CONCURRENCY} concurrent: ${rate(total, httpMs)} samples (${rate(bodies.length, httpMs)} requests); latency p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms\n`,
    )
    if (stages.length === 0) return
    await eventually(async () => ((await sql<{ n: number }>`select count(*)::int as n from samples`.execute(p.db)).rows[0]?.n ?? 0) >= total, 300_000, 'rows')
    const e2eMs = performance.now() - t0
    process.stdout.write(`through to table samples (api + normalize + samples-writer in one process): ${rate(total, e2eMs)} samples, ${(e2eMs / 1000).toFixed(1)} s wall\n`)
  } finally {
    await p.stop()
    await env.cleanup()
  }
}
