import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { Nats } from '../streams/connect.ts'
import { publishAudit } from '../streams/audit.ts'
import { UserId, type AuditRecord } from '../streams/schemas.ts'
import { isGuarded } from './access.ts'
import type { Metrics } from './metrics.ts'

// HPH_AUDIT from the HTTP side: one hook after every answer, so every write route (samples, a future
// healthkit-export, any POST/PUT/PATCH/DELETE under /v1/users) is audited without code of its own; denied
// requests are aggregated per address and window (docs/api.md §8).

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

/** One aggregate of denied requests: from one address within one window. */
interface DeniedRun {
  window: number
  record: AuditRecord
  count: number
  since: string
}

/** past this many addresses in a window, the rest are counted together (the aggregates themselves stay bounded) */
const MAX_DENIED_ADDRESSES = 10_000
const OTHER_ADDRESSES = '(other addresses)'
/** one address's denials keep their user (and so their subject, which an erase purges) for this many users a window */
const MAX_USERS_PER_ADDRESS = 16

/**
 * Denied requests, aggregated per client address and window (HPH_AUDIT_DENIED_WINDOW_S): a flood of them is one
 * audit event per address, user and principal (the first 16 a window; the rest together) and window, with the count, so it can
 * neither fill HPH_AUDIT nor bury what is in it.
 * Pure but for the clock it is given; `take` hands over the windows that have ended.
 */
export class DeniedAggregator {
  private readonly runs = new Map<string, DeniedRun>()
  /** per address and window: the users it has runs for */
  private readonly users = new Map<string, Set<string>>()
  constructor(private readonly windowMs: number) {}

  add(given: AuditRecord, nowMs: number): void {
    const window = Math.floor(nowMs / this.windowMs)
    let record = given
    let address = record.ip ?? '(no address)'
    if (!this.users.has(`${window}|${address}`) && this.users.size >= MAX_DENIED_ADDRESSES) {
      address = OTHER_ADDRESSES
      record = { ...record, ip: OTHER_ADDRESSES }
    }
    const seen = this.users.get(`${window}|${address}`) ?? new Set<string>()
    this.users.set(`${window}|${address}`, seen)
    // who was refused on whose data: a run each (the first 16 a window and address)
    let user = `${record.userId ?? '_'}|${record.actor}`
    if (!seen.has(user) && seen.size >= MAX_USERS_PER_ADDRESS) {
      // an address trying many users: the rest of them are one run, under no user
      user = '(others)'
      const { userId: _dropped, ...rest } = record
      record = rest
    }
    seen.add(user)
    const key = `${window}|${address}|${user}`
    const run = this.runs.get(key)
    if (!run) {
      this.runs.set(key, { window, record, count: 1, since: record.at })
      return
    }
    run.count++
    const r = run.record
    // what every request of the run shares is kept; what differs is said to differ
    run.record = {
      ...r,
      ...(r.userId !== record.userId ? { userId: undefined } : {}),
      actor: r.actor === record.actor ? r.actor : '(several)',
      actorKind: r.actorKind === record.actorKind ? r.actorKind : 'none',
      operation: r.operation === record.operation ? r.operation : '(several)',
      status: record.status,
      requestId: record.requestId,
      at: record.at,
    }
    if (run.record.userId === undefined) delete run.record.userId
  }

  /** The runs whose window has ended by `nowMs` (all of them with `all`), as audit records with their count. */
  take(nowMs: number, all = false): AuditRecord[] {
    const window = Math.floor(nowMs / this.windowMs)
    const out: AuditRecord[] = []
    for (const [key, run] of this.runs) {
      if (!all && run.window >= window) continue
      this.runs.delete(key)
      out.push({ ...run.record, count: run.count, since: run.since })
    }
    for (const key of this.users.keys()) if (all || Number(key.slice(0, key.indexOf('|'))) < window) this.users.delete(key)
    return out
  }
}

export interface AuditDeps {
  nats: Pick<Nats, 'js'>
  prefix: string
  userRefSecret: string
  deniedWindowS: number
  metrics?: Pick<Metrics, 'auditReduced' | 'auditUnwritten'>
}

export function installAudit(app: FastifyInstance, deps: AuditDeps): void {
  const denied = new DeniedAggregator(deps.deniedWindowS * 1000)
  const publish = async (record: AuditRecord, log: FastifyBaseLogger) => {
    try {
      await publishAudit(deps.nats, deps.prefix, record, {
        userRefSecret: deps.userRefSecret,
        onReduced: (fields, written) => {
          deps.metrics?.auditReduced(written.action)
          log.warn({ audit: { action: written.action, operation: written.operation, reduced: fields } }, 'audit record failed its schema: written reduced')
        },
      })
    } catch (err) {
      deps.metrics?.auditUnwritten(record.action)
      // the answer is out already; the failure is loud in the log and counted (never the token: the record has none)
      log.error({ err, audit: { action: record.action, actor: record.actor, operation: record.operation, requestId: record.requestId } }, 'audit event not written')
    }
  }
  const flush = async (all: boolean) => {
    await Promise.all(denied.take(Date.now(), all).map((r) => publish(r, app.log)))
  }
  // the windows that ended are written a few times a window (and whatever is left at close)
  const timer = setInterval(() => void flush(false), Math.min(5_000, Math.max(250, (deps.deniedWindowS * 1000) / 4)))
  timer.unref()
  app.addHook('onClose', async () => {
    clearInterval(timer)
    await flush(true)
  })

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
    if (action === 'denied') denied.add(record, Date.now())
    else await publish(record, req.log)
  })
}
