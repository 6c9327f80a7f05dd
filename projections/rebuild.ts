import type { Kysely } from 'kysely'
import type pg from 'pg'
import type { Logger } from '../log.ts'
import type { Database } from '../schema/db.ts'
import { rebuildLockKey, tryLock, unlock } from '../schema/locks.ts'
import { createShadow, dropShadows, SHADOW_SUFFIX, shadowName, swapShadows } from '../schema/shadow.ts'
import type { Nats } from '../streams/connect.ts'
import type { BatchHandler } from '../streams/consumer.ts'
import { firstSeqSince, StreamReader } from '../streams/reader.ts'
import { replayThrough } from '../streams/replay.ts'
import type { InsightBatch, SampleBatch } from '../streams/schemas.ts'
import { streamName, type StreamKey } from '../streams/subjects.ts'
import { CONSUMERS, type StageName } from '../streams/topology.ts'
import { INSIGHT_PROJECTION_TABLES, insightsWriter } from './insights/writer.ts'
import { samplesWriter } from './samples/writer.ts'

// `hph rebuild` / `hph replay` (docs/operating.md §4): a projection rebuilt from its stream into shadow
// tables while the live tables keep serving readers and the live writer keeps writing, then swapped in. The
// stream is read by the one stream reader (streams/reader.ts) and written by the live writer's own handler,
// pointed at the shadows (streams/replay.ts).
//
// The swap: one transaction locks the live tables EXCLUSIVE (readers go on, the live writer waits),
// reads the stream's last sequence L, replays the shadow up to L, then drops the live tables and
// renames the shadows. Everything the live writer ever committed came from a message ≤ L (it publishes
// nothing and commits nothing while it waits), so the shadow holds it too; the live writer's waiting
// statement then lands in the new table. Readers are held only for the drop-and-rename (ACCESS
// EXCLUSIVE), never see a missing or half-built table, and the live consumer goes on from where it
// was: what it redelivers is already in the new tables and changes nothing (idempotent writes).

export const PROJECTIONS = ['samples', 'insights'] as const
export type ProjectionName = (typeof PROJECTIONS)[number]

interface ProjectionSpec<T> {
  stream: StreamKey
  liveStage: StageName
  tables: readonly string[]
  /** the live writer's handler, writing into the shadow tables */
  handler(deps: WriteDeps): BatchHandler<T>
  /** rows of the live tables that a replay from `fromSeq` keeps rather than re-derives */
  seedSql(schema: string, fromSeq: number): string[]
  /**
   * With this, the shadows are bulk-loaded without their keys (they come with the other indexes after
   * the bulk), and this removes the rows the keys would have refused: what the live writer keeps.
   */
  dedupeSql?(schema: string): string
}

interface WriteDeps {
  db: Kysely<Database>
  pool: pg.Pool
  nats: Nats
  prefix: string
  schema: string
}

const SPECS: { samples: ProjectionSpec<SampleBatch>; insights: ProjectionSpec<InsightBatch> } = {
  samples: {
    stream: 'SAMPLES',
    liveStage: 'samples-writer',
    tables: ['samples'],
    handler: (deps) => samplesWriter(deps, { shadow: shadowName('samples') }),
    seedSql: (schema, fromSeq) => [`insert into "${schema}".${shadowName('samples')} select * from "${schema}".samples where stream_seq < ${fromSeq}`],
    // the same sample twice in the stream (sent again after the duplicate window): the first one stays, as
    // `on conflict do nothing` keeps it in the live table
    dedupeSql: (schema) => `delete from "${schema}".${shadowName('samples')} t
      using (select sample_id, start_ts, min(stream_seq) as keep from "${schema}".${shadowName('samples')} group by 1, 2 having count(*) > 1) d
      where t.sample_id = d.sample_id and t.start_ts = d.start_ts and t.stream_seq > d.keep`,
  },
  insights: {
    stream: 'INSIGHTS',
    liveStage: 'insights-writer',
    tables: INSIGHT_PROJECTION_TABLES,
    handler: (deps) => insightsWriter(deps, { shadowSuffix: SHADOW_SUFFIX }),
    // insight rows carry sample sequences, not their event's: all of them stay, and the events from
    // `fromSeq` on are applied over them under the version guard
    seedSql: (schema) => INSIGHT_PROJECTION_TABLES.map((t) => `insert into "${schema}".${shadowName(t)} select * from "${schema}".${t}`),
  },
}

export interface RebuildProgress {
  phase: 'seed' | 'replay' | 'catch-up' | 'swap'
  /** messages read from the stream so far */
  done: number
  /** messages between the start and the stream's end as last seen */
  total: number
}

export interface RebuildOptions {
  nats: Nats
  db: Kysely<Database>
  pool: pg.Pool
  prefix: string
  schema: string
  log: Logger
  projection: ProjectionName
  /** replay from this stream sequence (rows before it are kept from the live tables) */
  fromSeq?: number
  /** replay from the first message stored at or after this instant */
  since?: Date
  /** messages applied per transaction (default 5000, and at most 16 MiB of them) */
  batchSize?: number
  /** called after each pull is applied; a returned promise is awaited (a caller may pace the rebuild) */
  onProgress?: (p: RebuildProgress) => void | Promise<void>
}

export interface RebuildResult {
  projection: ProjectionName
  stream: string
  fromSeq: number
  /** the last stream sequence the new tables hold */
  throughSeq: number
  /** messages read and applied */
  messages: number
  /** messages that did not decode (they went to the DLQ when first delivered) */
  skipped: number
  seconds: number
  /** how long readers were held: the drop-and-rename inside the swap transaction */
  swapPauseMs: number
  /** the whole swap transaction, live writer held included */
  swapMs: number
}

const SWAP_ATTEMPTS = 5
const REBUILD_BATCH = 5000
/** the swap starts once the shadow is at most this many messages behind (it applies them holding the live writer) */
const SWAP_GAP = 1000

/** Rebuilds `projection` from its stream into shadow tables and swaps them in; see the comment above. */
export async function rebuildProjection(opts: RebuildOptions): Promise<RebuildResult> {
  const spec = SPECS[opts.projection] as ProjectionSpec<unknown>
  const t0 = performance.now()
  const stream = streamName(opts.prefix, spec.stream)
  const log = opts.log.child({ rebuild: opts.projection })
  const deps: WriteDeps = { db: opts.db, pool: opts.pool, nats: opts.nats, prefix: opts.prefix, schema: opts.schema }
  const batchSize = opts.batchSize ?? REBUILD_BATCH

  const info = await opts.nats.jsm.streams.info(stream)
  let fromSeq = Math.max(info.state.first_seq, opts.fromSeq ?? 1)
  if (opts.since) fromSeq = Math.max(fromSeq, await firstSeqSince(opts.nats, stream, opts.since, info.state.last_seq + 1))
  // rows below the live writer's ack floor are committed in the live tables; above it they may not be yet
  const live = await opts.nats.jsm.consumers.info(stream, CONSUMERS[spec.liveStage].durable)
  const partial = fromSeq > info.state.first_seq
  if (partial) fromSeq = Math.min(fromSeq, live.ack_floor.stream_seq + 1)

  // one rebuild of a projection at a time (a second would drop the first one's shadows); the lock is a
  // session's, so it goes with the connection if this process dies
  const guard = await opts.pool.connect()
  const key = rebuildLockKey(opts.schema, opts.projection)
  if (!(await tryLock(guard, key))) {
    guard.release()
    throw new Error(`another rebuild of ${opts.projection}, or an erase, is running on this database`)
  }
  try {
    return await rebuildLocked(opts, spec, { t0, stream, log, deps, batchSize, info, fromSeq, partial })
  } finally {
    await unlock(guard, key).catch(() => undefined)
    guard.release()
  }
}

interface RebuildContext {
  t0: number
  stream: string
  log: Logger
  deps: WriteDeps
  batchSize: number
  info: { state: { last_seq: number } }
  fromSeq: number
  partial: boolean
}

async function rebuildLocked(opts: RebuildOptions, spec: ProjectionSpec<unknown>, ctx: RebuildContext): Promise<RebuildResult> {
  const { t0, stream, log, deps, batchSize, info, fromSeq, partial } = ctx
  const client = await opts.pool.connect()
  const deferredIndexes: string[] = []
  try {
    await client.query('begin')
    for (const table of spec.tables) deferredIndexes.push(...(await createShadow(client, opts.schema, table, { deferKeys: spec.dedupeSql !== undefined })))
    await client.query('commit')
  } catch (err) {
    await client.query('rollback').catch(() => undefined)
    throw err
  } finally {
    client.release()
  }
  if (partial) {
    await opts.onProgress?.({ phase: 'seed', done: 0, total: 0 })
    for (const text of spec.seedSql(opts.schema, fromSeq)) await opts.pool.query(text)
  }
  log.info({ stream, fromSeq, lastSeq: info.state.last_seq, partial }, 'rebuilding into shadow tables')

  const reader = await StreamReader.open(opts.nats, stream, fromSeq, batchSize)
  const replay = replayThrough(spec.handler(deps), reader)
  /** applies the stream up to `target` (inclusive) into the shadows */
  const replayTo = (target: number, phase: RebuildProgress['phase']) =>
    replay.to(target, () => opts.onProgress?.({ phase, done: reader.position - fromSeq + 1, total: Math.max(target, reader.position) - fromSeq + 1 }))

  try {
    // the bulk, its indexes, then catch up with what the live pipeline published meanwhile until the gap is small
    await replayTo(info.state.last_seq, 'replay')
    const tb = performance.now()
    log.info({ messages: replay.messages, seconds: (tb - t0) / 1000 }, 'bulk replayed into the shadow tables')
    const removed = spec.dedupeSql ? (await opts.pool.query(spec.dedupeSql(opts.schema))).rowCount : 0
    for (const text of deferredIndexes) await opts.pool.query(text)
    log.info({ duplicates: removed, indexes: deferredIndexes.length, seconds: (performance.now() - tb) / 1000 }, 'keys and indexes built')
    for (let round = 0; round < 10; round++) {
      const last = (await opts.nats.jsm.streams.info(stream)).state.last_seq
      if (last - reader.position <= Math.min(batchSize, SWAP_GAP)) break
      await replayTo(last, 'catch-up')
    }
    const swap = await swapIn(opts, spec, async () => {
      const last = (await opts.nats.jsm.streams.info(stream)).state.last_seq
      await replayTo(last, 'swap')
      return last
    })
    const result: RebuildResult = {
      projection: opts.projection,
      stream,
      fromSeq,
      throughSeq: swap.throughSeq,
      messages: replay.messages,
      skipped: replay.skipped,
      seconds: (performance.now() - t0) / 1000,
      swapPauseMs: swap.pauseMs,
      swapMs: swap.ms,
    }
    log.info(result, 'rebuilt and swapped in')
    return result
  } catch (err) {
    await replay.settle()
    await opts.pool
      .connect()
      .then(async (c) => {
        try {
          await dropShadows(c, opts.schema, spec.tables)
        } finally {
          c.release()
        }
      })
      .catch(() => undefined)
    throw err
  } finally {
    await reader.close()
  }
}

/** The swap transaction (see the top): retried when a lock cannot be had or the live writer deadlocks with it. */
async function swapIn(opts: RebuildOptions, spec: ProjectionSpec<unknown>, catchUp: () => Promise<number>): Promise<{ throughSeq: number; pauseMs: number; ms: number }> {
  const s = opts.schema
  for (let attempt = 1; ; attempt++) {
    const client = await opts.pool.connect()
    const t0 = performance.now()
    try {
      await client.query('begin')
      // never queue readers behind a lock we cannot get soon
      await client.query(`set local lock_timeout = '5s'`)
      await client.query(`set local synchronous_commit = on`)
      await client.query(`lock table ${spec.tables.map((t) => `"${s}".${t}`).join(', ')} in exclusive mode`)
      const throughSeq = await catchUp()
      const held = performance.now()
      await swapShadows(client, s, spec.tables)
      await client.query(
        `insert into "${s}".projection_checkpoints (projection, stream, last_seq, updated_at) values ($1, $2, $3, now())
         on conflict (projection) do update set last_seq = greatest(projection_checkpoints.last_seq, excluded.last_seq), stream = excluded.stream, updated_at = now()`,
        [opts.projection, streamName(opts.prefix, spec.stream), throughSeq],
      )
      await client.query('commit')
      const end = performance.now()
      return { throughSeq, pauseMs: end - held, ms: end - t0 }
    } catch (err) {
      await client.query('rollback').catch(() => undefined)
      const code = (err as { code?: string }).code
      if (attempt >= SWAP_ATTEMPTS || (code !== '55P03' && code !== '40P01')) throw err
      opts.log.warn({ attempt, code }, 'swap could not take its locks; retrying')
    } finally {
      client.release()
    }
  }
}
