import { createHash, createHmac } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { auditActionOf, DeniedAggregator, outcomeOf } from '../../../api/audit.ts'
import { fingerprint, principalOfClaims } from '../../../api/auth.ts'
import { loadConfig } from '../../../config.ts'
import { subjectMatches } from '../../../privacy/messages.ts'
import { auditEvent, userRef } from '../../../streams/audit.ts'
import { subjects } from '../../../streams/subjects.ts'

const SECRET = 'unit-test-user-ref-secret-0123456789'

describe('JWT claims to a principal', () => {
  it('makes sub the userId, and scope hph:admin (scope string or scp array) admin', () => {
    expect(principalOfClaims({ sub: 'ana' })).toEqual({ kind: 'user', id: 'jwt:ana', userId: 'ana' })
    expect(principalOfClaims({ sub: 'ops', scope: 'openid hph:admin profile' })).toEqual({ kind: 'admin', id: 'jwt:ops' })
    expect(principalOfClaims({ sub: 'ops', scp: ['x', 'hph:admin'] })).toEqual({ kind: 'admin', id: 'jwt:ops' })
    expect(principalOfClaims({ sub: 'ana', scope: 'hph:administrator' })).toMatchObject({ kind: 'user' })
  })

  it('refuses a user token whose sub cannot be a userId (it becomes a subject token)', () => {
    for (const sub of ['a.b', 'ana*', '', 'x'.repeat(65), 'ü']) expect(() => principalOfClaims({ sub }), sub).toThrow(expect.objectContaining({ status: 401 }))
  })

  it('names a secret by a short one-way fingerprint', () => {
    expect(fingerprint('secret')).toMatch(/^[0-9a-f]{16}$/)
    expect(fingerprint('secret')).not.toContain('secret')
  })
})

describe('configuration of auth and limits', () => {
  it('defaults to asymmetric algorithms only and refuses none and HS*', () => {
    const c = loadConfig({})
    expect(c.HPH_JWT_ALGORITHMS).toContain('RS256')
    expect(c.HPH_JWT_ALGORITHMS.some((a) => a === 'none' || a.startsWith('HS'))).toBe(false)
    expect(() => loadConfig({ HPH_JWT_ALGORITHMS: 'HS256' })).toThrow(/HPH_JWT_ALGORITHMS/)
    expect(loadConfig({ HPH_JWT_ALGORITHMS: 'ES256, RS256' }).HPH_JWT_ALGORITHMS).toEqual(['ES256', 'RS256'])
  })

  it('needs the three JWT settings together, and positive limits', () => {
    expect(() => loadConfig({ HPH_JWKS_URL: 'https://id.example/jwks' })).toThrow(/HPH_JWT_ISSUER/)
    expect(() => loadConfig({ HPH_RATE_LIMIT_PER_IP: '0' })).toThrow(/HPH_RATE_LIMIT_PER_IP/)
    expect(() => loadConfig({ HPH_TRUST_PROXY: 'yes' })).toThrow(/HPH_TRUST_PROXY/)
  })

  it('refuses static keys shorter than 32 characters, and a short user-reference secret, unless HPH_ALLOW_SHORT_KEYS', () => {
    const long = 'k'.repeat(32)
    expect(() => loadConfig({ HPH_API_KEYS: 'devkey:admin', HPH_USER_REF_SECRET: SECRET })).toThrow(/HPH_API_KEYS: entry 1: a key of 6 characters; at least 32/)
    expect(() => loadConfig({ HPH_API_KEYS: `${long}:admin,short:user:ana`, HPH_USER_REF_SECRET: SECRET })).toThrow(/entry 2/)
    expect(loadConfig({ HPH_API_KEYS: `${long}:admin`, HPH_USER_REF_SECRET: SECRET }).HPH_API_KEYS).toBe(`${long}:admin`)
    expect(() => loadConfig({ HPH_API_KEYS: `${long}:admin`, HPH_USER_REF_SECRET: 'short' })).toThrow(/HPH_USER_REF_SECRET/)
    // credentials need the secret an erased user is named by
    expect(() => loadConfig({ HPH_API_KEYS: `${long}:admin` })).toThrow(/HPH_USER_REF_SECRET: required/)
    const dev = loadConfig({ HPH_API_KEYS: 'devkey:admin', HPH_USER_REF_SECRET: 'dev', HPH_ALLOW_SHORT_KEYS: 'true' })
    expect(dev.HPH_ALLOW_SHORT_KEYS).toBe(true)
    // open development mode (no credentials) needs none
    expect(loadConfig({}).HPH_USER_REF_SECRET).toBeUndefined()
  })

  it('trusts the proxies it is told of, by address, CIDR or hop count, and never every address', () => {
    expect(loadConfig({}).HPH_TRUST_PROXY).toBe(false)
    expect(loadConfig({ HPH_TRUST_PROXY: 'false' }).HPH_TRUST_PROXY).toBe(false)
    expect(loadConfig({ HPH_TRUST_PROXY: '2' }).HPH_TRUST_PROXY).toBe(2)
    expect(loadConfig({ HPH_TRUST_PROXY: '10.0.0.0/8, 127.0.0.1, ::1, fd00::/8, loopback' }).HPH_TRUST_PROXY).toEqual(['10.0.0.0/8', '127.0.0.1', '::1', 'fd00::/8', 'loopback'])
    expect(() => loadConfig({ HPH_TRUST_PROXY: 'true' })).toThrow(/HPH_TRUST_PROXY: .*not true/)
    expect(() => loadConfig({ HPH_TRUST_PROXY: '10.0.0.0/33' })).toThrow(/10\.0\.0\.0\/33/)
    expect(() => loadConfig({ HPH_TRUST_PROXY: '0' })).toThrow(/HPH_TRUST_PROXY/)
  })
})

describe('audit events', () => {
  const at = '2026-03-01T00:00:00.000Z'

  it('audits writes under /v1/users, exports, erases and denials; not reads, not probes', () => {
    const a = (method: string, route: string | undefined, status: number, url = route ?? '/v1/users/ana/x') => auditActionOf({ method, route, url, status })
    expect(a('POST', '/v1/users/:userId/samples', 202)).toBe('write')
    expect(a('POST', '/v1/users/:userId/healthkit-export', 400)).toBe('write')
    expect(a('GET', '/v1/users/:userId/export', 200)).toBe('export')
    expect(a('DELETE', '/v1/users/:userId', 200)).toBe('erase')
    expect(a('GET', '/v1/users/:userId/hrv/daily', 403)).toBe('denied')
    expect(a('GET', undefined, 401, '/v1/nope')).toBe('denied')
    expect(a('GET', '/v1/users/:userId/hrv/daily', 200)).toBeUndefined()
    expect(a('GET', '/healthz', 401, '/healthz')).toBeUndefined()
    expect([outcomeOf(202), outcomeOf(401), outcomeOf(403), outcomeOf(413), outcomeOf(503)]).toEqual(['ok', 'denied', 'denied', 'rejected', 'failed'])
  })

  it('puts the user last in the subject, so erasure removes their trail with their data', () => {
    const e = auditEvent('hph', { action: 'write', actor: 'key#1', actorKind: 'admin', userId: 'ana', operation: 'POST /v1/users/:userId/samples', outcome: 'ok', at }, SECRET)
    expect(e.subject).toBe('hph.audit.v1.write.ana')
    expect(e.subject.split('.').length).toBe(subjects.ofUser('hph', 'ana').split('.').length)
    expect(auditEvent('hph', { action: 'denied', actor: 'unauthenticated', actorKind: 'none', operation: 'GET (no route)', outcome: 'denied', at }, SECRET).subject).toBe(
      'hph.audit.v1.denied._',
    )
  })

  it('keeps an erase under a one-way reference to the user, never the id', () => {
    const e = auditEvent('hph', { action: 'erase', actor: 'key#1', actorKind: 'admin', userId: 'ana', operation: 'DELETE /v1/users/:userId', outcome: 'ok', at }, SECRET)
    expect(e.subject).toBe(`hph.audit.v1.erase.${userRef(SECRET, 'ana')}`)
    expect(e.record.userId).toBeUndefined()
    expect(e.record.userRef).toBe(userRef(SECRET, 'ana'))
    expect(JSON.stringify(e)).not.toMatch(/"ana"|\.ana\b/)
    expect(userRef(SECRET, 'ana')).not.toBe(userRef(SECRET, 'bo'))
  })

  it('makes the reference an HMAC of the configured secret: no bare hash of a guessable id', () => {
    expect(userRef(SECRET, 'ana')).toBe(createHmac('sha256', SECRET).update('hph-user:ana').digest('hex').slice(0, 32))
    expect(userRef(SECRET, 'ana')).not.toBe(createHash('sha256').update('hph-user:ana').digest('hex').slice(0, 32))
    expect(userRef(`${SECRET}x`, 'ana')).not.toBe(userRef(SECRET, 'ana'))
  })

  it('writes a record that fails its schema reduced, naming what was cut or left out', () => {
    const e = auditEvent(
      'hph',
      {
        action: 'write',
        actor: 'key#1',
        actorKind: 'admin',
        userId: 'ana',
        operation: 'POST /v1/users/:userId/samples',
        requestId: 'r'.repeat(300),
        ip: 'i'.repeat(150),
        outcome: 'ok',
        status: 1.5,
        at,
      },
      SECRET,
    )
    expect(e.reduced.sort()).toEqual(['ip', 'requestId', 'status'])
    expect(e.subject).toBe('hph.audit.v1.write.ana')
    expect(e.record).toMatchObject({ action: 'write', actor: 'key#1', userId: 'ana', outcome: 'ok', requestId: 'r'.repeat(200), ip: 'i'.repeat(100) })
    expect([...(e.record.reduced ?? [])].sort()).toEqual(['ip', 'requestId', 'status'])
    expect(e.record.status).toBeUndefined()
    const bad = auditEvent('hph', { action: 'denied', actor: '', actorKind: 'none', userId: 'a.b', operation: 'x', outcome: 'denied', at: 'yesterday' }, SECRET)
    expect(bad.subject).toBe('hph.audit.v1.denied._')
    expect(bad.record.actor).toBe('(invalid)')
    expect(bad.record.userId).toBeUndefined()
    expect(Date.parse(bad.record.at)).toBeGreaterThan(0)
  })

  it('aggregates denied requests per address and window, with their count', () => {
    const d = new DeniedAggregator(60_000)
    const t0 = Date.UTC(2026, 0, 1, 12, 0, 0)
    const denied = (ip: string, userId: string, ms: number) => ({
      action: 'denied' as const,
      actor: 'unauthenticated',
      actorKind: 'none' as const,
      userId,
      operation: 'GET /v1/users/:userId/hrv/daily',
      ip,
      outcome: 'denied' as const,
      status: 401,
      at: new Date(ms).toISOString(),
    })
    for (let i = 0; i < 1000; i++) d.add(denied('10.0.0.1', 'ana', t0 + i * 10), t0 + i * 10)
    d.add(denied('10.0.0.2', 'ana', t0 + 5), t0 + 5)
    d.add(denied('10.0.0.2', 'bo', t0 + 6), t0 + 6)
    expect(d.take(t0 + 30_000)).toEqual([])
    const out = d.take(t0 + 60_000)
    expect(out).toHaveLength(3)
    expect(out.find((r) => r.ip === '10.0.0.1')).toMatchObject({ count: 1000, userId: 'ana', since: new Date(t0).toISOString(), at: new Date(t0 + 9990).toISOString() })
    expect(
      out
        .filter((r) => r.ip === '10.0.0.2')
        .map((r) => [r.userId, r.count])
        .sort(),
    ).toEqual([
      ['ana', 1],
      ['bo', 1],
    ])
    // an address trying many users: 16 of them keep their own event, the rest are one
    for (let i = 0; i < 5000; i++) d.add(denied('10.0.0.3', `u${i}`, t0 + 120_000), t0 + 120_000)
    const many = d.take(t0 + 180_000)
    expect(many).toHaveLength(17)
    expect(many.filter((r) => r.userId === undefined)).toMatchObject([{ count: 5000 - 16 }])
    // a new window starts a new event
    d.add(denied('10.0.0.1', 'ana', t0 + 61_000), t0 + 61_000)
    expect(d.take(t0 + 61_000, true)).toMatchObject([{ count: 1 }])
  })

  it('builds per-stream user filters: the DLQ has one level fewer', () => {
    expect(subjects.ofUserIn('hph', 'INGEST', 'ana')).toBe('hph.ingest.*.*.ana')
    expect(subjects.ofUserIn('hph', 'DLQ', 'ana')).toBe('hph.dlq.*.ana')
    expect(subjects.ofUserIn('hph', 'AUDIT', 'ana')).toBe('hph.audit.*.*.ana')
  })

  it('matches subjects against NATS filters as the server does', () => {
    expect(subjectMatches('hph.changes.*.*.ana', 'hph.changes.v1.days.ana')).toBe(true)
    expect(subjectMatches('hph.changes.*.*.ana', 'hph.changes.v1.days.anab')).toBe(false)
    expect(subjectMatches('hph.changes.*.*.ana', 'hph.changes.v1.ana')).toBe(false)
    expect(subjectMatches('hph.dlq.>', 'hph.dlq.normalize.ana')).toBe(true)
    expect(subjectMatches('hph.dlq.>', 'hph.dlq')).toBe(false)
  })
})
