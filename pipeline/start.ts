import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import type pg from 'pg'
import type { Config } from '../config.ts'
import type { Logger } from '../log.ts'
import { parseApiKeys } from '../api/auth.ts'
import { createMetrics, jetStreamReader, type Metrics } from '../api/metrics.ts'
import { buildApi, buildOpsServer } from '../api/server.ts'
import { normalizeStage } from '../processors/normalize/stage.ts'
import { samplesWriter } from '../projections/samples/writer.ts'
import { insightsEngine } from '../processors/insights/stage.ts'
import { insightsWriter } from '../projections/insights/writer.ts'
import { closeDb, createDb, ensureDatabase, type Database } from '../schema/db.ts'
import { migrateToLatest, migrationVersion } from '../schema/migrate.ts'
import { connectNats, type Nats } from '../streams/connect.ts'
import { startConsumer, type BatchHandler, type BatchStats, type RunningConsumer } from '../streams/consumer.ts'
import { streamName } from '../streams/subjects.ts'
import { applyTopology, CONSUMERS, type StageName } from '../streams/topology.ts'
import { isTransient } from '../streams/transient.ts'

export const STAGES = ['normalize', 'samples-writer', 'insights-engine', 'insights-writer'] as const satisfies readonly StageName[]
export type PipelineStage = (typeof STAGES)[number]

export interface PipelineOptions {
  stages: readonly PipelineStage[]
  api: boolean
  /** create the database if missing, migrate, apply streams (what `hph up` does first) */
  prepare: boolean
  onBatch?: (s: BatchStats) => void
}

export interface Pipeline {
  config: Config
  nats: Nats
  db: Kysely<Database>
  pool: pg.Pool
  api?: FastifyInstance
  /** where this process listens, e.g. http://127.0.0.1:8080: the api, or without it only /healthz, /readyz and /metrics */
  url: string
  /** this pipeline's own prom-client registry, served at /metrics */
  metrics: Metrics
  /** an admin key of HPH_API_KEYS, for a client in this process (the demo posting its samples) */
  adminKey?: string
  consumers: RunningConsumer[]
  stop(): Promise<void>
}

/** Prepares the storage and the streams: idempotent, safe on every start. */
export async function prepare(config: Config, log: Logger, nats: Nats, db: Kysely<Database>): Promise<void> {
  const applied = await migrateToLatest(db, config, log)
  log.info({ applied, version: await migrationVersion(db) }, 'database migrated')
  const topology = await applyTopology(nats.jsm, config)
  log.info(topology, 'streams applied')
}

function handlerFor(stage: PipelineStage, p: Pick<Pipeline, 'config' | 'nats' | 'db' | 'pool'>, log: Logger): BatchHandler<never> {
  const prefix = p.config.HPH_PREFIX
  switch (stage) {
    case 'normalize':
      return normalizeStage({ nats: p.nats, prefix, maxSamples: p.config.HPH_MAX_SAMPLES, eventMaxBytes: p.config.HPH_EVENT_MAX_BYTES, log }) as BatchHandler<never>
    case 'samples-writer':
      return samplesWriter({ db: p.db, pool: p.pool, nats: p.nats, prefix, schema: p.config.HPH_DB_SCHEMA }) as BatchHandler<never>
    case 'insights-engine':
      return insightsEngine({ pool: p.pool, nats: p.nats, prefix, schema: p.config.HPH_DB_SCHEMA, eventMaxBytes: p.config.HPH_EVENT_MAX_BYTES, log }) as BatchHandler<never>
    case 'insights-writer':
      return insightsWriter({ pool: p.pool, prefix, schema: p.config.HPH_DB_SCHEMA }) as BatchHandler<never>
  }
}

/**
 * Resolves once every durable consumer has nothing pending and nothing unacknowledged, twice in a row
 * `settleMs` apart (a stage may publish to the next while it is being looked at).
 */
export async function waitForIdle(nats: Nats, prefix: string, opts: { timeoutMs?: number; settleMs?: number } = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 300_000)
  let quiet = 0
  let busy: string[] = []
  while (quiet < 2) {
    if (Date.now() > deadline) throw new Error(`the pipeline did not settle within ${opts.timeoutMs ?? 300_000} ms (busy: ${busy.join(', ')})`)
    await new Promise((r) => setTimeout(r, opts.settleMs ?? 150))
    let infos
    try {
      infos = await Promise.all(Object.values(CONSUMERS).map((c) => nats.jsm.consumers.info(streamName(prefix, c.stream), c.durable)))
    } catch (err) {
      // a cluster electing a leader, a reconnect: not an answer, ask again
      if (!isTransient(err)) throw err
      busy = [`unanswered (${(err as Error).message})`]
      quiet = 0
      continue
    }
    busy = infos.filter((i) => i.num_pending > 0 || i.num_ack_pending > 0).map((i) => `${i.name} pending ${i.num_pending}, ack-pending ${i.num_ack_pending}`)
    quiet = busy.length === 0 ? quiet + 1 : 0
  }
}

/** Starts the chosen stages (and the api) in this process: `hph up` runs them all, `hph worker <stage>` one. */
export async function startPipeline(config: Config, log: Logger, opts: PipelineOptions): Promise<Pipeline> {
  if (opts.prepare) await ensureDatabase(config.DATABASE_URL)
  const nats = await connectNats(config, `hph:${opts.stages.join('+') || 'api'}`)
  const { db, pool } = createDb(config, { max: 8 })
  if (opts.prepare) await prepare(config, log, nats, db)

  const metrics = createMetrics({ readJetStream: jetStreamReader(nats.jsm, config.HPH_PREFIX, log), stages: opts.stages })
  const probes = [
    { name: 'nats', check: async () => void (await nats.nc.rtt()) },
    { name: 'postgres', check: async () => void (await migrationVersion(db).then((v) => { if (!v) throw new Error('migrations not applied') })) },
  ]
  // every process can be probed and scraped: the api, or a server of only /healthz, /readyz and /metrics
  let server: FastifyInstance
  let url: string
  try {
    server = opts.api ? await buildApi({ config, log, nats, db, probes, metrics }) : await buildOpsServer({ log, probes, metrics })
    url = await server.listen({ port: config.PORT, host: config.HOST })
  } catch (err) {
    // e.g. the port is taken: fail before any stage pulls, leaving no connection open
    await nats.nc.close()
    await closeDb(db, pool)
    throw err
  }
  const api = opts.api ? server : undefined

  const consumers: RunningConsumer[] = []
  for (const stage of opts.stages) {
    consumers.push(
      await startConsumer(handlerFor(stage, { config, nats, db, pool }, log), {
        nats,
        prefix: config.HPH_PREFIX,
        log,
        batchSize: config.HPH_BATCH_SIZE,
        pullMaxBytes: config.HPH_PULL_MAX_BYTES,
        maxDeliver: config.HPH_MAX_DELIVER,
        shutdownTimeoutMs: config.HPH_SHUTDOWN_TIMEOUT_MS,
        onBatch: (s) => {
          metrics.onBatch(s)
          opts.onBatch?.(s)
        },
      }),
    )
    log.info({ stage }, 'stage started')
  }

  const adminKey = [...parseApiKeys(config.HPH_API_KEYS)].find(([, principal]) => principal.kind === 'admin')?.[0]
  let stopped: Promise<void> | undefined
  return {
    config, nats, db, pool, consumers, url, metrics,
    ...(adminKey ? { adminKey } : {}),
    ...(api ? { api } : {}),
    stop() {
      // stop taking input first, then every stage at once (each within the one shutdown deadline), then the
      // connections; a worker stays probed and scraped until its stages have drained
      stopped ??= (async () => {
        await api?.close()
        await Promise.all(consumers.map((c) => c.stop()))
        if (!api) await server.close()
        await nats.nc.drain()
        await closeDb(db, pool)
      })()
      return stopped
    },
  }
}
