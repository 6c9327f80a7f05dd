import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import type { Nats } from '../../streams/connect.ts'
import type { BatchHandler, Delivered } from '../../streams/consumer.ts'
import { envelope } from '../../streams/envelope.ts'
import { hashHex } from '../../streams/ids.ts'
import { publishAll, type Outgoing } from '../../streams/publish.ts'
import { CHANGES_TYPE, type DaysChanged, type SampleBatch } from '../../streams/schemas.ts'
import { SampleEvent } from '../../streams/upcast.ts'
import { streamName, subjects } from '../../streams/subjects.ts'
import { ensurePartitions, forgetPartitions } from '../../schema/partitions.ts'
import type { Kysely } from 'kysely'
import { pgCode, type Database } from '../../schema/db.ts'
import type { Row } from '../../schema/rows.ts'
import { inTransaction } from '../../schema/transaction.ts'
import { asSwapError } from '../../schema/shadow.ts'
import { dayString, instantMs, localDay } from '../../streams/instants.ts'

export { SampleEvent }

export interface SamplesWriterDeps {
  db: Kysely<Database>
  pool: pg.Pool
  nats: Nats
  prefix: string
  schema: string
}

/** The columns of `samples` a writer fills (all but the defaulted inserted_at), in the order of its COPY rows. */
export const SAMPLE_COLUMNS = [
  'sample_id',
  'user_id',
  'metric',
  'start_ts',
  'end_ts',
  'utc_offset_min',
  'value',
  'stage',
  'source_name',
  'source_bundle',
  'device',
  'external_id',
  'ingest_id',
  'stream_seq',
] as const satisfies readonly Exclude<keyof Row<'samples'>, 'inserted_at'>[]
const COLUMN_LIST = SAMPLE_COLUMNS.join(', ')

/** A session's staging table: what a pull is copied into before it is inserted, emptied at every commit. */
export const STAGE_TABLE = 'hph_samples_stage'

/** Creates the session's staging table when it has none (a temporary table: each connection has its own). */
export function stageSql(schema: string): string {
  return `create temp table if not exists ${STAGE_TABLE} (like "${schema}".samples including defaults) on commit delete rows`
}

/**
 * From the staging table into `table`; duplicates (same id and start) are dropped, as in every pull since. The rows go
 * in key order: the pulls in flight at once (samplesWriter's concurrency) may hold the same samples (a redelivery),
 * and two transactions that take the same keys in different orders deadlock (40P01), where in one order the
 * second waits for the first.
 */
export function insertFromStageSql(schema: string, table = 'samples'): string {
  return `insert into "${schema}".${table} (${COLUMN_LIST}) select ${COLUMN_LIST} from ${STAGE_TABLE} order by sample_id, start_ts on conflict do nothing`
}

const NEEDS_ESCAPE = /[\\\t\n\r]/
/** A text value in COPY's text format (backslash escapes; `\N` is null). */
export function copyText(v: string | undefined): string {
  if (v === undefined) return '\\N'
  return NEEDS_ESCAPE.test(v) ? v.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r') : v
}

/** What one chunk of COPY text holds at least (a write to the socket each: events of one sample would be many). */
const COPY_CHUNK_CHARS = 64 * 1024

/** The pull's samples as COPY text in chunks of about 64 KiB, each row with its event's stream sequence. */
export function* copyRowsOf(batch: readonly Delivered<SampleBatch>[]): Generator<string> {
  let chunk = ''
  for (const d of batch) {
    const b = d.data
    const tail = `\t${copyText(b.ingestId)}\t${d.seq}\n`
    const head = `\t${copyText(b.userId)}\t${b.metric}\t`
    for (const s of b.samples) {
      chunk += `${s.id}${head}${s.start}\t${s.end}\t${s.utcOffsetMinutes}\t${s.value ?? '\\N'}\t${s.stage ?? '\\N'}\t${copyText(s.source.name)}\t${copyText(s.source.bundleId)}\t${copyText(s.source.device)}\t${copyText(s.externalId)}${tail}`
      if (chunk.length >= COPY_CHUNK_CHARS) {
        yield chunk
        chunk = ''
      }
    }
  }
  if (chunk.length > 0) yield chunk
}

export function checkpointSql(schema: string): string {
  return `insert into "${schema}".projection_checkpoints (projection, stream, last_seq, updated_at)
    values ('samples', $1, $2, now())
    on conflict (projection) do update
      set last_seq = greatest(projection_checkpoints.last_seq, excluded.last_seq), stream = excluded.stream, updated_at = now()`
}

/** One HPH_CHANGES event per touched user, listing the local dates of every sample's start and end. */
export function changesOf(prefix: string, batch: readonly Delivered<SampleBatch>[]): Outgoing[] {
  const byUser = new Map<string, { days: Set<number>; minSeq: number; maxSeq: number; traceparent: string | undefined }>()
  for (const d of batch) {
    const b = d.data
    let u = byUser.get(b.userId)
    if (!u) byUser.set(b.userId, (u = { days: new Set(), minSeq: d.seq, maxSeq: d.seq, traceparent: d.traceparent }))
    for (const s of b.samples) u.days.add(localDay(instantMs(s.start), s.utcOffsetMinutes)).add(localDay(instantMs(s.end), s.utcOffsetMinutes))
    u.minSeq = Math.min(u.minSeq, d.seq)
    u.maxSeq = Math.max(u.maxSeq, d.seq)
  }
  return [...byUser].map(([userId, u]) => {
    const data: DaysChanged = { userId, days: [...u.days].sort((a, b) => a - b).map(dayString), maxSeq: u.maxSeq }
    return {
      subject: subjects.changes(prefix, userId),
      event: envelope({ id: hashHex('changes', userId, data.days.join(','), u.minSeq, u.maxSeq), type: CHANGES_TYPE, source: 'samples-writer', subject: userId, data }),
      traceparent: u.traceparent,
    }
  })
}

/**
 * Writes one pull into `table` (`samples`, or its shadow during a rebuild) in ONE transaction, with the
 * projection's checkpoint when writing the live table. Creates the months it needs first.
 */
export async function writeSamples(deps: Pick<SamplesWriterDeps, 'db' | 'pool' | 'prefix' | 'schema'>, batch: readonly Delivered<SampleBatch>[], table = 'samples'): Promise<void> {
  // one instant per UTC month is enough (canonical starts are UTC ISO strings: YYYY-MM…)
  const months = new Map<string, string>()
  for (const d of batch) for (const s of d.data.samples) months.set(s.start.slice(0, 7), s.start)
  await ensurePartitions(deps.db, deps.schema, months.values(), table)
  try {
    // COPY into the session's staging table, then one insert from it: measured 1.5× the insert of unnested
    // arrays at a pull's size (docs/benchmarks.md)
    await inTransaction(deps.pool, async (client) => {
      await client.query(stageSql(deps.schema))
      await pipeline(Readable.from(copyRowsOf(batch)), client.query(copyFrom(`copy ${STAGE_TABLE} (${COLUMN_LIST}) from stdin`)))
      await client.query({ name: `hph_insert_${table}_${deps.schema}`, text: insertFromStageSql(deps.schema, table) })
      if (table === 'samples') {
        await client.query({
          name: `hph_checkpoint_samples_${deps.schema}`,
          text: checkpointSql(deps.schema),
          values: [streamName(deps.prefix, 'SAMPLES'), Math.max(...batch.map((d) => d.seq))],
        })
      }
    })
  } catch (err) {
    // a month this process believed created is gone (a table swapped by a rebuild): look again next time
    if (pgCode(err) === '23514') forgetPartitions(deps.db, deps.schema, table)
    throw asSwapError(err)
  }
}

/**
 * samples-writer (docs/architecture.md §7): each pull in ONE transaction, however many samples its events hold, then the changes, then the runtime acks.
 * A redelivered pull inserts nothing new but publishes its changes again, so a crash between commit
 * and publish never loses a change. Given a rebuild's `shadow` table, it writes there and publishes nothing
 * (the changes went out when the events were first written).
 */
export function samplesWriter(deps: SamplesWriterDeps, opts: { shadow?: string } = {}): BatchHandler<SampleBatch> {
  return {
    stage: 'samples-writer',
    schema: SampleEvent,
    itemsOf: (b) => b.samples.length,
    // inserts commute (on conflict do nothing), so the next pull is handled while this one commits
    concurrency: 3,
    async handle(batch) {
      if (opts.shadow !== undefined) return writeSamples(deps, batch, opts.shadow)
      await writeSamples(deps, batch)
      await publishAll(deps.nats.js, changesOf(deps.prefix, batch))
    },
  }
}
