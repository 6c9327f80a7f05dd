import { sql, type Kysely } from 'kysely'
import type { Database } from '../schema/db.ts'
import { SHADOW_SUFFIX } from '../schema/shadow.ts'
import type { Nats } from '../streams/connect.ts'
import { decodeJson } from '../streams/envelope.ts'
import { STREAM_KEYS, streamName, subjects } from '../streams/subjects.ts'
import { AUDIT_TYPE } from '../streams/schemas.ts'
import { upcastStored } from '../streams/upcast.ts'
import { userMessages } from './messages.ts'
import { userTables, type UserTable } from './tables.ts'

// `GET /v1/users/:userId/export` and `hph user export <id>`: everything held about one user, as NDJSON.
// Streamed: stream messages through an ordered consumer, table rows in key-ordered pages; nothing is held whole.
// Other principals (an admin, another user, their addresses) are not the user's data: audit events name them not.

export interface ExportDeps {
  nats: Nats
  db: Kysely<Database>
  prefix: string
  schema: string
  /** rows per database page (default 1000) */
  pageSize?: number
}

export type ExportLine =
  | { kind: 'export'; format: 'hph.export.v1'; userId: string; generatedAt: string }
  | { kind: 'message'; stream: string; seq: number; subject: string; time: string; event: unknown }
  | { kind: 'row'; table: string; row: Record<string, unknown> }
  | { kind: 'end'; messages: Record<string, number>; rows: Record<string, number> }

const PAGE = 1000

/**
 * An audit event as the user may see it: what was done to their data, when and how it ended, but not who else
 * did it: another principal's id, address and request id are left out (only the user's own stay).
 */
export function ownAuditView(event: unknown): unknown {
  const e = event as { type?: unknown; data?: Record<string, unknown> }
  if (e?.type !== AUDIT_TYPE || typeof e.data !== 'object' || e.data === null) return event
  const { actor: _actor, ip: _ip, requestId: _requestId, ...rest } = e.data
  // a user principal that was not refused on this user's data is the user: authorisation lets none other through
  const own = rest.actorKind === 'user' && rest.outcome !== 'denied'
  if (own) return event
  const who = rest.actorKind === 'admin' ? 'an administrator' : rest.actorKind === 'user' ? 'another user' : 'unauthenticated'
  return { ...e, data: { ...rest, actor: who } }
}

/** Messages of one user in one stream, oldest first. */
async function* streamMessages(nats: Nats, stream: string, filter: string): AsyncGenerator<ExportLine> {
  for await (const m of userMessages(nats, stream, filter, { withData: true })) {
    let event: unknown
    try {
      // an event of an old version is shown as the version it is read as today (a one-sample hph.sample.v2 …)
      event = ownAuditView(upcastStored(decodeJson(m.data)))
    } catch {
      // not JSON (a poison message kept in the DLQ): exported as it is, base64
      event = { base64: Buffer.from(m.data).toString('base64') }
    }
    yield { kind: 'message', stream, seq: m.seq, subject: m.subject, time: m.time, event }
  }
}

/** Rows of one user in one table, a page at a time in key order (keyset pagination: no page is re-read). */
async function* tableRows(db: Kysely<Database>, schema: string, t: UserTable, userId: string, page = PAGE): AsyncGenerator<ExportLine> {
  const table = sql.id(schema, t.table)
  const keys = t.keys.filter((k) => k !== 'user_id')
  if (keys.length === 0) {
    // a table without a key beyond the user (user_baselines, user_cpt_tables, insight_users): one row at most per user, or few
    const r = await sql<Record<string, unknown>>`select * from ${table} where user_id = ${userId}`.execute(db)
    for (const row of r.rows) yield { kind: 'row', table: t.table, row }
    return
  }
  const keyList = sql.join(keys.map((k) => sql.ref(k)))
  let after: unknown[] | undefined
  for (;;) {
    const query = after
      ? sql<
          Record<string, unknown>
        >`select * from ${table} where user_id = ${userId} and (${keyList}) > (${sql.join(after.map((v) => sql`${v}`))}) order by ${keyList} limit ${page}`
      : sql<Record<string, unknown>>`select * from ${table} where user_id = ${userId} order by ${keyList} limit ${page}`
    const r = await query.execute(db)
    for (const row of r.rows) yield { kind: 'row', table: t.table, row }
    if (r.rows.length < page) return
    const last = r.rows.at(-1) as Record<string, unknown>
    after = keys.map((k) => last[k])
  }
}

/** Every line of a user's export, in order: a header, every stream's messages, every table's rows, an end line with counts. */
export async function* exportUser(deps: ExportDeps, userId: string, now = new Date()): AsyncGenerator<ExportLine> {
  yield { kind: 'export', format: 'hph.export.v1', userId, generatedAt: now.toISOString() }
  const messages: Record<string, number> = {}
  const rows: Record<string, number> = {}
  for (const key of STREAM_KEYS) {
    const stream = streamName(deps.prefix, key)
    messages[stream] = 0
    for await (const line of streamMessages(deps.nats, stream, subjects.ofUserIn(deps.prefix, key, userId))) {
      messages[stream] = (messages[stream] ?? 0) + 1
      yield line
    }
  }
  // a rebuild's shadow tables are transient copies of the live ones: not exported twice
  for (const t of (await userTables(deps.db, deps.schema)).filter((t) => !t.table.endsWith(SHADOW_SUFFIX))) {
    rows[t.table] = 0
    for await (const line of tableRows(deps.db, deps.schema, t, userId, deps.pageSize)) {
      rows[t.table] = (rows[t.table] ?? 0) + 1
      yield line
    }
  }
  yield { kind: 'end', messages, rows }
}

/** The same lines as NDJSON text, one JSON document per line. */
export async function* exportNdjson(deps: ExportDeps, userId: string): AsyncGenerator<string> {
  for await (const line of exportUser(deps, userId)) yield `${JSON.stringify(line)}\n`
}
