import { randomBytes } from 'node:crypto'
import { loadConfig, type Config } from '../../config.ts'
import { createLogger, type Logger } from '../../log.ts'
import { connectNats, type Nats } from '../../streams/connect.ts'
import { deleteTopology } from '../../streams/topology.ts'
import { createTestDatabase } from './db.ts'

export interface TestEnv {
  config: Config
  log: Logger
  /** a connection for the test's own publishing and inspection */
  nats: Nats
  /** removes the test's streams and database */
  cleanup(): Promise<void>
}

/** Its own database and HPH_PREFIX, so test files never collide with each other or with a running pipeline. */
export async function testEnv(overrides: Record<string, string> = {}): Promise<TestEnv> {
  const prefix = `t${randomBytes(5).toString('hex')}`
  const database = await createTestDatabase()
  const config = loadConfig({
    ...process.env,
    DATABASE_URL: database.config.DATABASE_URL,
    HPH_PREFIX: prefix,
    PORT: '0',
    HOST: '127.0.0.1',
    HPH_ACK_WAIT_S: '3',
    HPH_SHUTDOWN_TIMEOUT_MS: '10000',
    HPH_INGEST_MAX_AGE_DAYS: '1',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    ...overrides,
  })
  const nats = await connectNats(config, `test:${prefix}`)
  return {
    config,
    log: createLogger(config),
    nats,
    async cleanup() {
      await deleteTopology(nats.jsm, prefix)
      await nats.nc.close()
      await database.drop()
    },
  }
}

/** Polls until `probe` returns true (or throws after `ms`). */
export async function eventually(probe: () => Promise<boolean>, ms = 30_000, what = 'condition'): Promise<void> {
  const t0 = Date.now()
  while (!(await probe())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
