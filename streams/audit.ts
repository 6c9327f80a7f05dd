import { createHmac, randomUUID } from 'node:crypto'
import type { PubAck } from '@nats-io/jetstream'
import type { Nats } from './connect.ts'
import { envelope } from './envelope.ts'
import { publishEvent } from './publish.ts'
import { AUDIT_TYPE, AuditRecord } from './schemas.ts'
import { safeToken, subjects } from './subjects.ts'

// HPH_AUDIT (docs/architecture.md §3): one event per write, export and erase, and per address and window of denied
// requests. A record that fails its schema is still written, reduced to what passes (never silenced).

/**
 * A one-way reference to a user: what the erase event keeps instead of the id, so the audit trail can prove
 * "this user was erased then, by that admin" to whoever holds the id and the secret, and tells nobody else who it
 * was (an HMAC: a bare hash of a guessable id is undone by hashing guesses).
 */
export function userRef(secret: string, userId: string): string {
  return createHmac('sha256', secret).update(`hph-user:${userId}`).digest('hex').slice(0, 32)
}

type Field = keyof AuditRecord
const SHAPE = AuditRecord.shape

/** The record as its schema takes it, or reduced: each field that fails is cut to fit or left out, and named in `reduced`. */
export function validAuditRecord(record: AuditRecord): { record: AuditRecord; reduced: string[] } {
  const whole = AuditRecord.safeParse(record)
  if (whole.success) return { record: whole.data, reduced: [] }
  const reduced = [...new Set(whole.error.issues.map((i) => String(i.path[0] ?? '(record)')))].slice(0, 20)
  const pick = <K extends Field>(k: K, fallback?: AuditRecord[K]): AuditRecord[K] | undefined => {
    const v = record[k]
    if (SHAPE[k].safeParse(v).success) return v
    // a text too long keeps its start; a field of another kind is left out (or takes its fallback)
    if (typeof v === 'string') {
      const cut = SHAPE[k].safeParse(v.slice(0, k === 'operation' ? 300 : k === 'ip' ? 100 : 200))
      if (cut.success) return cut.data as AuditRecord[K]
    }
    return fallback
  }
  const out = {
    action: pick('action', 'write'),
    actor: pick('actor', '(invalid)'),
    actorKind: pick('actorKind', 'none'),
    userId: pick('userId'),
    userRef: pick('userRef'),
    operation: pick('operation', '(invalid)'),
    requestId: pick('requestId'),
    ip: pick('ip'),
    outcome: pick('outcome', 'failed'),
    status: pick('status'),
    at: pick('at', new Date().toISOString()),
    count: pick('count'),
    since: pick('since'),
    reduced: reduced.map((r) => r.slice(0, 32)),
  }
  return { record: AuditRecord.parse(Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined))), reduced }
}

/**
 * The event and its subject. The user is the last subject token (so erasure purges the user's audit
 * trail with the rest of their data), except for an erase, which names the user only by `userRef`.
 */
export function auditEvent(prefix: string, given: AuditRecord, secret: string): { subject: string; record: AuditRecord; reduced: string[] } {
  let input = given
  if (given.action === 'erase') {
    const { userId, ...rest } = given
    const ref = given.userRef ?? (userId ? userRef(secret, userId) : undefined)
    input = { ...rest, ...(ref ? { userRef: ref } : {}) }
  }
  const { record, reduced } = validAuditRecord(input)
  const token = record.action === 'erase' ? (record.userRef ?? '_') : safeToken(record.userId)
  return { subject: subjects.audit(prefix, record.action, token), record, reduced }
}

export interface AuditOptions {
  /** HPH_USER_REF_SECRET (config.ts userRefSecret) */
  userRefSecret: string
  /** told when the record failed its schema and was written reduced (a metric counts it) */
  onReduced?: (fields: string[], record: AuditRecord) => void
}

/** Publishes one audit event; resolves once JetStream has stored it. */
export function publishAudit(nats: Pick<Nats, 'js'>, prefix: string, record: AuditRecord, opts: AuditOptions): Promise<PubAck> {
  const { subject, record: data, reduced } = auditEvent(prefix, record, opts.userRefSecret)
  if (reduced.length) opts.onReduced?.(reduced, data)
  return publishEvent(nats.js, {
    subject,
    event: envelope({ id: randomUUID(), type: AUDIT_TYPE, source: 'audit', subject: data.userId ?? data.userRef ?? '_', data, time: data.at }),
  })
}
