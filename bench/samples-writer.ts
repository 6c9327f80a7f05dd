import { performance } from 'node:perf_hooks'
import { sql } from 'kysely'
import { prepare } from '../cli/pipeline.ts'
import { columnsOf, insertSql, samplesWriter } from '../projections/samples/writer.ts'
import { createDb } from '../schema/db.ts'
import { ensurePartitions } from '../schema/partitions.ts'
import { inTransaction } from '../schema/transaction.ts'
import { startConsumer, type Delivered } from '../streams/consumer.ts'
import type { SampleBatch } from '../streams/schemas.ts'
import { streamName } from '../streams/subjects.ts'
import { testEnv } from '../test/helpers/env.ts'
import { fillSamples, manySamples, sampleEvents } from '../test/helpers/samples.ts'
import { machine, rate } from './machine.ts'

const N = Number(process.env.BENCH_SAMPLES ?? 200_000)

/** samples-writer alone on a pre-filled HPH_SAMPLES, beside the bare insert (its ceiling). */
export async function samplesWriterBench(): Promise<void> {
  const env = await testEnv({ LOG_LEVEL: 'warn', HPH_ACK_WAIT_S: '60' })
  const { db, pool } = createDb(env.config, { max: 4 })
  try {
    await prepare(env.config, env.log, env.nats, db)
    process.stdout.write(`machine: ${await machine(env.nats, db as never)}\n`)
    const samples = manySamples(N)
    let t = performance.now()
    await fillSamples(env.nats, env.config.HPH_PREFIX, samples)
    process.stdout.write(`filled HPH_SAMPLES with ${samples.length} samples in ${((performance.now() - t) / 1000).toFixed(1)} s (${rate(samples.length, performance.now() - t)} publishes)\n`)

    // ceiling: the same one-statement inserts of 1000 rows, no NATS
    const schema = env.config.HPH_DB_SCHEMA
    const writer = samplesWriter({ db, pool, nats: env.nats, prefix: env.config.HPH_PREFIX, schema })
    // the same rows, one to an event, so that every statement holds exactly 1000 of them
    const delivered = sampleEvents(env.config.HPH_PREFIX, samples).flatMap((o, i) => {
      const b = o.event.data as SampleBatch
      return b.samples.map((s): Delivered<SampleBatch> => ({ event: { ...o.event, data: { ...b, samples: [s] } }, data: { ...b, samples: [s] }, subject: '', seq: i + 1, deliveries: 1, traceparent: undefined }))
    })
    await ensurePartitions(db, schema, samples.map((s) => s.sample.start))
    t = performance.now()
    for (let i = 0; i < delivered.length; i += 1000) {
      const cols = columnsOf(delivered.slice(i, i + 1000))
      await inTransaction(pool, (c) => c.query({ name: 'bench_insert', text: insertSql(schema), values: cols }))
    }
    const insertMs = performance.now() - t
    process.stdout.write(`ceiling — bare insert, 1000-row transactions: ${rate(samples.length, insertMs)}\n`)
    await sql`truncate samples`.execute(db)

    // the stage: pull → decode → one transaction → changes → ack
    let done = 0
    let batches = 0
    t = performance.now()
    let finished!: () => void
    const all = new Promise<void>((r) => (finished = r))
    const c = await startConsumer(writer, {
      nats: env.nats, prefix: env.config.HPH_PREFIX, log: env.log, batchSize: 1000, pullMaxBytes: env.config.HPH_PULL_MAX_BYTES, maxDeliver: 5, shutdownTimeoutMs: 10_000,
      onBatch: (s) => {
        done += s.items
        batches++
        if (done >= samples.length) finished()
      },
    })
    await all
    const ms = performance.now() - t
    await c.stop()
    const rows = (await sql<{ n: number }>`select count(*)::int as n from samples`.execute(db)).rows[0]?.n
    const info = await env.nats.jsm.consumers.info(streamName(env.config.HPH_PREFIX, 'SAMPLES'), 'samples-writer')
    process.stdout.write(`samples-writer: ${samples.length} samples in ${(ms / 1000).toFixed(2)} s = ${rate(samples.length, ms)} (${batches} batches, avg ${(samples.length / batches).toFixed(0)}/batch; rows ${rows}; pending ${info.num_pending}, ack pending ${info.num_ack_pending}); ${((samples.length / ms) / (samples.length / insertMs) * 100).toFixed(0)}% of the bare insert\n`)
  } finally {
    await db.destroy()
    await env.cleanup()
  }
}
