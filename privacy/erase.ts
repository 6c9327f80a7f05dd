import { sql, type Kysely } from 'kysely'
import type { Logger } from '../log.ts'
import type { Database } from '../schema/db.ts'
import type { Nats } from '../streams/connect.ts'
import { STREAM_KEYS, streamName, subjects, type StreamKey } from '../streams/subjects.ts'
import { CONSUMERS } from '../streams/topology.ts'
import { LOCKED_PROJECTIONS, rebuildLockKey } from '../schema/locks.ts'
import { isTransient, whileTransient } from '../streams/transient.ts'
import { clearErasing, markErasing } from './erasing.ts'
import { userMessages } from './messages.ts'
import { userTables } from './tables.ts'

// `DELETE /v1/users/:userId` and `hph user erase <id>` (docs/architecture.md §9.5): no stream and no table
// keeps the user's data.
//
// Two JetStream facts shape this (both checked against nats-server 2.9.10):
// - a purge with a subject filter also resets every durable consumer of the stream: their pending lists are
//   dropped and, once nothing of the filter is left, they jump to the end of the stream, skipping OTHER
//   users' messages not yet delivered. So streams that a stage consumes (ingest, samples, changes, insights)
//   lose the user's messages one by one (STREAM.MSG.DELETE, which overwrites them on disk); the purge with
//   a filter is used only where no durable consumer reads (HPH_DLQ, HPH_AUDIT).
// - deleting a message a stage holds (delivered, not yet acked) also drops it from the server's pending
//   list: the stage finishes it anyway (rows, a message downstream) and nobody can see it is still busy.
//   So a stage's unacknowledged messages are left alone: the erase deletes what the stage has acked
//   (at or below its ack floor), waits for the floor to pass the rest, and goes round again — rows the
//   stages wrote meanwhile and messages they published downstream are found in the next round. It is done
//   when a round finds nothing at all. Writes for the user that ARRIVE while the erase runs are new data
//   and are not covered: revoke the user's tokens first.

export interface EraseDeps {
  nats: Nats
  db: Kysely<Database>
  prefix: string
  schema: string
  log: Logger
  /** HPH_USER_REF_SECRET: the erasing marker names the user by userRef */
  userRefSecret: string
}

export interface EraseOptions {
  /** how long to wait for a rebuild in flight to end before giving up (HPH_ERASE_LOCK_TIMEOUT_MS, default 600 s) */
  lockTimeoutMs?: number
  /** how long a round waits for the stages to finish the user's messages they have not acked (default 120 s) */
  settleTimeoutMs?: number
  /** give up after this many rounds that still found something (default 20) */
  maxRounds?: number
}

export interface EraseReport {
  /** messages removed, per stream, over all rounds */
  purged: Record<string, number>
  /** rows deleted, per table, over all rounds */
  deleted: Record<string, number>
  rounds: number
  /** false when it could not finish (rounds ran out with something still found, a rebuild held on, a dependency failed): run it again */
  complete: boolean
  /** why it is not complete, in words safe to show */
  problem?: string
}

/** The stream each durable consumer reads, by stream key (several stages never share one stream here). */
const CONSUMED: ReadonlyMap<StreamKey, string> = new Map(Object.values(CONSUMERS).map((c) => [c.stream as StreamKey, c.durable]))

const DELETE_CONCURRENCY = 64
/** how long a table's delete is tried again while it fails as transient (a deadlock with a stage, PostgreSQL away) */
const DELETE_RETRY_MS = 30_000

/** Sequences (and bytes, when asked) of the messages matching `filter`. */
async function matching(nats: Nats, stream: string, filter: string, withData: boolean): Promise<Array<{ seq: number; data: Uint8Array }>> {
  const out: Array<{ seq: number; data: Uint8Array }> = []
  for await (const m of userMessages(nats, stream, filter, { withData })) out.push({ seq: m.seq, data: m.data })
  return out
}

async function deleteMessages(nats: Nats, stream: string, seqs: readonly number[]): Promise<number> {
  let n = 0
  for (let i = 0; i < seqs.length; i += DELETE_CONCURRENCY) {
    const done = await Promise.all(
      seqs.slice(i, i + DELETE_CONCURRENCY).map((seq) =>
        nats.jsm.streams.deleteMessage(stream, seq).then(
          () => true,
          // removed meanwhile (a work-queue ack, a concurrent erase): nothing left to remove
          (err: Error) => {
            if (/no message found|not found/i.test(err.message)) return false
            throw err
          },
        ),
      ),
    )
    n += done.filter(Boolean).length
  }
  return n
}

interface Round {
  removed: number
  /** per consumed stream, the highest sequence of the user's messages a stage has not acked yet */
  waitingFor: Map<string, { durable: string; seq: number }>
}

/** One round: every stream, then every table. With `force`, unacknowledged messages go too. */
async function eraseOnce(deps: EraseDeps, userId: string, report: EraseReport, force: boolean): Promise<Round> {
  const round: Round = { removed: 0, waitingFor: new Map() }
  for (const key of STREAM_KEYS) {
    const stream = streamName(deps.prefix, key)
    const filter = subjects.ofUserIn(deps.prefix, key, userId)
    const durable = CONSUMED.get(key)
    let n = 0
    if (!durable) {
      n = (await deps.nats.jsm.streams.purge(stream, { filter })).purged
    } else {
      const seqs = (await matching(deps.nats, stream, filter, false)).map((m) => m.seq)
      if (seqs.length) {
        const c = await deps.nats.jsm.consumers.info(stream, durable)
        // no stage holds anything and none is pulling (the stages are stopped): nothing can be in hand
        const idle = c.num_ack_pending === 0 && c.num_waiting === 0
        // acked: at or below the floor, or nothing outstanding at all and already delivered
        const acked = (seq: number) => idle || seq <= c.ack_floor.stream_seq || (c.num_ack_pending === 0 && seq <= c.delivered.stream_seq)
        const now = force ? seqs : seqs.filter(acked)
        const later = force ? [] : seqs.filter((s) => !acked(s))
        n = await deleteMessages(deps.nats, stream, now)
        if (later.length) round.waitingFor.set(stream, { durable, seq: Math.max(...later) })
      }
    }
    if (key === 'DLQ') n += await eraseUnnamedDeadLetters(deps, userId)
    report.purged[stream] = (report.purged[stream] ?? 0) + n
    round.removed += n
  }
  // table by table, each delete a transaction of its own: holding one table's rows while waiting for another's, the
  // erase deadlocked with a stage writing the user's rows of both meanwhile, and PostgreSQL cancelled it. A delete
  // that still meets a deadlock (or PostgreSQL away for a moment) is tried again.
  for (const t of await userTables(deps.db, deps.schema)) {
    const r = await whileTransient(() => sql`delete from ${sql.id(deps.schema, t.table)} where user_id = ${userId}`.execute(deps.db), { waitMs: DELETE_RETRY_MS })
    const n = Number(r.numAffectedRows ?? 0)
    report.deleted[t.table] = (report.deleted[t.table] ?? 0) + n
    round.removed += n
  }
  return round
}

/**
 * Dead letters whose user could not be told land under `_` (streams/subjects.ts safeToken); one of them may
 * still carry the user's id in its payload, so those are read and the ones naming the user deleted.
 */
async function eraseUnnamedDeadLetters(deps: EraseDeps, userId: string): Promise<number> {
  const stream = streamName(deps.prefix, 'DLQ')
  const letters = await matching(deps.nats, stream, subjects.ofUserIn(deps.prefix, 'DLQ', '_'), true)
  const naming = letters.filter((m) => {
    const text = Buffer.from(m.data).toString()
    const b64 = /"payloadBase64"\s*:\s*"([A-Za-z0-9+/=]*)"/.exec(text)?.[1]
    return namesUser(text, userId) || (b64 !== undefined && namesUser(Buffer.from(b64, 'base64').toString(), userId))
  })
  return deleteMessages(
    deps.nats,
    stream,
    naming.map((m) => m.seq),
  )
}

/**
 * Whether `text` names the user: the id as a whole token, not inside a longer one (erasing `a` must not take
 * the dead letters of `ana`, nor every letter holding the letter a). User ids are [A-Za-z0-9_-] only.
 */
export function namesUser(text: string, userId: string): boolean {
  const id = userId.replace(/[^A-Za-z0-9_-]/g, (c) => `\\${c}`)
  return new RegExp(`(?<![A-Za-z0-9_-])${id}(?![A-Za-z0-9_-])`).test(text)
}

/** Resolves true once each stage's ack floor has passed the user's messages it still held, false at the deadline. */
async function settled(nats: Nats, waitingFor: Round['waitingFor'], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let busy = false
    for (const [stream, { durable, seq }] of waitingFor) {
      const c = await nats.jsm.consumers.info(stream, durable)
      if (c.ack_floor.stream_seq < seq) busy = true
    }
    if (!busy) return true
    if (Date.now() > deadline) return false
    await new Promise((r) => setTimeout(r, 200))
  }
}

/** Takes every projection's rebuild lock on this session, waiting for a rebuild in flight up to `timeoutMs`; false if it could not. */
async function lockRebuilds(conn: Kysely<Database>, schema: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  const keys = LOCKED_PROJECTIONS.map((p) => rebuildLockKey(schema, p))
  for (;;) {
    const held: string[] = []
    for (const key of keys) {
      const r = await sql<{ ok: boolean }>`select pg_try_advisory_lock(hashtext(${key})) as ok`.execute(conn)
      if (r.rows[0]?.ok !== true) break
      held.push(key)
    }
    if (held.length === keys.length) return true
    await unlockRebuilds(conn, held)
    if (Date.now() > deadline) return false
    await new Promise((r) => setTimeout(r, 250))
  }
}

async function unlockRebuilds(conn: Kysely<Database>, keys: readonly string[]): Promise<void> {
  for (const key of keys) await sql`select pg_advisory_unlock(hashtext(${key}))`.execute(conn)
}

/**
 * Erases a user everywhere (idempotent: erasing an erased or unknown user finds nothing and succeeds). It never
 * throws for what stops it half-way: the report says `complete: false` and why (the caller answers 503).
 */
export async function eraseUser(deps: EraseDeps, userId: string, opts: EraseOptions = {}): Promise<EraseReport> {
  const settleTimeoutMs = opts.settleTimeoutMs ?? 120_000
  const maxRounds = opts.maxRounds ?? 20
  const lockTimeoutMs = opts.lockTimeoutMs ?? 600_000
  const report: EraseReport = { purged: {}, deleted: {}, rounds: 0, complete: false }
  const log = deps.log.child({ op: 'erase' })
  const marker = { nats: deps.nats, prefix: deps.prefix, userRefSecret: deps.userRefSecret }
  // the marker outlives a waiting lock and a round; a dead erase's marker ends by itself
  const renew = (ms: number) => markErasing(marker, userId, Date.now() + ms + 60_000)
  try {
    await renew(lockTimeoutMs + settleTimeoutMs)
    await deps.db.connection().execute(async (conn) => {
      if (!(await lockRebuilds(conn, deps.schema, lockTimeoutMs))) {
        report.problem = `a rebuild was still running after ${lockTimeoutMs} ms (HPH_ERASE_LOCK_TIMEOUT_MS): it would bring the user back; nothing was erased`
        return
      }
      try {
        let force = false
        for (let round = 1; round <= maxRounds; round++) {
          await renew(settleTimeoutMs)
          const r = await eraseOnce(deps, userId, report, force)
          report.rounds = round
          if (r.removed === 0 && r.waitingFor.size === 0) {
            report.complete = true
            break
          }
          if (r.waitingFor.size && !(await settled(deps.nats, r.waitingFor, settleTimeoutMs))) {
            // no stage finished them in time (stopped, or stuck): nothing is being made of them, so they go as they are
            log.warn({ round, settleTimeoutMs, streams: [...r.waitingFor.keys()] }, "the stages did not finish the user's messages in time; removing them unacknowledged")
            force = true
          }
        }
        if (!report.complete) report.problem = `the user's data was still being found after ${maxRounds} rounds (something still writes it)`
      } finally {
        await unlockRebuilds(
          conn,
          LOCKED_PROJECTIONS.map((p) => rebuildLockKey(deps.schema, p)),
        )
      }
    })
  } catch (err) {
    log.error({ err, rounds: report.rounds }, 'erase stopped')
    report.complete = false
    report.problem = `the erase stopped after ${report.rounds} round(s): ${isTransient(err) ? 'NATS or PostgreSQL is unreachable' : 'an error (see the log)'}`
  } finally {
    await clearErasing(marker, userId).catch((err: unknown) => log.warn({ err }, 'erasing marker not cleared; it ends by its deadline'))
  }
  log.info(
    { rounds: report.rounds, complete: report.complete, problem: report.problem, purged: report.purged, deleted: report.deleted },
    report.complete ? 'user erased' : 'user erase incomplete',
  )
  return report
}
