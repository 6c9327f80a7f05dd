import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { loadConfig, type Config } from '../../config.ts'

export interface TestDatabase {
  name: string
  config: Pick<Config, 'DATABASE_URL' | 'HPH_DB_SCHEMA' | 'HPH_ANALYST_ROLE'>
  /** terminates its connections and drops it */
  drop(): Promise<void>
}

/** The server of DATABASE_URL (default 127.0.0.1:5432), database `name`. */
function urlOf(name: string): string {
  const url = new URL(loadConfig(process.env).DATABASE_URL)
  url.pathname = `/${name}`
  return url.toString()
}

async function admin<T>(work: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: urlOf('postgres') })
  await client.connect()
  try {
    return await work(client)
  } finally {
    await client.end()
  }
}

/** A fresh, uniquely named database (`hph_test_<random>`) for one test file. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `hph_test_${randomBytes(6).toString('hex')}`
  await admin((c) => c.query(`create database "${name}"`))
  return {
    name,
    config: { DATABASE_URL: urlOf(name), HPH_DB_SCHEMA: 'hph', HPH_ANALYST_ROLE: 'hph_analyst' },
    drop: async () => void (await admin((c) => c.query(`drop database if exists "${name}" with (force)`))),
  }
}
