import { randomUUID } from 'node:crypto'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, type RouteOptions } from 'fastify'
import { userRefSecret, type Config } from '../config.ts'
import { exportLimitsOf } from '../ingest/healthkit-export/limits.ts'
import type { Logger } from '../log.ts'
import type { Kysely } from 'kysely'
import type { Database } from '../schema/db.ts'
import type { Nats } from '../streams/connect.ts'
import { installAccess } from './access.ts'
import { installAudit } from './audit.ts'
import { createAuthenticator, isLoopback } from './auth.ts'
import { installErasingGuard } from './erasing.ts'
import { installErrorHandling } from './errors.ts'
import type { Metrics } from './metrics.ts'
import { eraseRoutes } from './routes/erase.ts'
import { exportRoutes } from './routes/export.ts'
import { metricsRoutes } from './routes/metrics.ts'
import { opsRoutes, type Probe } from './routes/ops.ts'
import { readRoutes } from './routes/read.ts'
import { samplesRoutes } from './routes/samples.ts'
import { healthkitExportRoutes } from './routes/healthkit-export.ts'
import { dashboardRoutes } from './routes/dashboard.ts'
import { installOpenApi, serializerCompiler, validatorCompiler } from './openapi.ts'
import { statusRoutes } from './routes/status.ts'
import { trendsRoutes } from './routes/trends.ts'

export interface ApiDeps {
  config: Config
  log: Logger
  nats: Nats
  db: Kysely<Database>
  /** the reads' own pool, whose statements end after HPH_PG_READ_TIMEOUT_MS (docs/architecture.md §8.3); `db` when not given */
  readDb?: Kysely<Database>
  probes: Probe[]
  metrics: Metrics
  /** sees every route as it is registered (the OpenAPI test checks each is documented) */
  onRoute?: (route: RouteOptions) => void
  /** the level of the request logs: `info` (the default, JSON for collectors), `debug` for a person at a terminal */
  requestLogs?: 'info' | 'debug'
}

/** What a client's request id may be: a token of 1–128 characters that logs and the audit trail take as is. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:@=+-]{1,128}$/

/** The request id: the client's `X-Request-Id` when it is safe, else a new UUID (never refused, never dropped from the audit). */
export function requestIdOf(req: { headers: Record<string, string | string[] | undefined> }): string {
  const given = req.headers['x-request-id']
  return typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : randomUUID()
}

/** Request logs at debug (a failed request still logs its error), for a person reading the terminal. */
class QuietRequests extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    if (!this.isLogDisabled(request)) request.log.debug({ req: request }, 'incoming request')
  }

  override requestCompleted(error: Error | null, request: FastifyRequest, reply: FastifyReply): void {
    if (error) super.requestCompleted(error, request, reply, {})
    else if (!this.isLogDisabled(request)) reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, 'request completed')
  }
}

/** proxy-addr's trust of the nearest `hops` proxies (what fastify makes of a number). */
const trustHops = (hops: number) => (_address: string, hop: number) => hop < hops

export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const { config } = deps
  const auth = createAuthenticator(config)
  if (auth.open && !isLoopback(config.HOST)) {
    throw new Error(`HOST=${config.HOST}: refusing to listen beyond loopback with no credentials configured (set HPH_API_KEYS or the HPH_JWT_* settings)`)
  }
  const app = Fastify({
    loggerInstance: deps.log.child({ stage: 'api' }) as FastifyBaseLogger,
    bodyLimit: config.HPH_MAX_BODY_BYTES,
    // the client's X-Request-Id when it is a safe token, else one of ours: it goes into logs and the audit trail
    requestIdHeader: false,
    genReqId: requestIdOf,
    requestTimeout: config.HPH_REQUEST_TIMEOUT_MS,
    connectionTimeout: config.HPH_IDLE_TIMEOUT_MS,
    // a hop count trusts that many proxies nearest to us (the types take it as the function it compiles to)
    trustProxy: typeof config.HPH_TRUST_PROXY === 'number' ? trustHops(config.HPH_TRUST_PROXY) : config.HPH_TRUST_PROXY,
    // fastify logs each request at info; at a terminal the same two lines go to debug
    ...(deps.requestLogs === 'debug' ? { logController: new QuietRequests() } : {}),
  })
  if (deps.onRoute) app.addHook('onRoute', deps.onRoute)
  installErrorHandling(app)
  // every route's params, query and body are checked by its zod schema, from which /openapi.json is made
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)
  // before the routes: the document collects each route as it is registered
  await installOpenApi(app)
  // docs/api.md §2: rate limits, authentication and per-user authorisation in one hook; an audit event after each answer
  await installAccess(app, { auth, config })
  installErasingGuard(app, { nats: deps.nats, prefix: config.HPH_PREFIX, userRefSecret: userRefSecret(config) })
  installAudit(app, { nats: deps.nats, prefix: config.HPH_PREFIX, userRefSecret: userRefSecret(config), deniedWindowS: config.HPH_AUDIT_DENIED_WINDOW_S, metrics: deps.metrics })
  metricsRoutes(app, deps.metrics)
  samplesRoutes(app, { nats: deps.nats, prefix: config.HPH_PREFIX, maxSamples: config.HPH_MAX_SAMPLES, maxJsonDepth: config.HPH_MAX_JSON_DEPTH })
  await healthkitExportRoutes(app, {
    nats: deps.nats,
    prefix: config.HPH_PREFIX,
    maxSamples: config.HPH_MAX_SAMPLES,
    batchSize: config.HPH_IMPORT_BATCH_SIZE,
    inFlight: config.HPH_IMPORT_IN_FLIGHT,
    maxBytes: config.HPH_MAX_EXPORT_BYTES,
    maxConcurrent: config.HPH_MAX_CONCURRENT_IMPORTS,
    limits: exportLimitsOf(config),
    parserHeapMb: config.HPH_EXPORT_PARSER_HEAP_MB,
    erasing: { nats: deps.nats, prefix: config.HPH_PREFIX, userRefSecret: userRefSecret(config) },
  })
  const readDb = deps.readDb ?? deps.db
  readRoutes(app, { db: readDb })
  const userData = { nats: deps.nats, db: deps.db, prefix: config.HPH_PREFIX, schema: config.HPH_DB_SCHEMA }
  exportRoutes(app, userData)
  eraseRoutes(app, { ...userData, log: deps.log, userRefSecret: userRefSecret(config), options: { lockTimeoutMs: config.HPH_ERASE_LOCK_TIMEOUT_MS } })
  opsRoutes(app, deps.probes, { timeoutMs: config.HPH_READY_TIMEOUT_MS })
  // docs/operating.md §10: the dashboard at GET /, and the two reads it needs beyond the API's own
  trendsRoutes(app, { db: readDb })
  statusRoutes(app, { nats: deps.nats, db: deps.db, prefix: config.HPH_PREFIX })
  await dashboardRoutes(app)
  if (auth.open) deps.log.warn('no HPH_API_KEYS and no JWT settings: the API is open to anyone on this machine (loopback only)')
  else deps.log.info({ auth: auth.modes }, 'api authentication')
  return app
}

/** A process without the api (`hph worker <stage>`): only /healthz, /readyz and /metrics, so it can be probed and scraped. */
export async function buildOpsServer(deps: Pick<ApiDeps, 'log' | 'probes' | 'metrics'> & { readyTimeoutMs?: number }): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: deps.log.child({ stage: 'ops' }) as FastifyBaseLogger })
  installErrorHandling(app)
  // the routes' schemas are zod, as on the api: fastify's own JSON-schema compilers cannot read them
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)
  metricsRoutes(app, deps.metrics)
  opsRoutes(app, deps.probes, deps.readyTimeoutMs === undefined ? {} : { timeoutMs: deps.readyTimeoutMs })
  return app
}
