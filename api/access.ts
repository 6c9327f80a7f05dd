import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Config } from '../config.ts'
import { authorize, fingerprint, requireAdmin, type Authenticator } from './auth.ts'
import { HttpError } from './errors.ts'
import { checkUserId } from './routes/samples.ts'

// docs/api.md §2: ONE hook guards every /v1 route — rate limits, authentication, per-user
// authorisation and admin-only routes — so a route added later (healthkit-export) is guarded without code of its own.

declare module 'fastify' {
  interface FastifyContextConfig {
    /** the route is for admin tokens only (DELETE /v1/users/:userId); a string is the refusal's message */
    admin?: boolean | string
  }
}

export type AccessConfig = Pick<Config, 'HPH_RATE_LIMIT_PER_IP' | 'HPH_RATE_LIMIT_PER_TOKEN' | 'HPH_RATE_LIMIT_WINDOW_S'>

/**
 * Only the API is guarded; probes, metrics, the OpenAPI document and the dashboard's files answer anyone
 * (they carry no user data). Decided on the route the router matched, never on the raw URL: the router
 * decodes the path (`/%761/users/ana` is `/v1/users/:userId`), a prefix test of `req.url` would not.
 */
export function isGuarded(req: { routeOptions: { url?: string | undefined }; url: string }): boolean {
  return (req.routeOptions.url ?? req.url).startsWith('/v1/')
}

export async function installAccess(app: FastifyInstance, deps: { auth: Authenticator; config: AccessConfig }): Promise<void> {
  const { auth, config } = deps
  const timeWindow = config.HPH_RATE_LIMIT_WINDOW_S * 1000
  // the plugin counts (in memory, per process); this hook decides where in the request each limit applies
  await app.register(rateLimit, { global: false, timeWindow })
  const perIp = app.createRateLimit({ max: config.HPH_RATE_LIMIT_PER_IP, timeWindow, keyGenerator: (req) => `ip:${req.ip}` })
  // per principal (a token's subject or a static key), so one user's many tokens share one budget;
  // the anonymous admin of open mode is limited by address alone
  const perToken = app.createRateLimit({ max: config.HPH_RATE_LIMIT_PER_TOKEN, timeWindow, keyGenerator: (req) => `principal:${fingerprint(req.principal?.id ?? '')}` })

  const limit = async (check: typeof perIp, req: FastifyRequest, what: string) => {
    const r = await check(req)
    if (!r.isAllowed && r.isExceeded) {
      const retry = Math.max(1, r.ttlInSeconds)
      throw new HttpError(429, 'rate_limited', `too many requests ${what}; retry in ${retry} s`, [], { 'retry-after': String(retry) })
    }
  }

  app.addHook('onRequest', async (req) => {
    if (!isGuarded(req)) return
    // before authenticating, so guessing tokens is limited too
    await limit(perIp, req, 'from this address')
    req.principal = await auth.verify(req)
    if (!auth.open) await limit(perToken, req, 'for this token')
    const userId = (req.params as { userId?: unknown } | undefined)?.userId
    if (typeof userId === 'string') authorize(req.principal, checkUserId(userId))
    const admin = req.routeOptions.config?.admin
    if (admin) requireAdmin(req.principal, typeof admin === 'string' ? admin : undefined)
  })
}
