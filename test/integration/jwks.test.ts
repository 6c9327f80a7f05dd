import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startPipeline, type Pipeline } from '../../pipeline/start.ts'
import { testEnv, type TestEnv } from '../helpers/env.ts'

// docs/operating.md §7: the issuer's key set is refetched once stale (HPH_JWKS_MAX_AGE_S); while the
// issuer is away, the last one fetched keeps serving, so valid tokens are not turned away by its outage.

const ISSUER = 'https://issuer.jwks-test/'
const AUDIENCE = 'hph-api'

let env: TestEnv
let p: Pipeline
let server: Server
let port: number
let up = true
let fetches = 0
type Key = Awaited<ReturnType<typeof generateKeyPair>>
let key: Key
let other: Key

/** The JWKS server on a fixed port, started again after it went down. */
async function listen(): Promise<void> {
  server = createServer((_req, res) => {
    fetches++
    void (async () =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [{ ...(await exportJWK(key.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] })))()
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  up = true
}
async function down(): Promise<void> {
  server.closeAllConnections()
  await new Promise((r) => server.close(r))
  up = false
}

const sign = (k: Key, kid: string) =>
  new SignJWT({ sub: 'ana' }).setProtectedHeader({ alg: 'RS256', kid }).setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt().setExpirationTime('5m').sign(k.privateKey)
const read = (token: string) => fetch(`${p.url}/v1/users/ana/hrv/daily?from=2026-03-01&to=2026-03-02`, { headers: { authorization: `Bearer ${token}` } })

beforeAll(async () => {
  key = await generateKeyPair('RS256')
  other = await generateKeyPair('RS256')
  port = 0
  await listen()
  port = (server.address() as AddressInfo).port
  env = await testEnv({
    HPH_JWT_ISSUER: ISSUER,
    HPH_JWT_AUDIENCE: AUDIENCE,
    HPH_JWKS_URL: `http://127.0.0.1:${port}/jwks.json`,
    HPH_JWKS_MAX_AGE_S: '1',
    HPH_JWKS_COOLDOWN_S: '1',
    HPH_JWKS_TIMEOUT_MS: '1000',
  })
  p = await startPipeline(env.config, env.log, { stages: [], api: true, prepare: true })
})
afterAll(async () => {
  await p?.stop()
  await env?.cleanup()
  if (up) await down()
})

describe('JWKS', () => {
  it('keeps serving the last good key set while the issuer is unreachable, and fetches again once it is back', async () => {
    const token = await sign(key, 'k1')
    expect((await read(token)).status).toBe(200)
    const before = fetches
    await down()
    // the set is stale now: jose refetches, the issuer refuses the connection, the last good set answers
    await new Promise((r) => setTimeout(r, 1_500))
    for (let i = 0; i < 3; i++) expect((await read(token)).status).toBe(200)
    // a token of a key the last good set does not have: the issuer is away (503), not a bad token (401)
    const unknown = await read(await sign(other, 'k2'))
    expect(unknown.status).toBe(503)
    expect(((await unknown.json()) as { error: string }).error).toBe('auth_unavailable')
    // a token signed by a key that is not the issuer's still fails, outage or not
    const forged = await read(await sign(other, 'k1'))
    expect(forged.status).toBe(401)
    await listen()
    await new Promise((r) => setTimeout(r, 1_500))
    expect((await read(token)).status).toBe(200)
    expect(fetches).toBeGreaterThan(before)
  })
})
