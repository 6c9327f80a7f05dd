import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import type pg from 'pg'
import type { Config } from '../config.ts'
import type { Logger } from '../log.ts'
import { parseApiKeys } from '../api/auth.ts'
import { createMetrics, jetStreamReader, type Metrics } from '../api/metrics.ts'
import { buildApi, buildOpsServer } from '../api/server.ts'
import { ProbeFailure, type Probe } from '../api/routes/ops.ts'
import { normalizeStage } from '../processors/normalize/stage.ts'
import { samplesWriter } from '../projections/samples/writer.ts'
import { insightsEngine } from '../processors/insights/stage.ts'
import { insightsWriter } from '../projections/insights/writer.ts'
import { closeDb, createDb, ensureDatabase, pgTimeouts, type Database } from '../schema/db.ts'
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
  /** the level of the api's request logs (debug for a person at a terminal) */
  requestLogs?: 'info' | 'debug'
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
  /** what a stop has cut so far, and the requests open now (what a forced exit cuts) */
  cutSoFar(): ShutdownReport
  /** stops within HPH_SHUTDOWN_TIMEOUT_MS; says what it had to cut at the deadline */
  stop(): Promise<ShutdownReport>
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
 * `settleMs` apart (a stage may publish to the next while it is being looked at), and has been delivered its
 * stream's last message: in a cluster a consumer's leader can answer from a replica of the stream still
 * catching up (a node just restarted), which counts nothing pending while the stream's leader holds more.
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
      infos = await Promise.all(
        Object.values(CONSUMERS).map(async (c) => {
          const [info, stream] = await Promise.all([nats.jsm.consumers.info(streamName(prefix, c.stream), c.durable), nats.jsm.streams.info(streamName(prefix, c.stream))])
          return { ...info, behind: stream.state.last_seq - info.delivered.stream_seq }
        }),
      )
    } catch (err) {
      // a cluster electing a leader, a reconnect: not an answer, ask again
      if (!isTransient(err)) throw err
      busy = [`unanswered (${(err as Error).message})`]
      quiet = 0
      continue
    }
    busy = infos
      .filter((i) => i.num_pending > 0 || i.num_ack_pending > 0 || i.behind > 0)
      .map((i) => `${i.name} pending ${i.num_pending}, ack-pending ${i.num_ack_pending}, ${i.behind} behind the stream's last message`)
    quiet = busy.length === 0 ? quiet + 1 : 0
  }
}

/** What a stop cut at the shutdown deadline (docs/architecture.md §8.1); empty when it drained. */
export interface ShutdownReport {
  /** requests still open at the deadline, by route pattern and age */
  requests: Array<{ method: string; route: string; seconds: number }>
  /** messages each stage gave back unacknowledged at the deadline */
  stages: Array<{ stage: StageName; givenBack: number }>
}

export const wasCut = (r: ShutdownReport) => r.requests.length > 0 || r.stages.length > 0

/** Starts the chosen stages (and the api) in this process: `hph up` runs them all, `hph worker <stage>` one. */
export async function startPipeline(config: Config, log: Logger, opts: PipelineOptions): Promise<Pipeline> {
  if (opts.prepare) await ensureDatabase(config.DATABASE_URL)
  const nats = await connectNats(
    config,
    `hph:${opts.stages.join('+') || 'api'}`,
    {},
    { onWait: (err, tries, retryInMs) => log.warn({ err, tries, retryInMs }, 'JetStream does not answer yet: waiting for it before the stages start') },
  )
  const { db, pool } = createDb(config, { max: 8, timeouts: pgTimeouts(config) })
  // the api's reads and the readiness check on a pool of their own: a stage stuck behind a hung database never
  // holds the connection a read needs, and a read gives up after HPH_PG_READ_TIMEOUT_MS (docs/architecture.md §8.3)
  const reads = createDb(config, { max: 4, timeouts: pgTimeouts(config, config.HPH_PG_READ_TIMEOUT_MS) })
  if (opts.prepare) {
    // migrations may take long on a large table: a pool without the statement timeout, for this only
    const maintenance = createDb(config, { max: 1, timeouts: { connectMs: config.HPH_PG_CONNECT_TIMEOUT_MS } })
    try {
      await prepare(config, log, nats, maintenance.db)
    } finally {
      await closeDb(maintenance.db, maintenance.pool)
    }
  }

  /** a start that fails closes what it opened */
  const closeConnections = async () => {
    await nats.nc.close()
    await closeDb(db, pool)
    await closeDb(reads.db, reads.pool)
  }

  const metrics = createMetrics({ readJetStream: jetStreamReader(nats.jsm, config.HPH_PREFIX, log), stages: opts.stages })
  const consumers: RunningConsumer[] = []
  const probes: Probe[] = [
    { name: 'nats', check: async () => void (await nats.nc.rtt()) },
    {
      name: 'postgres',
      check: async () => {
        if (!(await migrationVersion(reads.db))) throw new ProbeFailure('migrations pending')
      },
    },
    // docs/architecture.md §8.2: a stage whose pulls stopped is named, never silently idle
    ...opts.stages.map((stage) => ({
      name: stage,
      check: async () => {
        const c = consumers.find((x) => x.stage === stage)
        if (!c) throw new ProbeFailure('starting')
        if (!c.health().pulling) throw new ProbeFailure('not pulling')
      },
    })),
  ]
  // every process can be probed and scraped: the api, or a server of only /healthz, /readyz and /metrics
  let server: FastifyInstance
  let url: string
  /** the requests being answered, for the shutdown's report of what it cut */
  const open = new Map<string, { method: string; route: string; since: number }>()
  try {
    server = opts.api
      ? await buildApi({ config, log, nats, db, readDb: reads.db, probes, metrics, ...(opts.requestLogs ? { requestLogs: opts.requestLogs } : {}) })
      : await buildOpsServer({ log, probes, metrics, readyTimeoutMs: config.HPH_READY_TIMEOUT_MS })
    server.addHook('onRequest', async (req) => void open.set(req.id, { method: req.method, route: req.routeOptions.url ?? '(no route)', since: Date.now() }))
    server.addHook('onResponse', async (req) => void open.delete(req.id))
    server.addHook('onRequestAbort', async (req) => void open.delete(req.id))
    url = await server.listen({ port: config.PORT, host: config.HOST })
  } catch (err) {
    // e.g. the port is taken: fail before any stage pulls, leaving no connection open
    await closeConnections()
    throw err
  }
  const api = opts.api ? server : undefined

  try {
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
          ackWaitS: config.HPH_ACK_WAIT_S,
          eventMaxBytes: config.HPH_EVENT_MAX_BYTES,
          onBatch: (s) => {
            metrics.onBatch(s)
            opts.onBatch?.(s)
          },
        }),
      )
      log.info({ stage }, 'stage started')
    }
  } catch (err) {
    // a stage that cannot start (its durable missing, JetStream away past the wait) ends the process's start: what
    // started is stopped and every connection closed, so the process exits instead of serving "not ready" for ever
    await Promise.all(consumers.map((c) => c.stop()))
    await server.close()
    await closeConnections()
    throw err
  }

  const adminKey = [...parseApiKeys(config.HPH_API_KEYS)].find(([, principal]) => principal.kind === 'admin')?.[0]
  const openNow = () => [...open.values()].map((r) => ({ method: r.method, route: r.route, seconds: Math.round((Date.now() - r.since) / 100) / 10 }))
  const report: ShutdownReport = { requests: [], stages: [] }
  let stopped: Promise<ShutdownReport> | undefined
  return {
    config,
    nats,
    db,
    pool,
    consumers,
    url,
    metrics,
    ...(adminKey ? { adminKey } : {}),
    ...(api ? { api } : {}),
    cutSoFar: () => ({ requests: openNow(), stages: report.stages }),
    stop() {
      // docs/architecture.md §8.1: the api stops taking requests and the stages stop pulling at
      // once, both within the one deadline (a long upload never holds the stages); at the deadline what is still
      // open is cut and reported. A worker stays probed and scraped until its stages have drained.
      stopped ??= (async () => {
        let timer: NodeJS.Timeout | undefined
        const deadline = new Promise<'timeout'>((resolve) => (timer = setTimeout(resolve, config.HPH_SHUTDOWN_TIMEOUT_MS, 'timeout')))
        // each stage's report as soon as it has one: a forced exit later still says what it gave back
        const stages = Promise.all(consumers.map((c) => c.stop().then((r) => void (r.givenBack > 0 && report.stages.push(r)))))
        if (api) {
          const closing = api.close()
          if ((await Promise.race([closing.then(() => 'closed' as const), deadline])) === 'timeout') {
            report.requests = openNow()
            api.server.closeAllConnections()
            await closing
          }
        }
        await stages
        clearTimeout(timer)
        if (!api) await server.close()
        await nats.nc.drain()
        await closeDb(db, pool)
        await closeDb(reads.db, reads.pool)
        return report
      })()
      return stopped
    },
  }
}
