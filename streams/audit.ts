import { createHash, randomUUID } from 'node:crypto'
import type { PubAck } from '@nats-io/jetstream'
import type { Nats } from './connect.ts'
import { envelope } from './envelope.ts'
import { publishEvent } from './publish.ts'
import { AUDIT_TYPE, AuditRecord } from './schemas.ts'
import { safeToken, subjects } from './subjects.ts'

// HPH_AUDIT (docs/architecture.md §3): one event per write, export, erase and denied access.

/**
 * A one-way reference to a user: what the erase event keeps instead of the id, so the audit trail can
 * prove "this user was erased then, by that admin" to whoever holds the id, and tells nobody else who it was.
 */
export function userRef(userId: string): string {
  return createHash('sha256').update(`hph-user:${userId}`).digest('hex').slice(0, 32)
}

/**
 * The event and its subject. The user is the last subject token (so erasure purges the user's audit
 * trail with the rest of their data), except for an erase, which names the user only by `userRef`.
 */
export function auditEvent(prefix: string, record: AuditRecord): { subject: string; record: AuditRecord } {
  if (record.action === 'erase') {
    const { userId, ...rest } = record
    const ref = record.userRef ?? (userId ? userRef(userId) : undefined)
    const erased: AuditRecord = { ...rest, ...(ref ? { userRef: ref } : {}) }
    return { subject: subjects.audit(prefix, 'erase', ref ?? '_'), record: AuditRecord.parse(erased) }
  }
  return { subject: subjects.audit(prefix, record.action, safeToken(record.userId)), record: AuditRecord.parse(record) }
}

/** Publishes one audit event; resolves once JetStream has stored it. */
export function publishAudit(nats: Pick<Nats, 'js'>, prefix: string, record: AuditRecord): Promise<PubAck> {
  const { subject, record: data } = auditEvent(prefix, record)
  return publishEvent(nats.js, {
    subject,
    event: envelope({ id: randomUUID(), type: AUDIT_TYPE, source: 'audit', subject: data.userId ?? data.userRef ?? '_', data, time: data.at }),
  })
}
