import { sql, type Kysely } from 'kysely'
import type { Logger } from '../log.ts'
import type { Database } from '../schema/db.ts'
import type { Nats } from '../streams/connect.ts'
import { STREAM_KEYS, streamName, subjects } from '../streams/subjects.ts'
import { CONSUMERS } from '../streams/topology.ts'
import { userTables } from './tables.ts'

// `DELETE /v1/users/:userId` and `hph user erase <id>` (DESIGN.md §9 invariant 5): no stream and no table
// keeps the user's data.
//
// The live pipeline may hold some of the user's messages in hand (pulled, not yet acked) while we purge;
// finishing them would write rows and publish messages again. So the erase goes in rounds: purge every
// stream and delete every row, then wait until every stage has finished (acked) whatever it had been
// given before the purge, then again — until a round finds nothing. A message in hand is still stored
// until it is acked (and work-queue messages are removed only by their ack, after their effect), so a
// round that purges nothing and deletes nothing, after the previous round's work in hand has finished,
// leaves nothing that could bring the user back. Writes for the user that ARRIVE while the erase runs
// are new data and are not covered: revoke the user's tokens first.

export interface EraseDeps {
  nats: Nats
  db: Kysely<Database>
  prefix: string
  schema: string
  log: Logger
}

export interface EraseOptions {
  /** how long to wait, each round, for the stages to finish what they held (default 60 s) */
  settleTimeoutMs?: number
  /** give up after this many rounds that still found something (default 8) */
  maxRounds?: number
}

export interface EraseReport {
  /** messages purged, per stream, over all rounds */
  purged: Record<string, number>
  /** rows deleted, per table, over all rounds */
  deleted: Record<string, number>
  rounds: number
  /** false when the stages did not finish their work in hand in time, or rounds ran out: run the erase again */
  complete: boolean
}

/** One round: every stream's messages of the user, then every table's rows, in one transaction. */
async function eraseOnce(deps: EraseDeps, userId: string, report: EraseReport): Promise<number> {
  let removed = 0
  for (const key of STREAM_KEYS) {
    const stream = streamName(deps.prefix, key)
    const r = await deps.nats.jsm.streams.purge(stream, { filter: subjects.ofUserIn(deps.prefix, key, userId) })
    report.purged[stream] = (report.purged[stream] ?? 0) + r.purged
    removed += r.purged
  }
  removed += await eraseUnnamedDeadLetters(deps, userId, report)
  await deps.db.transaction().execute(async (tx) => {
    for (const t of await userTables(tx, deps.schema)) {
      const r = await sql`delete from ${sql.id(deps.schema, t.table)} where user_id = ${userId}`.execute(tx)
      const n = Number(r.numAffectedRows ?? 0)
      report.deleted[t.table] = (report.deleted[t.table] ?? 0) + n
      removed += n
    }
  })
  return removed
}

/**
 * Dead letters whose user could not be told land under `_` (streams/subjects.ts safeToken); one of them may
 * still carry the user's id in its payload, so those few are read and the ones naming the user deleted.
 */
async function eraseUnnamedDeadLetters(deps: EraseDeps, userId: string, report: EraseReport): Promise<number> {
  const stream = streamName(deps.prefix, 'DLQ')
  const filter = subjects.ofUserIn(deps.prefix, 'DLQ', '_')
  const info = await deps.nats.jsm.streams.info(stream, { subjects_filter: filter })
  const expected = Object.values(info.state.subjects ?? {}).reduce((a, n) => a + n, 0)
  if (expected === 0) return 0
  const needle = Buffer.from(userId)
  const doomed: number[] = []
  const consumer = await deps.nats.js.consumers.get(stream, { filter_subjects: filter })
  let got = 0
  for (;;) {
    let fetched = 0
    let pending = 1
    for await (const m of await consumer.fetch({ max_messages: 1000, expires: 2000 })) {
      fetched++
      got++
      pending = m.info.pending
      // the payload is base64 inside the letter: look at the bytes it stands for as well
      if (Buffer.from(m.data).includes(needle) || lettersNaming(m.string(), userId)) doomed.push(m.seq)
      if (pending === 0) break
    }
    if (fetched === 0 || pending === 0 || got >= expected) break
  }
  for (const seq of doomed) await deps.nats.jsm.streams.deleteMessage(stream, seq)
  report.purged[stream] = (report.purged[stream] ?? 0) + doomed.length
  return doomed.length
}

/** Whether a dead letter's base64 payload (`payloadBase64`) decodes to bytes naming the user. */
function lettersNaming(text: string, userId: string): boolean {
  const m = /"payloadBase64"\s*:\s*"([A-Za-z0-9+/=]*)"/.exec(text)
  return m?.[1] !== undefined && Buffer.from(m[1], 'base64').includes(Buffer.from(userId))
}

/** The last sequence of every stream the stages consume: what must be finished before the next round. */
async function marks(nats: Nats, prefix: string): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  for (const spec of Object.values(CONSUMERS)) {
    const stream = streamName(prefix, spec.stream)
    if (!out.has(stream)) out.set(stream, (await nats.jsm.streams.info(stream)).state.last_seq)
  }
  return out
}

/** Resolves true once every durable consumer has acked all it was given up to the marks (or holds nothing). */
async function settled(nats: Nats, prefix: string, upTo: Map<string, number>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const infos = await Promise.all(
      Object.values(CONSUMERS).map(async (spec) => {
        const stream = streamName(prefix, spec.stream)
        try {
          return { info: await nats.jsm.consumers.info(stream, spec.durable), mark: upTo.get(stream) ?? 0 }
        } catch (err) {
          // a consumer that does not exist holds nothing in hand
          if ((err as Error).message.includes('not found')) return undefined
          throw err
        }
      }),
    )
    const busy = infos.filter((c) => c && c.info.num_ack_pending > 0 && c.info.ack_floor.stream_seq < c.mark)
    if (busy.length === 0) return true
    if (Date.now() > deadline) return false
    await new Promise((r) => setTimeout(r, 200))
  }
}

/** Erases a user everywhere (idempotent: erasing an erased or unknown user finds nothing and succeeds). */
export async function eraseUser(deps: EraseDeps, userId: string, opts: EraseOptions = {}): Promise<EraseReport> {
  const settleTimeoutMs = opts.settleTimeoutMs ?? 60_000
  const maxRounds = opts.maxRounds ?? 8
  const report: EraseReport = { purged: {}, deleted: {}, rounds: 0, complete: false }
  const log = deps.log.child({ op: 'erase' })
  for (let round = 1; round <= maxRounds; round++) {
    const upTo = await marks(deps.nats, deps.prefix)
    const removed = await eraseOnce(deps, userId, report)
    report.rounds = round
    // nothing stored: nothing in hand either (a message in hand stays stored until its effect is made and acked)
    if (removed === 0) {
      report.complete = true
      break
    }
    if (!(await settled(deps.nats, deps.prefix, upTo, settleTimeoutMs))) {
      log.warn({ round, settleTimeoutMs }, 'the stages did not finish their work in hand in time; erasing once more and stopping')
      await eraseOnce(deps, userId, report)
      break
    }
  }
  log.info({ rounds: report.rounds, complete: report.complete, purged: report.purged, deleted: report.deleted }, 'user erased')
  return report
}
