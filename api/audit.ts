import type { FastifyInstance } from 'fastify'
import type { Nats } from '../streams/connect.ts'
import { publishAudit } from '../streams/audit.ts'
import { UserId, type AuditRecord } from '../streams/schemas.ts'
import { isGuarded } from './access.ts'

// HPH_AUDIT from the HTTP side: one hook after every answer, so every write route (samples, a future
// healthkit-export, any POST/PUT/PATCH/DELETE under /v1/users) is audited without code of its own.

export interface Answered {
  method: string
  /** the route pattern (`/v1/users/:userId/samples`), undefined when no route matched */
  route: string | undefined
  url: string
  status: number
}

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** Which audit action an answered request is, if any. Pure. */
export function auditActionOf(a: Answered): AuditRecord['action'] | undefined {
  if (!isGuarded({ routeOptions: { url: a.route }, url: a.url })) return undefined
  if (a.status === 401 || a.status === 403) return 'denied'
  if (a.method === 'GET' && a.route === '/v1/users/:userId/export') return 'export'
  if (a.method === 'DELETE' && a.route === '/v1/users/:userId') return 'erase'
  if (WRITES.has(a.method) && (a.route ?? a.url).startsWith('/v1/users/')) return 'write'
  return undefined
}

/** ok for 2xx (and 3xx), denied for 401/403, rejected for another 4xx, failed for 5xx. */
export function outcomeOf(status: number): AuditRecord['outcome'] {
  if (status === 401 || status === 403) return 'denied'
  if (status >= 500) return 'failed'
  if (status >= 400) return 'rejected'
  return 'ok'
}

export function installAudit(app: FastifyInstance, deps: { nats: Pick<Nats, 'js'>; prefix: string }): void {
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url
    const action = auditActionOf({ method: req.method, route, url: req.url, status: reply.statusCode })
    if (!action) return
    const userId = UserId.safeParse((req.params as { userId?: unknown } | undefined)?.userId)
    const p = req.principal
    const record: AuditRecord = {
      action,
      actor: p?.id ?? 'unauthenticated',
      actorKind: p?.kind ?? 'none',
      ...(userId.success ? { userId: userId.data } : {}),
      // the route pattern: never the query string, never a path that could name a user outside the subject
      operation: `${req.method} ${route ?? '(no route)'}`,
      requestId: String(req.id),
      ip: req.ip,
      outcome: outcomeOf(reply.statusCode),
      status: reply.statusCode,
      at: new Date().toISOString(),
    }
    try {
      await publishAudit(deps.nats, deps.prefix, record)
    } catch (err) {
      // the answer is out already; the failure is loud in the log (never the token: the record has none)
      req.log.error({ err, audit: { action, actor: record.actor, operation: record.operation, requestId: record.requestId } }, 'audit event not written')
    }
  })
}
