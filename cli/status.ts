import type { Kysely } from 'kysely'
import type { Database } from '../schema/db.ts'
import { createDb } from '../schema/db.ts'
import { migrationVersion } from '../schema/migrate.ts'
import { connectNats, type Nats } from '../streams/connect.ts'
import { streamName, STREAM_KEYS } from '../streams/subjects.ts'
import { CONSUMERS } from '../streams/topology.ts'
import type { CommandContext } from './commands.ts'
import { table } from './table.ts'

// `hph status` (DESIGN.md §7): what an operator looks at first — streams, consumers and their lag,
// the DLQ, the database. Every part is read on its own, so a dependency that is down is reported, not fatal.

export interface StreamStatus {
  stream: string
  messages: number
  bytes: number
  firstSeq: number
  lastSeq: number
  firstTime: string | null
  lastTime: string | null
}

export interface ConsumerStatus {
  stream: string
  durable: string
  stage: string
  /** in the stream, not yet delivered */
  pending: number
  /** delivered, not yet acknowledged */
  ackPending: number
  redelivered: number
  ackFloor: number
  /** messages not yet done: pending + ackPending */
  lagMessages: number
  /** age of the oldest message not yet acknowledged; 0 when nothing is waiting, null when it cannot be read */
  lagSeconds: number | null
}

export interface Status {
  nats: { reachable: boolean; error?: string; server?: string }
  streams: StreamStatus[]
  consumers: ConsumerStatus[]
  dlq: { depth: number | null }
  database: { reachable: boolean; error?: string; migration?: string | null }
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err))

/** Reads the status of one environment (its HPH_PREFIX); never throws for an unreachable dependency. */
export async function readStatus(prefix: string, nats: Nats | Error, db: Kysely<Database>, now = Date.now()): Promise<Status> {
  const status: Status = { nats: { reachable: false }, streams: [], consumers: [], dlq: { depth: null }, database: { reachable: false } }
  if (nats instanceof Error) status.nats.error = nats.message
  else {
    try {
      status.nats = { reachable: true, ...(nats.nc.info?.version ? { server: nats.nc.info.version } : {}) }
      for (const key of STREAM_KEYS) {
        const name = streamName(prefix, key)
        try {
          const { state } = await nats.jsm.streams.info(name)
          status.streams.push({
            stream: name, messages: state.messages, bytes: state.bytes, firstSeq: state.first_seq, lastSeq: state.last_seq,
            firstTime: state.messages > 0 ? state.first_ts : null, lastTime: state.messages > 0 ? state.last_ts : null,
          })
          if (key === 'DLQ') status.dlq.depth = state.messages
        } catch (err) {
          status.streams.push({ stream: `${name} (${message(err)})`, messages: 0, bytes: 0, firstSeq: 0, lastSeq: 0, firstTime: null, lastTime: null })
        }
      }
      for (const [stage, spec] of Object.entries(CONSUMERS)) {
        const stream = streamName(prefix, spec.stream)
        try {
          const info = await nats.jsm.consumers.info(stream, spec.durable)
          const lagMessages = info.num_pending + info.num_ack_pending
          let lagSeconds: number | null = 0
          if (lagMessages > 0) {
            // the oldest message not yet acknowledged: just above the ack floor (a work queue deletes below it)
            const first = status.streams.find((s) => s.stream === stream)?.firstSeq ?? 0
            const seq = Math.max(info.ack_floor.stream_seq + 1, first)
            const oldest = await nats.jsm.streams.getMessage(stream, { seq }).catch(() => null)
            lagSeconds = oldest ? Math.max(0, (now - oldest.time.getTime()) / 1000) : null
          }
          status.consumers.push({
            stream, durable: spec.durable, stage, pending: info.num_pending, ackPending: info.num_ack_pending, redelivered: info.num_redelivered,
            ackFloor: info.ack_floor.stream_seq, lagMessages, lagSeconds,
          })
        } catch (err) {
          status.consumers.push({ stream, durable: `${spec.durable} (${message(err)})`, stage, pending: 0, ackPending: 0, redelivered: 0, ackFloor: 0, lagMessages: 0, lagSeconds: null })
        }
      }
    } catch (err) {
      status.nats = { reachable: false, error: message(err) }
    }
  }
  try {
    status.database = { reachable: true, migration: (await migrationVersion(db)) ?? null }
  } catch (err) {
    status.database = { reachable: false, error: message(err) }
  }
  return status
}

const fmtBytes = (n: number) => (n < 1024 ? `${n} B` : n < 1024 ** 2 ? `${(n / 1024).toFixed(1)} KiB` : n < 1024 ** 3 ? `${(n / 1024 ** 2).toFixed(1)} MiB` : `${(n / 1024 ** 3).toFixed(2)} GiB`)

export function renderStatus(s: Status): string {
  const out: string[] = []
  out.push(`NATS: ${s.nats.reachable ? `reachable${s.nats.server ? ` (nats-server ${s.nats.server})` : ''}` : `UNREACHABLE — ${s.nats.error ?? ''}`}`)
  out.push(`PostgreSQL: ${s.database.reachable ? `reachable, migration ${s.database.migration ?? '(none applied)'}` : `UNREACHABLE — ${s.database.error ?? ''}`}`)
  out.push(`DLQ depth: ${s.dlq.depth ?? 'unknown'}`, '', 'streams')
  out.push(table(s.streams.map((x) => ({ stream: x.stream, messages: x.messages, bytes: fmtBytes(x.bytes), 'first seq': x.firstSeq, 'last seq': x.lastSeq, 'last message': x.lastTime ?? '-' }))))
  out.push('consumers')
  out.push(table(s.consumers.map((c) => ({
    consumer: `${c.stream}/${c.durable}`, pending: c.pending, 'ack pending': c.ackPending, redelivered: c.redelivered, 'ack floor': c.ackFloor,
    'lag msgs': c.lagMessages, 'lag s': c.lagSeconds === null ? '?' : Number(c.lagSeconds.toFixed(1)),
  }))))
  return out.join('\n')
}

/** `hph status [--json]`: exit 0 when NATS and PostgreSQL are reachable, 1 otherwise. */
export async function runStatus({ config, flags }: Pick<CommandContext, 'config' | 'flags'>): Promise<number> {
  const nats = await connectNats(config, 'hph:status', { maxReconnectAttempts: 0 }).catch((err: unknown) => new Error(message(err)))
  const { db } = createDb(config, { max: 1 })
  try {
    const s = await readStatus(config.HPH_PREFIX, nats, db)
    process.stdout.write(flags.json ? `${JSON.stringify(s, null, 2)}\n` : renderStatus(s))
    return s.nats.reachable && s.database.reachable ? 0 : 1
  } finally {
    if (!(nats instanceof Error)) await nats.nc.close()
    await db.destroy()
  }
}
