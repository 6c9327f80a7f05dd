import { readFileSync } from 'node:fs'
import { Validator } from '@seriousme/openapi-schema-validator'
import { Ajv2020 } from 'ajv/dist/2020.js'
import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMetrics } from '../../api/metrics.ts'
import { buildApi } from '../../api/server.ts'
import { prepare } from '../../pipeline/start.ts'
import { closeDb, createDb, type Database } from '../../schema/db.ts'
import { testEnv, type TestEnv } from '../helpers/env.ts'

// GET /openapi.json and GET /docs (docs/api.md): the document is valid OpenAPI 3.1, holds every route the
// server registers with its parameters, bodies, answers and error bodies, and what the server answers fits it.

const ADMIN = 'admin-key'
const ANA = 'ana-key'

interface Operation {
  parameters?: Array<{ in: string; name: string; required?: boolean }>
  requestBody?: { content: Record<string, unknown> }
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>
  security?: Array<Record<string, string[]>>
}
interface Doc {
  openapi: string
  paths: Record<string, Record<string, Operation>>
  components: { securitySchemes: Record<string, { type: string; scheme?: string; bearerFormat?: string }>; schemas: Record<string, unknown> }
}

let env: TestEnv
let db: Kysely<Database>
let pool: pg.Pool
let app: FastifyInstance
const routes: Array<{ method: string; url: string; hidden: boolean }> = []
let doc: Doc

beforeAll(async () => {
  env = await testEnv({ HPH_API_KEYS: `${ADMIN}:admin,${ANA}:user:ana` })
  ;({ db, pool } = createDb(env.config, { max: 2 }))
  await prepare(env.config, env.log, env.nats, db)
  app = await buildApi({
    config: env.config,
    log: env.log,
    nats: env.nats,
    db,
    probes: [],
    metrics: createMetrics({ readJetStream: async () => ({ consumers: [], dlq: null, complete: true }), stages: [] }),
    onRoute: (r) => {
      for (const method of [r.method].flat()) routes.push({ method, url: r.url, hidden: Boolean((r.schema as { hide?: boolean } | undefined)?.hide) })
    },
  })
  await app.ready()
  const res = await app.inject({ method: 'GET', url: '/openapi.json' })
  expect(res.statusCode).toBe(200)
  doc = res.json<Doc>()
})
afterAll(async () => {
  await app?.close()
  if (db) await closeDb(db, pool)
  await env?.cleanup()
})

/** `/v1/users/:userId` → `/v1/users/{userId}` */
const openapiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}')
const op = (method: string, path: string) => doc.paths[path]?.[method.toLowerCase()]

describe('GET /openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    expect(doc.openapi).toMatch(/^3\.1\./)
    const r = await new Validator().validate(doc as unknown as Parameters<Validator['validate']>[0])
    expect(r.errors ?? []).toEqual([])
    expect(r.valid).toBe(true)
  })

  it("holds every route the server registers (but the /docs page's own files, which it marks hidden)", () => {
    const hidden = routes.filter((r) => r.hidden)
    expect(hidden.length).toBeGreaterThan(0)
    for (const r of hidden) expect(r.url).toMatch(/^\/docs(\/|$)/)
    const missing = routes.filter((r) => !r.hidden && r.method !== 'HEAD' && !op(r.method, openapiPath(r.url))).map((r) => `${r.method} ${r.url}`)
    expect(missing).toEqual([])
    expect(routes.length).toBeGreaterThan(20)
  })

  it('names the routes of the contract, with their parameters, bodies and answers', () => {
    const v1 = [
      ['POST', '/v1/users/{userId}/samples', '202'],
      ['POST', '/v1/users/{userId}/healthkit-export', '202'],
      ['GET', '/v1/users/{userId}/hrv/daily', '200'],
      ['GET', '/v1/users/{userId}/sleep/daily', '200'],
      ['GET', '/v1/users/{userId}/readiness', '200'],
      ['GET', '/v1/users/{userId}/baseline', '200'],
      ['GET', '/v1/users/{userId}/cpt', '200'],
      ['DELETE', '/v1/users/{userId}', '200'],
      ['GET', '/v1/users/{userId}/export', '200'],
    ] as const
    for (const [method, path, ok] of v1) {
      const o = op(method, path)
      expect(o, `${method} ${path}`).toBeDefined()
      expect(o!.parameters?.find((p) => p.in === 'path' && p.name === 'userId')?.required, path).toBe(true)
      expect(o!.security, path).toEqual([{ apiKey: [] }, { jwt: [] }])
      expect(Object.keys(o!.responses), path).toEqual(expect.arrayContaining([ok, '400', '401', '403', '429']))
      for (const s of ['400', '401', '403', '429']) expect(o!.responses[s]?.content?.['application/json']?.schema, `${path} ${s}`).toEqual({ $ref: '#/components/schemas/Error' })
    }
    for (const path of ['/v1/users/{userId}/hrv/daily', '/v1/users/{userId}/sleep/daily', '/v1/users/{userId}/readiness']) {
      expect(
        op('GET', path)!
          .parameters!.filter((p) => p.in === 'query')
          .map((p) => [p.name, p.required]),
      ).toEqual([
        ['from', true],
        ['to', true],
      ])
    }
    for (const path of ['/v1/users/{userId}/baseline', '/v1/users/{userId}/cpt']) expect(op('GET', path)!.responses['404']).toBeDefined()
    const items = (path: string) => (op('GET', path)!.responses['200']!.content!['application/json']!.schema as { items: { properties: object } }).items.properties
    expect(Object.keys(items('/v1/users/{userId}/hrv/daily'))).toEqual(['day', 'metric', 'valueMs', 'lnValue', 'n', 'minMs', 'maxMs', 'basis'])
    expect(Object.keys(items('/v1/users/{userId}/sleep/daily'))).toEqual([
      'day',
      'totalSleepMin',
      'inBedMin',
      'deepMin',
      'remMin',
      'coreMin',
      'asleepUnspecifiedMin',
      'awakeMin',
      'napMin',
      'efficiency',
      'episodeStart',
      'episodeEnd',
      'sleepOnset',
      'wakeTime',
      'valid',
    ])
    expect(Object.keys(items('/v1/users/{userId}/readiness'))).toEqual(['day', 'score', 'label', 'pHigh', 'pMedium', 'pLow', 'sleepState', 'hrvState'])
    const samplesBody = op('POST', '/v1/users/{userId}/samples')!.requestBody!.content['application/json'] as { schema: { properties: object; required: string[] } }
    expect(Object.keys(samplesBody.schema.properties)).toEqual(['batchId', 'source', 'samples'])
    expect(samplesBody.schema.required).toEqual(['samples'])
    expect(Object.keys(op('POST', '/v1/users/{userId}/healthkit-export')!.requestBody!.content)).toEqual(expect.arrayContaining(['application/xml', 'application/zip']))
    expect(Object.keys(op('GET', '/v1/users/{userId}/export')!.responses['200']!.content!)).toEqual(['application/x-ndjson'])
    for (const path of ['/healthz', '/readyz', '/metrics', '/openapi.json']) {
      expect(op('GET', path), path).toBeDefined()
      expect(op('GET', path)!.security, path).toBeUndefined()
    }
    expect(Object.keys(op('GET', '/readyz')!.responses)).toEqual(['200', '503'])
  })

  it('describes both ways of authenticating: a static API key and a JWT, each a bearer token', () => {
    expect(doc.components.securitySchemes).toEqual({
      apiKey: expect.objectContaining({ type: 'http', scheme: 'bearer' }),
      jwt: expect.objectContaining({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' }),
    })
  })

  it('fits what the server answers, errors included', async () => {
    const ajv = new Ajv2020({ strict: false })
    ajv.addSchema({ $id: 'doc', components: doc.components }, 'doc')
    const fits = (method: string, path: string, status: number, body: unknown) => {
      let schema = op(method, path)!.responses[String(status)]!.content!['application/json']!.schema
      // the error body is a reference into the document's components
      schema = JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"doc#/components/')) as object
      const check = ajv.compile(schema as object)
      expect(check(body) ? [] : check.errors, `${method} ${path} ${status}`).toEqual([])
    }
    const ana = { authorization: `Bearer ${ANA}` }
    const batch = {
      batchId: 'openapi-1',
      samples: [
        { type: 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN', value: 48.2, unit: 'ms', startDate: '2026-03-01T02:14:00-08:00', endDate: '2026-03-01T02:15:00-08:00' },
        { type: 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN', value: 9000, unit: 'ms', startDate: '2026-03-01T02:16:00-08:00', endDate: '2026-03-01T02:17:00-08:00' },
      ],
    }
    const posted = await app.inject({ method: 'POST', url: '/v1/users/ana/samples', headers: ana, payload: batch })
    expect(posted.statusCode).toBe(202)
    fits('POST', '/v1/users/{userId}/samples', 202, posted.json())
    const again = await app.inject({ method: 'POST', url: '/v1/users/ana/samples', headers: ana, payload: batch })
    expect(again.statusCode).toBe(200)
    fits('POST', '/v1/users/{userId}/samples', 200, again.json())
    const cases = [
      { method: 'POST', url: '/v1/users/ana/samples', path: '/v1/users/{userId}/samples', headers: ana, payload: { nope: 1 }, status: 400, error: 'validation_failed' },
      { method: 'POST', url: '/v1/users/ana/samples', path: '/v1/users/{userId}/samples', headers: {}, payload: batch, status: 401, error: 'unauthorized' },
      { method: 'GET', url: '/v1/users/bo/hrv/daily?from=2026-03-01&to=2026-03-02', path: '/v1/users/{userId}/hrv/daily', headers: ana, status: 403, error: 'forbidden' },
      { method: 'GET', url: '/v1/users/ana/hrv/daily?from=2026-03-02&to=2026-03-01', path: '/v1/users/{userId}/hrv/daily', headers: ana, status: 400, error: 'invalid_range' },
      { method: 'GET', url: '/v1/users/ana/hrv/daily?from=2026-02-30', path: '/v1/users/{userId}/hrv/daily', headers: ana, status: 400, error: 'invalid_range' },
      { method: 'GET', url: '/v1/users/ana/trends?days=0', path: '/v1/users/{userId}/trends', headers: ana, status: 400, error: 'invalid_days' },
      { method: 'GET', url: '/v1/users/ana/baseline', path: '/v1/users/{userId}/baseline', headers: ana, status: 404, error: 'not_found' },
      { method: 'GET', url: '/v1/users', path: '/v1/users', headers: ana, status: 403, error: 'forbidden' },
    ]
    for (const c of cases) {
      const res = await app.inject({ method: c.method as 'GET', url: c.url, headers: c.headers, ...(c.payload ? { payload: c.payload } : {}) })
      expect([res.statusCode, res.json<{ error: string }>().error], c.url).toEqual([c.status, c.error])
      fits(c.method, c.path, c.status, res.json())
    }
    const hrv = await app.inject({ method: 'GET', url: '/v1/users/ana/hrv/daily?from=2026-03-01&to=2026-03-02', headers: ana })
    fits('GET', '/v1/users/{userId}/hrv/daily', 200, hrv.json())
    const users = await app.inject({ method: 'GET', url: '/v1/users', headers: { authorization: `Bearer ${ADMIN}` } })
    fits('GET', '/v1/users', 200, users.json())
    const status = await app.inject({ method: 'GET', url: '/v1/ops/status', headers: { authorization: `Bearer ${ADMIN}` } })
    fits('GET', '/v1/ops/status', 200, status.json())
    const exported = await app.inject({
      method: 'POST',
      url: '/v1/users/ana/healthkit-export',
      headers: { ...ana, 'content-type': 'application/xml' },
      payload: readFileSync('test/fixtures/healthkit-export-small.xml'),
    })
    expect(exported.statusCode, exported.body).toBe(202)
    fits('POST', '/v1/users/{userId}/healthkit-export', 202, exported.json())
    const erased = await app.inject({ method: 'DELETE', url: '/v1/users/zed', headers: { authorization: `Bearer ${ADMIN}` } })
    expect(erased.statusCode, erased.body).toBe(200)
    fits('DELETE', '/v1/users/{userId}', 200, erased.json())
    fits('GET', '/healthz', 200, (await app.inject({ method: 'GET', url: '/healthz' })).json())
    fits('GET', '/readyz', 200, (await app.inject({ method: 'GET', url: '/readyz' })).json())
  })
})

describe('GET /docs', () => {
  it('renders the document from files this server serves: nothing is fetched from elsewhere', async () => {
    const page = await app.inject({ method: 'GET', url: '/docs/' })
    expect(page.statusCode).toBe(200)
    expect(page.headers['content-type']).toMatch(/text\/html/)
    const refs = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)
    expect(refs.length).toBeGreaterThan(2)
    for (const ref of refs) {
      expect(ref, ref).not.toMatch(/^(https?:)?\/\//)
      const res = await app.inject({ method: 'GET', url: new URL(ref, 'http://h/docs/').pathname })
      expect(res.statusCode, ref).toBe(200)
    }
    const init = await app.inject({ method: 'GET', url: '/docs/static/swagger-initializer.js' })
    // the spec is read from this server; no address elsewhere (but in comments and inline data: images)
    expect(init.body).toMatch(/url: resolveUrl\('\.\/json'\)/)
    const code = init.body.replace(/'data:[^']*'/g, "''").replace(/^\s*\/\/.*$/gm, '')
    expect(code).not.toMatch(/https?:\/\//)
    // the page's content security policy allows this server alone
    expect(String(page.headers['content-security-policy'])).toMatch(/default-src 'self'/)
  })
})
