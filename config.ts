import { z } from 'zod'

// DESIGN.md §8: every setting comes from the environment, validated once here.
const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback)

export const ConfigSchema = z.object({
  NATS_URL: z.string().min(1).default('nats://127.0.0.1:4222'),
  DATABASE_URL: z.string().url().default('postgres://postgres@127.0.0.1:5432/hph'),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().min(1).default('127.0.0.1'),
  HPH_PREFIX: z.string().regex(/^[a-z][a-z0-9_]{0,30}$/, 'lower-case letters, digits and _ (it becomes a subject token and a stream-name prefix)').default('hph'),
  HPH_DB_SCHEMA: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a plain lower-case SQL identifier').default('hph'),
  HPH_ANALYST_ROLE: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/).default('hph_analyst'),
  HPH_API_KEYS: z.string().default(''),
  HPH_JWT_ISSUER: z.string().optional(),
  HPH_JWT_AUDIENCE: z.string().optional(),
  HPH_JWKS_URL: z.string().url().optional(),
  HPH_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  HPH_STREAM_STORAGE: z.enum(['file', 'memory']).default('file'),
  HPH_INGEST_MAX_AGE_DAYS: z.coerce.number().min(0).default(3650),
  HPH_INGEST_DUPLICATE_WINDOW_S: positiveInt(86_400),
  HPH_MAX_BODY_BYTES: positiveInt(5 * 1024 * 1024),
  HPH_MAX_SAMPLES: positiveInt(10_000),
  // spec/api.md "Backfill from an Apple Health export": its own body limit (an export is often 0.5–2 GB)
  HPH_MAX_EXPORT_BYTES: positiveInt(8 * 1024 ** 3),
  HPH_IMPORT_BATCH_SIZE: z.coerce.number().int().min(1).max(10_000).default(1000),
  HPH_IMPORT_IN_FLIGHT: z.coerce.number().int().min(1).max(256).default(8),
  HPH_BATCH_SIZE: z.coerce.number().int().min(1).max(10_000).default(1000),
  HPH_MAX_DELIVER: positiveInt(5),
  HPH_ACK_WAIT_S: positiveInt(60),
  HPH_SHUTDOWN_TIMEOUT_MS: positiveInt(20_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
})

export type Config = z.infer<typeof ConfigSchema>

export class ConfigError extends Error {
  readonly code = 'config_invalid'
}

/** Parses the environment once; a bad value stops start-up with the variable named. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const r = ConfigSchema.safeParse(env)
  if (r.success) return r.data
  const lines = r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`)
  throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`)
}

/** Database name from DATABASE_URL (the database `hph up` creates when missing). */
export function databaseName(config: Pick<Config, 'DATABASE_URL'>): string {
  const name = decodeURIComponent(new URL(config.DATABASE_URL).pathname.replace(/^\//, ''))
  return name || 'postgres'
}
