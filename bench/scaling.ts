import { performance } from 'node:perf_hooks'
import { sql } from 'kysely'
import { demoBatches } from '../cli/demo-data.ts'
import { prepare, STAGES, startPipeline, waitForIdle } from '../pipeline/start.ts'
import { createDb } from '../schema/db.ts'
import { eventually, testEnv, type TestEnv } from '../test/helpers/env.ts'
import { startNatsCluster } from '../test/helpers/nats-server.ts'
import { alive, killAll, spawnHph, type Child } from '../test/helpers/processes.ts'
import { fillSamples, manySamples } from '../test/helpers/samples.ts'
import { machine, rate } from './machine.ts'

// docs/operating.md §8: what scaling out gives on this machine. (a) the whole pipeline in one process, end to end over
// HTTP, on the one local nats-server and on a three-node cluster with R3 streams, in the same run; (b) the
// samples-writer as 1, 2 and 4 `hph worker` processes on one durable consumer.

const USERS = Number(process.env.BENCH_SCALING_USERS ?? 50)
const DAYS = Number(process.env.BENCH_SCALING_DAYS ?? 60)
const WRITER_SAMPLES = Number(process.env.BENCH_SCALING_SAMPLES ?? 200_000)

/** Prepares storage and streams, retrying while a new cluster elects its JetStream leader. */
async function prepared(env: TestEnv): Promise<void> {
  const { db } = createDb(env.config, { max: 1 })
  try {
    await eventually(
      () =>
        prepare(env.config, env.log, env.nats, db).then(
          () => true,
          () => false,
        ),
      60_000,
      'the streams to be applied',
    )
  } finally {
    await db.destroy()
  }
}

async function endToEnd(label: string, overrides: Record<string, string>): Promise<void> {
  const env = await testEnv({ LOG_LEVEL: 'warn', HPH_ACK_WAIT_S: '60', ...overrides })
  try {
    await prepared(env)
    const p = await startPipeline(env.config, env.log, { stages: STAGES, api: true, prepare: false })
    try {
      const perUser = Array.from({ length: USERS }, (_, u) =>
        demoBatches({ userId: `s${u}`, nights: DAYS, firstNight: '2026-01-01', seed: u + 1, batchSize: 100 }).map((b) => ({
          userId: `s${u}`,
          body: JSON.stringify(b),
          n: b.samples.length,
        })),
      )
      // users' batches interleaved, as many phones syncing at once
      const bodies: Array<{ userId: string; body: string; n: number }> = []
      for (let i = 0; i < Math.max(...perUser.map((b) => b.length)); i++) for (const batches of perUser) if (batches[i]) bodies.push(batches[i]!)
      const total = bodies.reduce((a, b) => a + b.n, 0)
      let next = 0
      const t0 = performance.now()
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < bodies.length) {
            const b = bodies[next++]!
            const res = await fetch(`${p.url}/v1/users/${b.userId}/samples`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: b.body })
            await res.body?.cancel()
            if (res.status !== 202) throw new Error(`status ${res.status}`)
          }
        }),
      )
      const httpMs = performance.now() - t0
      await waitForIdle(p.nats, env.config.HPH_PREFIX, { timeoutMs: 1_800_000 })
      const ms = performance.now() - t0
      process.stdout.write(
        `(a) ${label}: ${total.toLocaleString('en-US')} samples (${USERS} users × ${DAYS} nights) over HTTP → readiness settled in ${(ms / 1000).toFixed(1)} s = ${rate(total, ms)} end to end (ingest alone ${rate(total, httpMs)})\n`,
      )
    } finally {
      await p.stop()
    }
  } finally {
    await env.cleanup()
  }
}

async function writerInstances(k: number): Promise<void> {
  const env = await testEnv({ LOG_LEVEL: 'warn', HPH_ACK_WAIT_S: '60' })
  const children: Child[] = []
  const { db } = createDb(env.config, { max: 2 })
  try {
    await prepared(env)
    await fillSamples(env.nats, env.config.HPH_PREFIX, manySamples(WRITER_SAMPLES))
    for (let i = 0; i < k; i++) {
      spawnHph(
        ['worker', 'samples-writer'],
        { NATS_URL: env.config.NATS_URL, DATABASE_URL: env.config.DATABASE_URL, HPH_PREFIX: env.config.HPH_PREFIX, PORT: '0', HOST: '127.0.0.1' },
        children,
      )
    }
    const count = async () => (await sql<{ n: number }>`select count(*)::int as n from samples`.execute(db)).rows[0]!.n
    await eventually(
      async () => {
        if (!children.every(alive)) throw new Error(`a worker exited:\n${children.map((c) => c.output()).join('\n')}`)
        return (await count()) >= WRITER_SAMPLES
      },
      600_000,
      'every sample written',
    )
    // from the first row written to the last: the workers' start-up (the same for every k) is left out
    const r = (await sql<{ s: number }>`select extract(epoch from max(inserted_at) - min(inserted_at))::float8 as s from samples`.execute(db)).rows[0]!
    process.stdout.write(
      `(b) samples-writer × ${k} process${k > 1 ? 'es' : ''}: ${WRITER_SAMPLES.toLocaleString('en-US')} samples in ${r.s.toFixed(2)} s = ${rate(WRITER_SAMPLES, r.s * 1000)} (first row to last)\n`,
    )
  } finally {
    await killAll(children)
    await db.destroy()
    await env.cleanup()
  }
}

export async function scalingBench(): Promise<void> {
  const probe = await testEnv({ LOG_LEVEL: 'warn' })
  const { db } = createDb(probe.config, { max: 1 })
  process.stdout.write(`machine: ${await machine(probe.nats, db as never)}\n`)
  await db.destroy()
  await probe.cleanup()

  await endToEnd('one nats-server', {})
  const cluster = await startNatsCluster()
  try {
    await endToEnd('three-node cluster, R3 streams', { NATS_URL: cluster.url, HPH_STREAM_REPLICAS: '3' })
  } finally {
    await cluster.close()
  }
  for (const k of [1, 2, 4]) await writerInstances(k)
}
