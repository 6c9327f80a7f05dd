import { randomBytes } from 'node:crypto'
import { isIP } from 'node:net'
import { z } from 'zod'

// docs/operating.md §9: every setting comes from the environment, validated once here.
const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback)
const GIB = 1024 ** 3
/** static keys and secrets at least this long (a guessable one is no credential) */
export const MIN_SECRET_CHARS = 32
const streamBytes = (fallback: number) =>
  z.coerce
    .number()
    .int()
    .min(1024 * 1024)
    .default(fallback)
const JWT_ALGORITHMS = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'])

const PROXY_KEYWORDS = new Set(['loopback', 'linklocal', 'uniquelocal'])

/** HPH_TRUST_PROXY as fastify's `trustProxy`: false, a hop count, or the trusted addresses. */
function trustedProxies(v: string, ctx: z.RefinementCtx): false | number | string[] {
  const text = v.trim()
  if (text === '' || text === 'false') return false
  if (/^\d+$/.test(text) && Number(text) >= 1) return Number(text)
  const list = text
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean)
  const valid = (a: string) => {
    if (PROXY_KEYWORDS.has(a)) return true
    const [address = '', bits, ...more] = a.split('/')
    const family = isIP(address)
    if (family === 0 || more.length > 0) return false
    return bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128))
  }
  const bad = list.filter((a) => !valid(a))
  if (text === 'true' || list.length === 0 || bad.length > 0) {
    ctx.addIssue({
      code: 'custom',
      message: `a hop count, or the proxies' addresses or CIDRs comma-separated, or false (not ${text === 'true' ? 'true: every address could name its own client address' : bad.join(', ')})`,
    })
    return z.NEVER
  }
  return list
}

export const ConfigSchema = z
  .object({
    NATS_URL: z.string().min(1).default('nats://127.0.0.1:4222'),
    DATABASE_URL: z.string().url().default('postgres://postgres@127.0.0.1:5432/hph'),
    PORT: z.coerce.number().int().min(0).max(65535).default(8080),
    HOST: z.string().min(1).default('127.0.0.1'),
    HPH_PREFIX: z
      .string()
      .regex(/^[a-z][a-z0-9_]{0,30}$/, 'lower-case letters, digits and _ (it becomes a subject token and a stream-name prefix)')
      .default('hph'),
    HPH_DB_SCHEMA: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a plain lower-case SQL identifier')
      .default('hph'),
    HPH_ANALYST_ROLE: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/)
      .default('hph_analyst'),
    HPH_API_KEYS: z.string().default(''),
    /** development only: static keys and the user-reference secret may be shorter than MIN_SECRET_CHARS */
    HPH_ALLOW_SHORT_KEYS: z
      .enum(['true', 'false', '1', '0', ''])
      .default('false')
      .transform((v) => v === 'true' || v === '1'),
    /** the HMAC key of `userRef` (streams/audit.ts): how an erased user is named in the audit trail */
    HPH_USER_REF_SECRET: z.string().optional(),
    /** an erase waits this long for a rebuild in flight to end (it holds the rebuild lock while it runs) */
    HPH_ERASE_LOCK_TIMEOUT_MS: positiveInt(600_000),
    /** denied requests are audited as one event per client address and this many seconds, with their count */
    HPH_AUDIT_DENIED_WINDOW_S: positiveInt(60),
    HPH_JWT_ISSUER: z.string().optional(),
    HPH_JWT_AUDIENCE: z.string().optional(),
    HPH_JWKS_URL: z.string().url().optional(),
    // docs/api.md §2: asymmetric algorithms only; `none` and the HMAC family (a shared secret) never
    HPH_JWT_ALGORITHMS: z
      .string()
      .default('RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512,EdDSA')
      .transform((s) =>
        s
          .split(',')
          .map((a) => a.trim())
          .filter(Boolean),
      )
      .refine((algs) => algs.length > 0 && algs.every((a) => JWT_ALGORITHMS.has(a)), `a comma-separated list of ${[...JWT_ALGORITHMS].join(', ')} (never none or HS*)`),
    HPH_JWT_CLOCK_TOLERANCE_S: z.coerce.number().int().min(0).max(300).default(5),
    /** an unknown `kid` refetches the JWKS at most once per this many seconds (key rotation without a flood) */
    HPH_JWKS_COOLDOWN_S: positiveInt(30),
    HPH_JWKS_TIMEOUT_MS: positiveInt(5_000),
    /** the key set is refetched once older than this; while the issuer is away, the last one fetched keeps serving */
    HPH_JWKS_MAX_AGE_S: positiveInt(600),
    /** requests per HPH_RATE_LIMIT_WINDOW_S from one client address, and for one principal (token subject or key) */
    HPH_RATE_LIMIT_PER_IP: positiveInt(6_000),
    HPH_RATE_LIMIT_PER_TOKEN: positiveInt(1_200),
    HPH_RATE_LIMIT_WINDOW_S: positiveInt(60),
    /**
     * the proxies whose X-Forwarded-For names the client: a hop count, or their addresses and CIDRs (and
     * proxy-addr's `loopback`, `linklocal`, `uniquelocal`), comma-separated; `false` none. Never every address:
     * any client could then name its own.
     */
    HPH_TRUST_PROXY: z.string().default('false').transform(trustedProxies),
    /** the whole request, body upload included, must arrive within this (an export upload of gigabytes takes minutes) */
    HPH_REQUEST_TIMEOUT_MS: positiveInt(3_600_000),
    /** a connection silent this long is closed (a client that stops sending mid-body) */
    HPH_IDLE_TIMEOUT_MS: positiveInt(120_000),
    HPH_MAX_JSON_DEPTH: positiveInt(32),
    HPH_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
    HPH_STREAM_STORAGE: z.enum(['file', 'memory']).default('file'),
    HPH_INGEST_MAX_AGE_DAYS: z.coerce.number().min(0).default(3650),
    HPH_INGEST_DUPLICATE_WINDOW_S: positiveInt(86_400),
    // docs/architecture.md §6: every stream is bounded in bytes (nats-server reserves them on its store: ≈ 6 GiB in all
    // by default, so a demo fits beside other pipelines; size them to the data in production)
    HPH_INGEST_MAX_BYTES: streamBytes(2 * GIB),
    HPH_SAMPLES_MAX_BYTES: streamBytes(2 * GIB),
    HPH_CHANGES_MAX_BYTES: streamBytes(GIB / 4),
    HPH_INSIGHTS_MAX_BYTES: streamBytes(GIB),
    HPH_DLQ_MAX_BYTES: streamBytes(GIB / 4),
    HPH_AUDIT_MAX_BYTES: streamBytes(GIB / 2),
    HPH_ERASING_MAX_BYTES: streamBytes(16 * 1024 * 1024),
    HPH_MAX_BODY_BYTES: positiveInt(5 * 1024 * 1024),
    HPH_MAX_SAMPLES: positiveInt(10_000),
    // docs/api.md §4: its own body limit (an export is often 0.5–2 GB)
    HPH_MAX_EXPORT_BYTES: positiveInt(8 * 1024 ** 3),
    // docs/architecture.md §6: an export is refused (413) past any of these, however it inflates
    HPH_EXPORT_MAX_XML_BYTES: positiveInt(16 * 1024 ** 3),
    HPH_EXPORT_MAX_DEPTH: positiveInt(32),
    HPH_EXPORT_MAX_NAME_CHARS: positiveInt(256),
    HPH_EXPORT_MAX_VALUE_CHARS: positiveInt(64 * 1024),
    HPH_EXPORT_MAX_TEXT_CHARS: positiveInt(1024 * 1024),
    HPH_EXPORT_MAX_DOCTYPE_CHARS: positiveInt(1024 * 1024),
    /** the heap of an export's parse thread (worker resourceLimits) */
    HPH_EXPORT_PARSER_HEAP_MB: z.coerce.number().int().min(32).max(4096).default(256),
    HPH_IMPORT_BATCH_SIZE: z.coerce.number().int().min(1).max(10_000).default(1000),
    HPH_IMPORT_IN_FLIGHT: z.coerce.number().int().min(1).max(256).default(8),
    // each export upload parses on a thread of its own (a core and ~60 MB): this many at once per api process
    HPH_MAX_CONCURRENT_IMPORTS: z.coerce.number().int().min(1).max(64).default(2),
    HPH_BATCH_SIZE: z.coerce.number().int().min(1).max(10_000).default(1000),
    // docs/architecture.md §5: a pull is bounded by messages and by bytes; an event by bytes (and the server's max_payload)
    HPH_PULL_MAX_BYTES: z.coerce
      .number()
      .int()
      .min(64 * 1024)
      .default(8 * 1024 * 1024),
    HPH_EVENT_MAX_BYTES: z.coerce
      .number()
      .int()
      .min(4096)
      .default(256 * 1024),
    HPH_MAX_DELIVER: positiveInt(5),
    // docs/architecture.md §8.1: a stage killed outright gives its work back after this; a long batch sends working()
    HPH_ACK_WAIT_S: z.coerce.number().int().min(1).max(3600).default(30),
    HPH_SHUTDOWN_TIMEOUT_MS: positiveInt(20_000),
    // docs/architecture.md §8.3: no connection, statement or idle client waits for ever
    HPH_PG_CONNECT_TIMEOUT_MS: positiveInt(5_000),
    HPH_PG_STATEMENT_TIMEOUT_MS: positiveInt(60_000),
    HPH_PG_IDLE_TIMEOUT_MS: positiveInt(30_000),
    HPH_PG_KEEPALIVE_MS: positiveInt(10_000),
    /** the api's reads (and readiness) run on a pool of their own whose statements end after this */
    HPH_PG_READ_TIMEOUT_MS: positiveInt(3_000),
    /** each /readyz check answers within this, or counts as not ready */
    HPH_READY_TIMEOUT_MS: positiveInt(2_000),
    /** `auto`: readable lines for an interactive command in a terminal, JSON otherwise (log.ts) */
    HPH_LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .superRefine((c, ctx) => {
    // no guessable credentials: a static key or the user-reference secret is long unless development says otherwise
    if (!c.HPH_ALLOW_SHORT_KEYS) {
      c.HPH_API_KEYS.split(',')
        .map((e) => e.trim())
        .filter(Boolean)
        .forEach((entry, i) => {
          const key = entry.split(':')[0] ?? ''
          if (key.length < MIN_SECRET_CHARS)
            ctx.addIssue({
              code: 'custom',
              path: ['HPH_API_KEYS'],
              message: `entry ${i + 1}: a key of ${key.length} characters; at least ${MIN_SECRET_CHARS} (or HPH_ALLOW_SHORT_KEYS=true in development)`,
            })
        })
      if (c.HPH_USER_REF_SECRET !== undefined && c.HPH_USER_REF_SECRET.length < MIN_SECRET_CHARS) {
        ctx.addIssue({ code: 'custom', path: ['HPH_USER_REF_SECRET'], message: `at least ${MIN_SECRET_CHARS} characters (or HPH_ALLOW_SHORT_KEYS=true in development)` })
      }
    }
    if (c.HPH_USER_REF_SECRET === undefined && (c.HPH_API_KEYS.trim() !== '' || c.HPH_JWKS_URL)) {
      ctx.addIssue({
        code: 'custom',
        path: ['HPH_USER_REF_SECRET'],
        message: `required with credentials configured: the secret erased users are named by in the audit trail (${MIN_SECRET_CHARS}+ random characters)`,
      })
    }
    // JWT mode needs all three settings; any one alone is a mistake, not a mode
    const jwt = { HPH_JWT_ISSUER: c.HPH_JWT_ISSUER, HPH_JWT_AUDIENCE: c.HPH_JWT_AUDIENCE, HPH_JWKS_URL: c.HPH_JWKS_URL }
    const set = Object.values(jwt).filter(Boolean).length
    if (set > 0 && set < 3) {
      for (const [k, v] of Object.entries(jwt))
        if (!v) ctx.addIssue({ code: 'custom', path: [k], message: 'JWT mode needs HPH_JWT_ISSUER, HPH_JWT_AUDIENCE and HPH_JWKS_URL together' })
    }
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

/** A secret of this process alone: `userRef`'s key when none is configured (open development mode only). */
const PROCESS_SECRET = randomBytes(32).toString('hex')

/** The key of `userRef`: HPH_USER_REF_SECRET, or (open development mode, no credentials) one of this process. */
export function userRefSecret(c: Pick<Config, 'HPH_USER_REF_SECRET'>): string {
  return c.HPH_USER_REF_SECRET ?? PROCESS_SECRET
}

/** Database name from DATABASE_URL (the database `hph up` creates when missing). */
export function databaseName(config: Pick<Config, 'DATABASE_URL'>): string {
  const name = decodeURIComponent(new URL(config.DATABASE_URL).pathname.replace(/^\//, ''))
  return name || 'postgres'
}
