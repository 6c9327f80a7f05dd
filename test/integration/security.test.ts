import { readFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT, type JWK, type JWTPayload } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApi } from '../../api/server.ts'
import { createMetrics } from '../../api/metrics.ts'
import { startPipeline, type Pipeline } from '../../pipeline/start.ts'
import { loadConfig } from '../../config.ts'
import { decodeJson } from '../../streams/envelope.ts'
import { streamName } from '../../streams/subjects.ts'
import { eventually, testEnv, type TestEnv } from '../helpers/env.ts'

// docs/api.md §2: JWT verified against a JWKS served here on loopback; per-user authorisation; audit; rate limits.

const ISSUER = 'https://issuer.test/'
const AUDIENCE = 'hph-api'
const ADMIN_KEY = 'static-admin-key'

let env: TestEnv
let p: Pipeline
let jwksServer: Server
let published: JWK[] = []
let jwksFetches = 0

type Key = Awaited<ReturnType<typeof generateKeyPair>>
let rsa: Key
let ec: Key
let rotated: Key

async function publicJwk(k: Key, kid: string, alg: string): Promise<JWK> {
  return { ...(await exportJWK(k.publicKey)), kid, alg, use: 'sig' }
}

function sign(claims: JWTPayload, opts: { key?: Key; kid?: string; alg?: string; iss?: string; aud?: string; exp?: number | string } = {}) {
  const alg = opts.alg ?? 'RS256'
  return new SignJWT(claims)
    .setProtectedHeader({ alg, kid: opts.kid ?? 'rsa-1' })
    .setIssuer(opts.iss ?? ISSUER)
    .setAudience(opts.aud ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? '5m')
    .sign((opts.key ?? rsa).privateKey)
}

beforeAll(async () => {
  rsa = await generateKeyPair('RS256')
  ec = await generateKeyPair('ES256')
  rotated = await generateKeyPair('RS256')
  published = [await publicJwk(rsa, 'rsa-1', 'RS256'), await publicJwk(ec, 'ec-1', 'ES256')]
  jwksServer = createServer((req, res) => {
    jwksFetches++
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: published }))
  })
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve))
  const { port } = jwksServer.address() as AddressInfo
  env = await testEnv({
    HPH_API_KEYS: `${ADMIN_KEY}:admin`,
    HPH_JWT_ISSUER: ISSUER,
    HPH_JWT_AUDIENCE: AUDIENCE,
    HPH_JWKS_URL: `http://127.0.0.1:${port}/jwks.json`,
    HPH_JWKS_COOLDOWN_S: '1',
    // denied requests are aggregated per address, user and window: a short window, so their events come soon
    HPH_AUDIT_DENIED_WINDOW_S: '1',
  })
  p = await startPipeline(env.config, env.log, { stages: [], api: true, prepare: true })
})
afterAll(async () => {
  await p?.stop()
  await env?.cleanup()
  await new Promise((r) => jwksServer?.close(r))
})

/** Denied requests the events count (each event is one address, user and window, with its count). */
const deniedCount = (events: Array<{ data: Record<string, unknown> }>) => events.reduce((n, e) => n + Number(e.data.count ?? 1), 0)

const get = (path: string, token?: string) => fetch(`${p.url}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} })
const hrvPath = (userId: string) => `/v1/users/${userId}/hrv/daily?from=2026-03-01&to=2026-03-02`

/** Every audit event stored so far, decoded, with its subject. */
async function auditEvents(): Promise<Array<{ subject: string; raw: string; data: Record<string, unknown> }>> {
  const stream = streamName(env.config.HPH_PREFIX, 'AUDIT')
  const { state } = await env.nats.jsm.streams.info(stream)
  if (state.messages === 0) return []
  const c = await env.nats.js.consumers.get(stream)
  const out: Array<{ subject: string; raw: string; data: Record<string, unknown> }> = []
  for await (const m of await c.fetch({ max_messages: state.messages, expires: 2000 })) {
    out.push({ subject: m.subject, raw: m.string(), data: (decodeJson(m.data) as { data: Record<string, unknown> }).data })
    if (m.info.pending === 0) break
  }
  return out
}

describe('JWT mode', () => {
  it('accepts a valid token (RS256 and ES256) for its own user: sub is the userId', async () => {
    expect((await get(hrvPath('ana'), await sign({ sub: 'ana' }))).status).toBe(200)
    expect((await get(hrvPath('ana'), await sign({ sub: 'ana' }, { key: ec, kid: 'ec-1', alg: 'ES256' }))).status).toBe(200)
  })

  it('refuses with 401 and the error body an expired token, a wrong audience or issuer, alg none, an unknown kid, a tampered signature, HS256', async () => {
    const valid = await sign({ sub: 'ana' })
    const [h, payload] = valid.split('.')
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload as string, 'base64url').toString()), sub: 'bo' })).toString('base64url')
    const tampered = `${h}.${forged}.${valid.split('.')[2]}`
    const hs = await new SignJWT({ sub: 'ana' })
      .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode('a-shared-secret-of-32-bytes-long!'))
    const cases: Record<string, string> = {
      expired: await sign({ sub: 'ana' }, { exp: Math.floor(Date.now() / 1000) - 3600 }),
      'wrong audience': await sign({ sub: 'ana' }, { aud: 'someone-else' }),
      'wrong issuer': await sign({ sub: 'ana' }, { iss: 'https://evil.test/' }),
      'alg none': new UnsecuredJWT({ sub: 'ana' }).setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime('5m').encode(),
      'unknown kid': await sign({ sub: 'ana' }, { key: rotated, kid: 'rsa-unknown' }),
      'tampered signature': tampered,
      HS256: hs,
      garbage: 'not.a.jwt',
    }
    for (const [name, token] of Object.entries(cases)) {
      const res = await get(hrvPath(name === 'tampered signature' ? 'bo' : 'ana'), token)
      expect(res.status, name).toBe(401)
      const body = (await res.json()) as { error: string; message: string; details: unknown[] }
      expect(body, name).toEqual({ error: 'unauthorized', message: expect.any(String), details: [] })
      expect(body.message, name).not.toContain(token)
    }
  })

  it('picks up a rotated key: an unknown kid refetches the JWKS, at most once per cooldown', async () => {
    const token = await sign({ sub: 'ana' }, { key: rotated, kid: 'rsa-2' })
    expect((await get(hrvPath('ana'), token)).status).toBe(401)
    const before = jwksFetches
    // a flood of unknown kids inside the cooldown does not hammer the issuer
    await Promise.all(Array.from({ length: 10 }, async () => get(hrvPath('ana'), await sign({ sub: 'ana' }, { key: rotated, kid: `nope-${Math.random()}` }))))
    expect(jwksFetches - before).toBeLessThanOrEqual(1)
    published = [...published, await publicJwk(rotated, 'rsa-2', 'RS256')]
    await new Promise((r) => setTimeout(r, 1100))
    expect((await get(hrvPath('ana'), token)).status).toBe(200)
  })

  it('makes scope hph:admin (scope string or scp array) an admin of every user; static keys still work', async () => {
    expect((await get(hrvPath('bo'), await sign({ sub: 'ops', scope: 'openid hph:admin' }))).status).toBe(200)
    expect((await get(hrvPath('bo'), await sign({ sub: 'ops', scp: ['read', 'hph:admin'] }))).status).toBe(200)
    expect((await get(hrvPath('bo'), await sign({ sub: 'ops', scope: 'hph:admins' }))).status).toBe(403)
    expect((await get(hrvPath('bo'), ADMIN_KEY)).status).toBe(200)
  })
})

describe('per-user authorisation and audit', () => {
  it("answers 403 to a user token on someone else's data, and audits it without the token", async () => {
    const token = await sign({ sub: 'ana' })
    const res = await get(hrvPath('bo'), token)
    expect(res.status).toBe(403)
    expect(await res.json()).toEqual({ error: 'forbidden', message: expect.any(String), details: [] })
    const requestId = res.headers.get('x-request-id')
    await eventually(async () => (await auditEvents()).some((e) => e.data.action === 'denied' && e.data.userId === 'bo' && e.data.actor === 'jwt:ana'), 10_000, 'the denied event')
    const denied = (await auditEvents()).find((e) => e.data.action === 'denied' && e.data.userId === 'bo' && e.data.actor === 'jwt:ana')!
    expect(denied.subject).toBe(`${env.config.HPH_PREFIX}.audit.v1.denied.bo`)
    expect(denied.data).toMatchObject({ actorKind: 'user', outcome: 'denied', status: 403, operation: 'GET /v1/users/:userId/hrv/daily' })
    if (requestId) expect(denied.data.requestId).toBe(requestId)
    expect(denied.raw).not.toContain(token)
    expect(denied.raw).not.toContain(token.split('.')[2])
  })

  it('answers 401 without a token on every user route (export and erase included) and audits it', async () => {
    for (const [method, path] of [
      ['GET', hrvPath('cy')],
      ['GET', '/v1/users/cy/export'],
      ['DELETE', '/v1/users/cy'],
      ['POST', '/v1/users/cy/samples'],
    ] as const) {
      const res = await fetch(`${p.url}${path}`, { method, ...(method === 'POST' ? { headers: { 'content-type': 'application/json' }, body: '{}' } : {}) })
      expect(res.status, `${method} ${path}`).toBe(401)
      expect(((await res.json()) as { error: string }).error).toBe('unauthorized')
    }
    await eventually(
      async () => deniedCount((await auditEvents()).filter((e) => e.data.action === 'denied' && e.data.userId === 'cy' && e.data.actor === 'unauthenticated')) === 4,
      10_000,
      'four denied requests',
    )
  })

  it('audits a flood of denied requests as a few events per address and window, with their count', async () => {
    const before = (await env.nats.jsm.streams.info(streamName(env.config.HPH_PREFIX, 'AUDIT'))).state.messages
    const n = 300
    for (let i = 0; i < n; i += 50) await Promise.all(Array.from({ length: 50 }, () => get(hrvPath('flood'), 'not-a-key').then((r) => r.arrayBuffer())))
    const flood = async () => (await auditEvents()).filter((e) => e.data.action === 'denied' && e.data.userId === 'flood')
    await eventually(async () => deniedCount(await flood()) === n, 15_000, `${n} denied requests counted`)
    const events = await flood()
    // one event per window the flood lasted (a second each here), never one per request
    expect(events.length).toBeLessThanOrEqual(1 + Math.ceil(events.length && (Date.parse(String(events.at(-1)!.data.at)) - Date.parse(String(events[0]!.data.since))) / 1000) + 1)
    expect(events.length).toBeLessThan(n / 10)
    expect(events[0]!.data).toMatchObject({ actor: 'unauthenticated', outcome: 'denied', status: 401, ip: '127.0.0.1' })
    expect((await env.nats.jsm.streams.info(streamName(env.config.HPH_PREFIX, 'AUDIT'))).state.messages - before).toBeLessThan(n / 10)
  })

  it('guards a path the router decodes to a user route (/%761/users/…) exactly as the plain one: 401, 403, audited', async () => {
    for (const [method, path] of [
      ['GET', '/%761/users/dee/export'],
      ['DELETE', '/%761/users/dee'],
      ['GET', '/v%31/users/dee/hrv/daily?from=2026-03-01&to=2026-03-02'],
      ['POST', '/%76%31/users/dee/samples'],
    ] as const) {
      const res = await fetch(`${p.url}${path}`, { method, ...(method === 'POST' ? { headers: { 'content-type': 'application/json' }, body: '{}' } : {}) })
      expect(res.status, `${method} ${path}`).toBe(401)
    }
    const other = await sign({ sub: 'ana' })
    expect((await get('/%761/users/dee/export', other)).status).toBe(403)
    expect((await fetch(`${p.url}/%761/users/dee`, { method: 'DELETE', headers: { authorization: `Bearer ${other}` } })).status).toBe(403)
    await eventually(async () => deniedCount((await auditEvents()).filter((e) => e.data.action === 'denied' && e.data.userId === 'dee')) === 6, 10_000, 'six denied requests')
  })

  it('guards and audits the export backfill route like every other write under /v1/users', async () => {
    const xml = await readFile('test/fixtures/healthkit-export-small.xml')
    const upload = async (userId: string, token: string) =>
      fetch(`${p.url}/v1/users/${userId}/healthkit-export`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/xml' }, body: xml })
    const token = await sign({ sub: 'eve' })
    expect((await upload('bo', token)).status).toBe(403)
    expect((await upload('eve', token)).status).toBe(202)
    const ofRoute = async () => (await auditEvents()).filter((e) => e.data.operation === 'POST /v1/users/:userId/healthkit-export')
    // the denied event is written when its aggregation window (HPH_AUDIT_DENIED_WINDOW_S) ends: wait for both
    await eventually(
      async () => (await ofRoute()).some((e) => e.data.action === 'write') && (await ofRoute()).some((e) => e.data.action === 'denied'),
      10_000,
      "the upload's write and denied events",
    )
    const events = await ofRoute()
    expect(events.map((e) => [e.data.action, e.data.userId, e.data.status])).toEqual(
      expect.arrayContaining([
        ['denied', 'bo', 403],
        ['write', 'eve', 202],
      ]),
    )
  })

  it('lets only admin erase a user: a user token cannot even erase itself', async () => {
    const res = await fetch(`${p.url}/v1/users/ana`, { method: 'DELETE', headers: { authorization: `Bearer ${await sign({ sub: 'ana' })}` } })
    expect(res.status).toBe(403)
  })

  it('audits a write with who, whose, when, request id and outcome, and never a sample value', async () => {
    const token = await sign({ sub: 'dee' })
    const res = await fetch(`${p.url}/v1/users/dee/samples`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-request-id': 'req-write-1' },
      body: JSON.stringify({
        samples: [{ type: 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN', value: 73.123, unit: 'ms', startDate: '2026-03-01T02:14:00Z', endDate: '2026-03-01T02:15:00Z' }],
      }),
    })
    expect(res.status).toBe(202)
    await eventually(async () => (await auditEvents()).some((e) => e.data.action === 'write' && e.data.userId === 'dee'), 10_000, 'the write event')
    const write = (await auditEvents()).find((e) => e.data.action === 'write' && e.data.userId === 'dee')!
    expect(write.subject).toBe(`${env.config.HPH_PREFIX}.audit.v1.write.dee`)
    expect(write.data).toMatchObject({ actor: 'jwt:dee', actorKind: 'user', operation: 'POST /v1/users/:userId/samples', requestId: 'req-write-1', outcome: 'ok', status: 202 })
    expect(Date.parse(write.data.at as string)).toBeGreaterThan(Date.now() - 60_000)
    expect(write.raw).not.toContain('73.123')
    expect(write.raw).not.toContain(token)
  })

  it('writes an audit record that fails its schema reduced (an admin token whose subject is 300 characters), and counts it', async () => {
    const sub = `ops-${'s'.repeat(296)}`
    const token = await sign({ sub, scope: 'hph:admin' })
    const res = await fetch(`${p.url}/v1/users/gil/samples`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        samples: [{ type: 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN', value: 50, unit: 'ms', startDate: '2026-03-01T02:14:00Z', endDate: '2026-03-01T02:15:00Z' }],
      }),
    })
    expect(res.status).toBe(202)
    await eventually(async () => (await auditEvents()).some((e) => e.data.action === 'write' && e.data.userId === 'gil'), 10_000, 'the reduced write event')
    const write = (await auditEvents()).find((e) => e.data.action === 'write' && e.data.userId === 'gil')!
    expect(write.subject).toBe(`${env.config.HPH_PREFIX}.audit.v1.write.gil`)
    expect(write.data).toMatchObject({ actorKind: 'admin', outcome: 'ok', status: 202, operation: 'POST /v1/users/:userId/samples', reduced: ['actor'] })
    expect(write.data.actor).toBe(`jwt:${sub}`.slice(0, 200))
    const metrics = await (await fetch(`${p.url}/metrics`)).text()
    expect(metrics).toMatch(/^hph_audit_records_reduced_total\{action="write"\} 1$/m)
  })

  it('audits a write whose X-Request-Id is too long or unsafe under a request id of its own (it was left unaudited)', async () => {
    const token = await sign({ sub: 'fin' })
    for (const [i, given] of ['r'.repeat(300), 'two words; and more'].entries()) {
      const res = await fetch(`${p.url}/v1/users/fin/samples`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-request-id': given },
        body: JSON.stringify({
          batchId: `long-id-${i}`,
          samples: [{ type: 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN', value: 50, unit: 'ms', startDate: '2026-03-01T02:14:00Z', endDate: '2026-03-01T02:15:00Z' }],
        }),
      })
      expect(res.status).toBe(202)
    }
    await eventually(async () => (await auditEvents()).filter((e) => e.data.action === 'write' && e.data.userId === 'fin').length === 2, 10_000, 'both write events')
    for (const e of (await auditEvents()).filter((x) => x.data.action === 'write' && x.data.userId === 'fin')) {
      expect(e.data.requestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
      expect(e.raw).not.toContain('rrrrrrrrrr')
    }
  })
})

describe('limits', () => {
  async function api(overrides: Record<string, string>, log = env.log) {
    const config = loadConfig({ ...process.env, ...Object.fromEntries(Object.entries(env.config).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : String(v)])), ...overrides })
    const probes = [{ name: 'none', check: async () => undefined }]
    return buildApi({
      config,
      log,
      nats: p.nats,
      db: p.db,
      probes,
      metrics: createMetrics({ readJetStream: async () => ({ consumers: [], dlq: null, complete: true }), stages: [] }),
    })
  }

  it('takes the client address from X-Forwarded-For only when the proxy in front is trusted, by address, CIDR or hop count', async () => {
    const cases = [
      ['false', 'tp0', '127.0.0.1'],
      ['127.0.0.1', 'tp1', '203.0.113.7'],
      ['1', 'tp2', '203.0.113.7'],
      ['10.0.0.0/8', 'tp3', '127.0.0.1'],
    ] as const
    for (const [setting, user] of cases) {
      const app = await api({ HPH_TRUST_PROXY: setting })
      const res = await app.inject({ method: 'GET', url: hrvPath(user), headers: { 'x-forwarded-for': '203.0.113.7' }, remoteAddress: '127.0.0.1' })
      expect(res.statusCode).toBe(401)
      await app.close()
    }
    const deniedOf = async (user: string) => (await auditEvents()).find((e) => e.data.action === 'denied' && e.data.userId === user)
    await eventually(async () => (await Promise.all(cases.map(([, user]) => deniedOf(user)))).every(Boolean), 10_000, 'the four denied events')
    for (const [setting, user, ip] of cases) expect((await deniedOf(user))?.data.ip, setting).toBe(ip)
  })

  it('answers 429 with Retry-After and the error body past the per-token limit', async () => {
    const app = await api({ HPH_RATE_LIMIT_PER_TOKEN: '3', HPH_RATE_LIMIT_PER_IP: '1000' })
    const statuses: number[] = []
    let last
    for (let i = 0; i < 5; i++) {
      // a different address each time: the token's own budget is what runs out
      last = await app.inject({ method: 'GET', url: hrvPath('bo'), headers: { authorization: `Bearer ${ADMIN_KEY}` }, remoteAddress: `127.0.0.${i + 10}` })
      statuses.push(last.statusCode)
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429])
    expect(Number(last!.headers['retry-after'])).toBeGreaterThan(0)
    expect(last!.json()).toEqual({ error: 'rate_limited', message: expect.stringContaining('retry in'), details: [] })
    await app.close()
  })

  it('limits one address before authentication, so guessing tokens is throttled too', async () => {
    const app = await api({ HPH_RATE_LIMIT_PER_IP: '2' })
    const statuses: number[] = []
    for (let i = 0; i < 3; i++)
      statuses.push((await app.inject({ method: 'GET', url: hrvPath('bo'), headers: { authorization: `Bearer guess-${i}` }, remoteAddress: '127.0.0.99' })).statusCode)
    expect(statuses).toEqual([401, 401, 429])
    // another address is not affected; probes are never limited
    expect((await app.inject({ method: 'GET', url: hrvPath('bo'), headers: { authorization: `Bearer ${ADMIN_KEY}` }, remoteAddress: '127.0.0.98' })).statusCode).toBe(200)
    for (let i = 0; i < 4; i++) expect((await app.inject({ method: 'GET', url: '/healthz', remoteAddress: '127.0.0.99' })).statusCode).toBe(200)
    await app.close()
  })

  it('refuses to start beyond loopback with no credentials, and refuses unsafe JWT settings', async () => {
    const bare = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^HPH_(JWT|JWKS)_/.test(k))), HPH_API_KEYS: '' }
    const config = loadConfig({ ...bare, HOST: '0.0.0.0' })
    const probes = [{ name: 'none', check: async () => undefined }]
    const metrics = createMetrics({ readJetStream: async () => ({ consumers: [], dlq: null, complete: true }), stages: [] })
    await expect(buildApi({ config, log: env.log, nats: p.nats, db: p.db, probes, metrics })).rejects.toThrow(/refusing to listen beyond loopback/)
    expect(() => loadConfig({ ...bare, HPH_JWT_ALGORITHMS: 'RS256,HS256' })).toThrow(/HPH_JWT_ALGORITHMS/)
    expect(() => loadConfig({ ...bare, HPH_JWT_ALGORITHMS: 'none' })).toThrow(/HPH_JWT_ALGORITHMS/)
    expect(() => loadConfig({ ...bare, HPH_JWT_ISSUER: ISSUER })).toThrow(/HPH_JWKS_URL/)
  })

  it("answers 503 auth_unavailable when the issuer's keys cannot be fetched, and logs no token at any level", async () => {
    let logged = ''
    const sink = new Writable({ write: (chunk: Buffer, _enc, done) => void ((logged += chunk.toString()), done()) })
    const log = pino({ level: 'trace', redact: { paths: ['req.headers.authorization', 'headers.authorization'], censor: '[redacted]' } }, sink)
    const app = await api({ HPH_JWKS_URL: 'http://127.0.0.1:9/jwks.json', HPH_JWKS_TIMEOUT_MS: '2000' }, log)
    const token = await sign({ sub: 'ana' })
    const res = await app.inject({ method: 'GET', url: hrvPath('ana'), headers: { authorization: `Bearer ${token}` } })
    expect(res.statusCode).toBe(503)
    expect(res.json()).toMatchObject({ error: 'auth_unavailable' })
    expect(res.headers['retry-after']).toBeDefined()
    for (const t of [token, 'wrong-static-key', ADMIN_KEY])
      await app.inject({ method: 'POST', url: '/v1/users/bo/samples', headers: { authorization: `Bearer ${t}`, 'content-type': 'application/json' }, payload: '{"samples":[]}' })
    await app.close()
    expect(logged.length).toBeGreaterThan(0)
    for (const secret of [token, token.split('.')[2] as string, 'wrong-static-key', ADMIN_KEY]) expect(logged).not.toContain(secret)
  })

  it('refuses a body nested deeper than the limit with 400, not a crash', async () => {
    const deep = `{"samples":${'['.repeat(100_000)}${']'.repeat(100_000)}}`
    const res = await fetch(`${p.url}/v1/users/ana/samples`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, body: deep })
    expect(res.status).toBe(400)
    expect(((await res.json()) as { error: string }).error).toBe('invalid_json')
  })
})
