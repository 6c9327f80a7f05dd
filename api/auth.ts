import { createHash } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type RemoteJWKSet } from 'jose'
import type { Config } from '../config.ts'
import { UserId } from '../streams/schemas.ts'
import { HttpError } from './errors.ts'

// docs/api.md §2: static keys (`<key>:admin`, `<key>:user:<userId>`) and/or JWT from an OIDC issuer.

export type Principal = { kind: 'admin'; id: string } | { kind: 'user'; id: string; userId: string }

declare module 'fastify' {
  interface FastifyRequest {
    /** who made the request, resolved once by the access hook (api/access.ts) */
    principal?: Principal
  }
}

export interface Authenticator {
  /** true when no credentials are configured: every request is an anonymous admin (loopback only) */
  open: boolean
  /** which kinds of credentials are accepted */
  modes: ReadonlyArray<'keys' | 'jwt'>
  /** Resolves the request's bearer token to its principal; 401 when it is missing or not valid. */
  verify(req: FastifyRequest): Promise<Principal>
  /** The principal the access hook resolved for this request (routes call this; it never verifies again). */
  authenticate(req: FastifyRequest): Principal
}

export const ADMIN_SCOPE = 'hph:admin'

export function parseApiKeys(spec: string): Map<string, Principal> {
  const keys = new Map<string, Principal>()
  for (const [i, entry] of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .entries()) {
    const [key, role, userId, ...rest] = entry.split(':')
    const id = `key#${i + 1}` // a principal is named by position, never by its secret
    if (key && role === 'admin' && userId === undefined) keys.set(key, { kind: 'admin', id })
    else if (key && role === 'user' && userId && rest.length === 0) keys.set(key, { kind: 'user', id, userId })
    else throw new Error(`HPH_API_KEYS: entry ${i + 1} is neither <key>:admin nor <key>:user:<userId>`)
  }
  return keys
}

/** The bearer token of a request, or undefined. */
export function bearerToken(req: Pick<FastifyRequest, 'headers'>): string | undefined {
  const header = req.headers.authorization
  const m = header ? /^Bearer\s+(\S+)$/i.exec(header) : null
  return m?.[1]
}

/** A short, stable, one-way name for a secret (rate-limit keys, logs): never the secret itself. */
export function fingerprint(secret: string): string {
  return createHash('sha256').update(secret).digest('hex').slice(0, 16)
}

/**
 * A verified token's claims → its principal. `sub` is the userId (it must be a valid one: it becomes a
 * subject token); scope `hph:admin` (space-separated `scope`, or an `scp` array) makes it admin.
 */
export function principalOfClaims(claims: JWTPayload): Principal {
  const scopes = new Set<string>()
  if (typeof claims.scope === 'string') for (const s of claims.scope.split(' ')) if (s) scopes.add(s)
  if (Array.isArray(claims.scp)) for (const s of claims.scp) if (typeof s === 'string') scopes.add(s)
  const sub = typeof claims.sub === 'string' ? claims.sub : ''
  if (scopes.has(ADMIN_SCOPE)) return { kind: 'admin', id: `jwt:${sub || 'admin'}` }
  const userId = UserId.safeParse(sub)
  if (!userId.success) throw new HttpError(401, 'unauthorized', 'the token subject is not a valid userId')
  return { kind: 'user', id: `jwt:${userId.data}`, userId: userId.data }
}

type JwtConfig = Pick<
  Config,
  'HPH_JWT_ISSUER' | 'HPH_JWT_AUDIENCE' | 'HPH_JWKS_URL' | 'HPH_JWT_ALGORITHMS' | 'HPH_JWT_CLOCK_TOLERANCE_S' | 'HPH_JWKS_COOLDOWN_S' | 'HPH_JWKS_TIMEOUT_MS' | 'HPH_JWKS_MAX_AGE_S'
>

/** Why jose refused a token, in words safe to send back (never the token). */
function jwtProblem(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'token expired'
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `token claim ${err.claim} is not acceptable`
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'token algorithm not allowed'
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'no key of the issuer matches the token'
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'token signature invalid'
  return 'token invalid'
}

/** The issuer's key set cannot be had (timeout, network, a bad document): a dependency away, not a bad token. */
function issuerAway(err: unknown): boolean {
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) return true
  // a non-200 answer or an unparsable body: jose's generic error, not one about the token
  if (err instanceof joseErrors.JOSEError) return err.code === 'ERR_JOSE_GENERIC'
  return err instanceof TypeError // fetch failed (connection refused, DNS)
}

/**
 * The issuer's key set, and the last one fetched while the issuer is away: an outage of the issuer (a refetch
 * once the set is older than HPH_JWKS_MAX_AGE_S that fails) does not turn every valid token away.
 */
export function lastGoodKeys(remote: RemoteJWKSet): JWTVerifyGetKey {
  let lastGood: { keys: ReturnType<typeof createLocalJWKSet>; kids: Set<string | undefined> } | undefined
  return async (header, token) => {
    const wasFresh = remote.fresh
    try {
      const key = await remote(header, token)
      if (!wasFresh || !lastGood || !lastGood.kids.has(header.kid)) {
        const set = remote.jwks()
        if (set) lastGood = { keys: createLocalJWKSet(set), kids: new Set(set.keys.map((k) => k.kid)) }
      }
      return key
    } catch (err) {
      if (!lastGood || !issuerAway(err)) throw err
      // a kid the last good set does not have may be a rotation we could not fetch: still "the issuer is away"
      return lastGood.keys(header, token).catch(() => Promise.reject(err))
    }
  }
}

function jwtVerifier(config: JwtConfig): (token: string) => Promise<Principal> {
  const { HPH_JWT_ISSUER: issuer, HPH_JWT_AUDIENCE: audience, HPH_JWKS_URL: url } = config
  if (!issuer || !audience || !url) throw new Error('JWT mode needs HPH_JWT_ISSUER, HPH_JWT_AUDIENCE and HPH_JWKS_URL')
  // jose refetches the set when a token names an unknown kid, at most once per cooldown (key rotation)
  const remote = createRemoteJWKSet(new URL(url), {
    cooldownDuration: config.HPH_JWKS_COOLDOWN_S * 1000,
    timeoutDuration: config.HPH_JWKS_TIMEOUT_MS,
    cacheMaxAge: config.HPH_JWKS_MAX_AGE_S * 1000,
  })
  const jwks = lastGoodKeys(remote)
  const audiences = audience
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean)
  return async (token) => {
    let payload: JWTPayload
    try {
      ;({ payload } = await jwtVerify(token, jwks, {
        issuer,
        audience: audiences,
        algorithms: config.HPH_JWT_ALGORITHMS,
        clockTolerance: config.HPH_JWT_CLOCK_TOLERANCE_S,
        requiredClaims: ['exp', 'sub'],
      }))
    } catch (err) {
      if (issuerAway(err)) throw new HttpError(503, 'auth_unavailable', "the token issuer's keys cannot be fetched; retry later")
      throw new HttpError(401, 'unauthorized', jwtProblem(err))
    }
    return principalOfClaims(payload)
  }
}

export function createAuthenticator(config: Pick<Config, 'HPH_API_KEYS'> & JwtConfig): Authenticator {
  const keys = parseApiKeys(config.HPH_API_KEYS)
  const jwt = config.HPH_JWKS_URL ? jwtVerifier(config) : undefined
  const modes = [...(keys.size ? (['keys'] as const) : []), ...(jwt ? (['jwt'] as const) : [])]
  const open = modes.length === 0
  return {
    open,
    modes,
    async verify(req) {
      if (open) return { kind: 'admin', id: 'anonymous' }
      const token = bearerToken(req)
      if (!token) throw new HttpError(401, 'unauthorized', 'missing bearer token')
      const p = keys.get(token)
      if (p) return p
      // a static key has no dots; a JWT always has two
      if (jwt && token.split('.').length === 3) return jwt(token)
      throw new HttpError(401, 'unauthorized', 'unknown token')
    },
    authenticate(req) {
      if (req.principal) return req.principal
      throw new HttpError(401, 'unauthorized', 'missing bearer token')
    },
  }
}

/** A user token reaches only its own /v1/users/<userId>/…; admin reaches every user. */
export function authorize(p: Principal, userId: string): void {
  if (p.kind === 'user' && p.userId !== userId) throw new HttpError(403, 'forbidden', 'this token may not access that user')
}

/** Admin-only operations (erasing a user, listing users, the pipeline's status); `message` says which. */
export function requireAdmin(p: Principal, message = 'this operation needs an admin token'): void {
  if (p.kind !== 'admin') throw new HttpError(403, 'forbidden', message)
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/

export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host)
}
