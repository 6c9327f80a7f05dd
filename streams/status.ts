import type { JetStreamManager } from '@nats-io/jetstream'
import { sql, type Kysely } from 'kysely'
import type { Database } from '../schema/db.ts'
import { migrationVersion } from '../schema/migrate.ts'
import type { Nats } from './connect.ts'
import { streamName, STREAM_KEYS } from './subjects.ts'
import { CONSUMERS, type ConsumerSpec } from './topology.ts'

// The pipeline's status, read in one place: `hph status`, the operator page (GET /v1/ops/status) and the
// /metrics gauges all show what these functions read. Every part is read on its own, so a dependency that is
// down is reported, not fatal.

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

/** A table the pipeline writes: a message carries many rows, so throughput is also read here, in rows. */
export interface TableStatus {
  table: string
  /** live rows, as PostgreSQL's statistics estimate them (every partition or chunk summed) */
  rows: number
  /** rows inserted or updated since the statistics were reset: its change over time is rows/s */
  written: number
}

/** The tables whose rows are the pipeline's output, in the order of the data flow. */
export const OUTPUT_TABLES = ['samples', 'hrv_daily', 'sleep_daily', 'baseline_history', 'readiness_daily', 'user_baselines', 'user_cpt_tables'] as const

export interface Status {
  nats: { reachable: boolean; error?: string; server?: string }
  streams: StreamStatus[]
  consumers: ConsumerStatus[]
  tables: TableStatus[]
  dlq: { depth: number | null }
  database: { reachable: boolean; error?: string; migration?: string | null }
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err))

/**
 * One durable consumer's progress and lag. `firstSeq` is the stream's first sequence when the caller has read
 * it already; otherwise it is read here, and only when something is waiting.
 */
export async function readConsumer(
  jsm: JetStreamManager,
  prefix: string,
  stage: string,
  spec: Pick<ConsumerSpec, 'stream' | 'durable'>,
  now = Date.now(),
  firstSeq?: number,
): Promise<ConsumerStatus> {
  const stream = streamName(prefix, spec.stream)
  const info = await jsm.consumers.info(stream, spec.durable)
  const lagMessages = info.num_pending + info.num_ack_pending
  let lagSeconds: number | null = 0
  if (lagMessages > 0) {
    // the oldest message not yet acknowledged: just above the ack floor (a work queue deletes below it)
    const first = firstSeq ?? (await jsm.streams.info(stream)).state.first_seq
    const oldest = await jsm.streams.getMessage(stream, { seq: Math.max(info.ack_floor.stream_seq + 1, first) }).catch(() => null)
    lagSeconds = oldest ? Math.max(0, (now - oldest.time.getTime()) / 1000) : null
  }
  return {
    stream,
    durable: spec.durable,
    stage,
    pending: info.num_pending,
    ackPending: info.num_ack_pending,
    redelivered: info.num_redelivered,
    ackFloor: info.ack_floor.stream_seq,
    lagMessages,
    lagSeconds,
  }
}

/** Reads the status of one environment (its HPH_PREFIX); never throws for an unreachable dependency. */
export async function readStatus(prefix: string, nats: Nats | Error, db: Kysely<Database>, now = Date.now()): Promise<Status> {
  const status: Status = { nats: { reachable: false }, streams: [], consumers: [], tables: [], dlq: { depth: null }, database: { reachable: false } }
  if (nats instanceof Error) status.nats.error = nats.message
  else {
    try {
      status.nats = { reachable: true, ...(nats.nc.info?.version ? { server: nats.nc.info.version } : {}) }
      for (const key of STREAM_KEYS) {
        const name = streamName(prefix, key)
        try {
          const { state } = await nats.jsm.streams.info(name)
          status.streams.push({
            stream: name,
            messages: state.messages,
            bytes: state.bytes,
            firstSeq: state.first_seq,
            lastSeq: state.last_seq,
            firstTime: state.messages > 0 ? state.first_ts : null,
            lastTime: state.messages > 0 ? state.last_ts : null,
          })
          if (key === 'DLQ') status.dlq.depth = state.messages
        } catch (err) {
          status.streams.push({ stream: `${name} (${message(err)})`, messages: 0, bytes: 0, firstSeq: 0, lastSeq: 0, firstTime: null, lastTime: null })
        }
      }
      for (const [stage, spec] of Object.entries(CONSUMERS)) {
        const stream = streamName(prefix, spec.stream)
        try {
          const first = status.streams.find((s) => s.stream === stream)?.firstSeq ?? 0
          status.consumers.push(await readConsumer(nats.jsm, prefix, stage, spec, now, first))
        } catch (err) {
          status.consumers.push({
            stream,
            durable: `${spec.durable} (${message(err)})`,
            stage,
            pending: 0,
            ackPending: 0,
            redelivered: 0,
            ackFloor: 0,
            lagMessages: 0,
            lagSeconds: null,
          })
        }
      }
    } catch (err) {
      status.nats = { reachable: false, error: message(err) }
    }
  }
  try {
    status.database = { reachable: true, migration: (await migrationVersion(db)) ?? null }
    status.tables = await tableStatus(db)
  } catch (err) {
    status.database = { reachable: false, error: message(err) }
  }
  return status
}

/** Rows of the output tables from PostgreSQL's statistics: no count(*), so it stays cheap on any size. */
async function tableStatus(db: Kysely<Database>): Promise<TableStatus[]> {
  // a partition (or a TimescaleDB chunk) counts for the table it belongs to
  const { rows } = await sql<{ table: string; rows: string; written: string }>`
    with recursive tree(relid, root) as (
      select c.oid, c.relname::text from pg_class c where c.oid = any(${sql.raw(`array[${OUTPUT_TABLES.map((t) => `to_regclass('${t}')`).join(', ')}]`)}::oid[])
      union all
      select i.inhrelid, t.root from pg_inherits i join tree t on i.inhparent = t.relid)
    select t.root as table, coalesce(sum(s.n_live_tup), 0)::text as rows, coalesce(sum(s.n_tup_ins + s.n_tup_upd), 0)::text as written
    from tree t left join pg_stat_all_tables s on s.relid = t.relid group by t.root`.execute(db)
  const byName = new Map(rows.map((r) => [r.table, r]))
  return OUTPUT_TABLES.filter((t) => byName.has(t)).map((t) => ({ table: t, rows: Number(byName.get(t)?.rows), written: Number(byName.get(t)?.written) }))
}
