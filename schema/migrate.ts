import { Migrator, sql, type Kysely, type Migration, type MigrationProvider } from 'kysely'
import type { Config } from '../config.ts'
import type { Logger } from '../log.ts'
import { identifier } from './db.ts'
import { initial } from './migrations/0001_initial.ts'
import { insightTombstones } from './migrations/0002_insight_tombstones.ts'
import { insightDataCount } from './migrations/0003_insight_data_count.ts'
import { analystViews } from './migrations/0004_analyst_views.ts'
import { hrvTrendPerMetric } from './migrations/0005_hrv_trend_per_metric.ts'

type SchemaConfig = Pick<Config, 'HPH_DB_SCHEMA' | 'HPH_ANALYST_ROLE'>

/** Every migration by name, in order; imported, not scanned from disk (works the same under tsx and a bundle). */
export function migrations(config: SchemaConfig): Record<string, Migration> {
  const names = { schema: identifier(config.HPH_DB_SCHEMA), role: identifier(config.HPH_ANALYST_ROLE) }
  return {
    '0001_initial': initial(names),
    '0002_insight_tombstones': insightTombstones(names),
    '0003_insight_data_count': insightDataCount(names),
    '0004_analyst_views': analystViews(names),
    '0005_hrv_trend_per_metric': hrvTrendPerMetric(names),
  }
}

function migrator<DB>(db: Kysely<DB>, config: SchemaConfig): Migrator {
  const provider: MigrationProvider = { getMigrations: async () => migrations(config) }
  // the bookkeeping tables live beside the data, in the configured schema
  return new Migrator({ db, provider, migrationTableSchema: config.HPH_DB_SCHEMA })
}

/** Applies what is pending (each migration in its own transaction); returns the names applied now. */
export async function migrateToLatest<DB>(db: Kysely<DB>, config: SchemaConfig, log?: Pick<Logger, 'info'>): Promise<string[]> {
  const { error, results = [] } = await migrator(db, config).migrateToLatest()
  const failed = results.find((r) => r.status === 'Error')
  if (error || failed) {
    const what = failed ? `migration ${failed.migrationName}` : 'migrating'
    throw new Error(`${what} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
  }
  const applied = results.filter((r) => r.status === 'Success').map((r) => r.migrationName)
  for (const name of applied) log?.info({ migration: name }, 'migration applied')
  return applied
}

/**
 * The name of the latest applied migration, or undefined before the first. Without `schema` the
 * migration table is found through the search_path (createDb puts the configured schema first).
 */
export async function migrationVersion<DB>(db: Kysely<DB>, schema?: string): Promise<string | undefined> {
  const table = schema === undefined ? 'kysely_migration' : `${identifier(schema)}.kysely_migration`
  const found = await sql<{ t: string | null }>`select to_regclass(${table})::text as t`.execute(db)
  if (!found.rows[0]?.t) return undefined
  const r = await sql<{ name: string }>`select name from ${sql.raw(table)} order by name desc limit 1`.execute(db)
  return r.rows[0]?.name
}
