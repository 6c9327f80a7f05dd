import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify'
import type { FastifySerializerCompiler } from 'fastify/types/schema.js'
import { createJsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { UserId } from '../streams/schemas.ts'
import { HttpError } from './errors.ts'

// GET /openapi.json and GET /docs (docs/api.md): the document is generated from the zod schemas each route
// validates its params, query and body with (the validator compiler below), and the schemas of its answers.

/** What a request that fails a route's schema is answered with: a stable code and a sentence. */
interface Refusal {
  code: string
  message: string
}
const refusals = new WeakMap<z.ZodType, Refusal>()

/** Names the error code and message a request failing `schema` gets (else `validation_failed`). */
export function refusing<T extends z.ZodType>(schema: T, code: string, message: string): T {
  refusals.set(schema, { code, message })
  return schema
}

const fastChecks = new WeakMap<z.ZodType, (data: unknown) => boolean>()

/**
 * Lets input that `plain` recognises pass without the schema's parse (a hot route's body); `plain` must imply the
 * schema accepts the input unchanged, and everything it does not recognise still goes to the schema.
 */
export function recognising<T extends z.ZodType>(schema: T, plain: (data: unknown) => boolean): T {
  fastChecks.set(schema, plain)
  return schema
}

/**
 * Validates a route's params, query and body with its zod schema; a failure is a 400 with every problem's path.
 * What passes is handed on as it came (a raw event keeps the body whole, unknown fields included).
 */
export const validatorCompiler: FastifySchemaCompiler<z.ZodType> =
  ({ schema, httpPart }) =>
  (data) => {
    if (fastChecks.get(schema)?.(data)) return { value: data }
    const r = schema.safeParse(data)
    if (r.success) return { value: data }
    const details = r.error.issues.map((i) => ({ path: i.path.map(String).join('.') || `(${httpPart ?? 'request'})`, problem: i.message }))
    const refusal = refusals.get(schema) ?? { code: 'validation_failed', message: `the request's ${httpPart ?? 'input'} is not valid` }
    return { error: new HttpError(400, refusal.code, `${refusal.message}: ${details.map((d) => `${d.path} ${d.problem}`).join('; ')}`, details) }
  }

/** Answers are written as they are (JSON.stringify): their schemas document them, the handlers build them. */
export const serializerCompiler: FastifySerializerCompiler<unknown> = () => (data) => JSON.stringify(data)

export const ErrorBody = z
  .object({
    error: z.string().describe('a stable code: validation_failed, invalid_user_id, unauthorized, forbidden, not_found, rate_limited, unavailable, …'),
    message: z.string().describe('what went wrong, for a person'),
    details: z.array(z.object({ path: z.string(), problem: z.string() })),
  })
  .meta({ id: 'Error' })

const ERROR_MEANING: Record<number, string> = {
  400: 'the request is not valid (the body, a parameter or the query)',
  401: 'no token, or a token that is not valid',
  403: 'the token may not reach this user or this operation',
  404: 'nothing there yet',
  413: 'the body is larger than the limit (HPH_MAX_BODY_BYTES, HPH_MAX_EXPORT_BYTES)',
  415: 'a Content-Type the route does not take',
  429: 'too many requests from this address or for this token (Retry-After says when to come back)',
  500: 'an unexpected failure',
  503: 'a dependency (NATS, PostgreSQL, the token issuer) is away, or the server is busy: retry (Retry-After)',
}

/** The error answers of a route, each with the one error body. */
export function errors(...statuses: number[]): Record<number, z.ZodType> {
  return Object.fromEntries(statuses.map((s) => [s, ErrorBody.describe(ERROR_MEANING[s] ?? 'an error')]))
}

/** What every /v1 route may answer besides its own: authentication, authorisation, rate limits, a dependency away. */
export const GUARDED_ERRORS = [400, 401, 403, 429, 500, 503] as const

export const UserParams = refusing(z.object({ userId: UserId.describe('1–64 characters of [A-Za-z0-9_-]') }), 'invalid_user_id', 'userId must be 1–64 characters of [A-Za-z0-9_-]')

/** Both ways of sending a token: `Authorization: Bearer <token>` carries either. */
export const SECURITY: Array<Record<string, string[]>> = [{ apiKey: [] }, { jwt: [] }]

/** A route schema's tags and security for the /v1 API. */
export const v1 = (tag: string) => ({ tags: [tag], security: SECURITY })

/** Routes with a body other than JSON (the export upload): documented as bytes, read as a stream by the route. */
const transform = createJsonSchemaTransform({ skipList: [] })

/**
 * Registers the document's generator (it collects every route registered after it) and the page at /docs,
 * whose files come from node_modules (@fastify/swagger-ui): nothing is fetched from elsewhere.
 */
export async function installOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Holistic Performance Hub API',
        version: '1.0.0',
        description: 'Apple HealthKit samples in; HRV and sleep summaries, baselines, CPT tables and a readiness score out. Every error body is `{error, message, details}`.',
      },
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer', description: 'a static key of HPH_API_KEYS (`<key>:admin` or `<key>:user:<userId>`), sent as `Authorization: Bearer <key>`' },
          jwt: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description: 'a JWT of the OIDC issuer (HPH_JWT_ISSUER, HPH_JWT_AUDIENCE, HPH_JWKS_URL): `sub` is the userId, scope `hph:admin` is admin',
          },
        },
      },
      tags: [
        { name: 'samples', description: 'posting samples and exports' },
        { name: 'insights', description: 'reading what was computed' },
        { name: 'users', description: "a user's data: export, erasure, the list" },
        { name: 'operating', description: 'probes, metrics, status and this document' },
        { name: 'dashboard', description: "the dashboard's files" },
      ],
    },
    transform: (doc) => {
      const out = transform(doc)
      const schema = out.schema as Record<string, unknown> | undefined
      // a route that reads its body as a stream has no body schema to validate: it is documented as bytes
      if (schema && Array.isArray(schema.consumes) && !schema.body) schema.body = { type: 'string', contentMediaType: 'application/octet-stream', description: schema['x-body'] }
      if (schema) delete schema['x-body']
      return out
    },
    transformObject: jsonSchemaTransformObject,
  })
  await app.register(fastifySwaggerUi, { routePrefix: '/docs', uiConfig: { deepLinking: true, tryItOutEnabled: false }, staticCSP: true })
  app.get(
    '/openapi.json',
    { schema: { tags: ['operating'], summary: 'this document (OpenAPI 3.1)', response: { 200: z.looseObject({ openapi: z.string() }).describe('the OpenAPI document') } } },
    async () => app.swagger(),
  )
}
