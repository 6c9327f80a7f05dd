import type { FastifyRequest } from 'fastify'
import type { Config } from '../config.ts'
import { HttpError } from './errors.ts'

// spec/api.md "Authentication", static-key mode: `<key>:admin` or `<key>:user:<userId>`.

export type Principal = { kind: 'admin'; id: string } | { kind: 'user'; id: string; userId: string }

export interface Authenticator {
  /** true when no credentials are configured: every request is an anonymous admin (loopback only) */
  open: boolean
  authenticate(req: FastifyRequest): Principal
}

export function parseApiKeys(spec: string): Map<string, Principal> {
  const keys = new Map<string, Principal>()
  for (const [i, entry] of spec.split(',').map((s) => s.trim()).filter(Boolean).entries()) {
    const [key, role, userId, ...rest] = entry.split(':')
    const id = `key#${i + 1}` // a principal is named by position, never by its secret
    if (key && role === 'admin' && userId === undefined) keys.set(key, { kind: 'admin', id })
    else if (key && role === 'user' && userId && rest.length === 0) keys.set(key, { kind: 'user', id, userId })
    else throw new Error(`HPH_API_KEYS: entry ${i + 1} is neither <key>:admin nor <key>:user:<userId>`)
  }
  return keys
}

export function createAuthenticator(config: Pick<Config, 'HPH_API_KEYS' | 'HPH_JWT_ISSUER' | 'HPH_JWKS_URL'>): Authenticator {
  if (config.HPH_JWT_ISSUER || config.HPH_JWKS_URL) {
    throw new Error('HPH_JWT_ISSUER / HPH_JWKS_URL: JWT mode is not built yet; use HPH_API_KEYS')
  }
  const keys = parseApiKeys(config.HPH_API_KEYS)
  const open = keys.size === 0
  return {
    open,
    authenticate(req) {
      if (open) return { kind: 'admin', id: 'anonymous' }
      const header = req.headers.authorization
      const m = header ? /^Bearer\s+(\S+)$/i.exec(header) : null
      if (!m) throw new HttpError(401, 'unauthorized', 'missing bearer token')
      const p = keys.get(m[1] as string)
      if (!p) throw new HttpError(401, 'unauthorized', 'unknown token')
      return p
    },
  }
}

/** A user token reaches only its own /v1/users/<userId>/…; admin reaches every user. */
export function authorize(p: Principal, userId: string): void {
  if (p.kind === 'user' && p.userId !== userId) throw new HttpError(403, 'forbidden', 'this token may not access that user')
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/

export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host)
}
