import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Config } from '../config.ts'
import type { Logger } from '../log.ts'
import type { Kysely } from 'kysely'
import type { Database } from '../schema/db.ts'
import type { Nats } from '../streams/connect.ts'
import { createAuthenticator, isLoopback } from './auth.ts'
import { installErrorHandling } from './errors.ts'
import { opsRoutes, type Probe } from './routes/ops.ts'
import { readRoutes } from './routes/read.ts'
import { samplesRoutes } from './routes/samples.ts'

export interface ApiDeps {
  config: Config
  log: Logger
  nats: Nats
  db: Kysely<Database>
  probes: Probe[]
}

export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const { config } = deps
  const auth = createAuthenticator(config)
  if (auth.open && !isLoopback(config.HOST)) {
    throw new Error(`HOST=${config.HOST}: refusing to listen beyond loopback with no credentials configured (set HPH_API_KEYS)`)
  }
  const app = Fastify({
    loggerInstance: deps.log.child({ stage: 'api' }) as FastifyBaseLogger,
    bodyLimit: config.HPH_MAX_BODY_BYTES,
    requestIdHeader: 'x-request-id',
  })
  installErrorHandling(app)
  samplesRoutes(app, { nats: deps.nats, prefix: config.HPH_PREFIX, maxSamples: config.HPH_MAX_SAMPLES, auth })
  readRoutes(app, { db: deps.db, auth })
  opsRoutes(app, deps.probes)
  if (auth.open) deps.log.warn('no HPH_API_KEYS: the API is open to anyone on this machine (loopback only)')
  return app
}
