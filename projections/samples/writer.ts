import type pg from 'pg'
import type { Nats } from '../../streams/connect.ts'
import type { BatchHandler, Delivered } from '../../streams/consumer.ts'
import { envelope } from '../../streams/envelope.ts'
import { hashHex } from '../../streams/ids.ts'
import { publishAll, type Outgoing } from '../../streams/publish.ts'
import { CHANGES_TYPE, METRICS, SAMPLE_TYPE, SAMPLE_V1_TYPE, STAGES, type DaysChanged, type SampleBatch } from '../../streams/schemas.ts'
import { SampleEvent } from '../../streams/upcast.ts'
import { streamName, subjects } from '../../streams/subjects.ts'
import { ensurePartitions, forgetPartitions } from '../../schema/partitions.ts'
import type { Kysely } from 'kysely'
import { pgCode, type Database } from '../../schema/db.ts'
import { inTransaction } from '../../schema/transaction.ts'
import { asSwapError } from '../../schema/shadow.ts'

export { SampleEvent }

export interface SamplesWriterDeps {
  db: Kysely<Database>
  pool: pg.Pool
  nats: Nats
  prefix: string
  schema: string
}

const DAY_MS = 86_400_000

/** The local day number (days since 1970-01-01) of a UTC instant seen at an offset: spec/insights.md "local date". */
export function localDayNumber(utcIso: string, offsetMinutes: number): number {
  return Math.floor((Date.parse(utcIso) + offsetMinutes * 60_000) / DAY_MS)
}

export function dayString(dayNumber: number): string {
  return new Date(dayNumber * DAY_MS).toISOString().slice(0, 10)
}

/** The local date (YYYY-MM-DD) of a UTC instant seen at an offset. */
export function localDate(utcIso: string, offsetMinutes: number): string {
  return dayString(localDayNumber(utcIso, offsetMinutes))
}

/** The insert of one pull: column arrays unnested into rows; duplicates (same id and start) are dropped. */
export function insertSql(schema: string, table = 'samples'): string {
  return `insert into "${schema}".${table}
      (sample_id, user_id, metric, start_ts, end_ts, utc_offset_min, value, stage,
       source_name, source_bundle, device, external_id, ingest_id, stream_seq)
    select * from unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::smallint[],
       $7::float8[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[])
    on conflict do nothing`
}

export function checkpointSql(schema: string): string {
  return `insert into "${schema}".projection_checkpoints (projection, stream, last_seq, updated_at)
    values ('samples', $1, $2, now())
    on conflict (projection) do update
      set last_seq = greatest(projection_checkpoints.last_seq, excluded.last_seq), stream = excluded.stream, updated_at = now()`
}

/** How many samples a pull holds. */
export function samplesIn(batch: readonly Delivered<SampleBatch>[]): number {
  let n = 0
  for (const d of batch) n += d.data.samples.length
  return n
}

/** The pull's samples as the insert's column arrays, each row with its event's stream sequence. */
export function columnsOf(batch: readonly Delivered<SampleBatch>[]): unknown[][] {
  const n = samplesIn(batch)
  const cols: unknown[][] = Array.from({ length: 14 }, () => new Array(n))
  const [id, user, metric, start, end, offset, value, stage, sourceName, bundle, device, external, ingest, seq] = cols as [unknown[], unknown[], unknown[], unknown[], unknown[], unknown[], unknown[], unknown[], unknown[], unknown[], unknown[], unknown[], unknown[], unknown[]]
  let i = 0
  for (const d of batch) {
    const b = d.data
    for (const s of b.samples) {
      id[i] = s.id
      user[i] = b.userId
      metric[i] = b.metric
      start[i] = s.start
      end[i] = s.end
      offset[i] = s.utcOffsetMinutes
      value[i] = s.value ?? null
      stage[i] = s.stage ?? null
      sourceName[i] = s.source.name
      bundle[i] = s.source.bundleId ?? null
      device[i] = s.source.device ?? null
      external[i] = s.externalId ?? null
      ingest[i] = b.ingestId
      seq[i] = d.seq
      i++
    }
  }
  return cols
}

/** One HPH_CHANGES event per touched user, listing the local dates of every sample's start and end. */
export function changesOf(prefix: string, batch: readonly Delivered<SampleBatch>[]): Outgoing[] {
  const byUser = new Map<string, { days: Set<number>; minSeq: number; maxSeq: number; traceparent: string | undefined }>()
  for (const d of batch) {
    const b = d.data
    let u = byUser.get(b.userId)
    if (!u) byUser.set(b.userId, (u = { days: new Set(), minSeq: d.seq, maxSeq: d.seq, traceparent: d.traceparent }))
    for (const s of b.samples) u.days.add(localDayNumber(s.start, s.utcOffsetMinutes)).add(localDayNumber(s.end, s.utcOffsetMinutes))
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
    await inTransaction(deps.pool, async (client) => {
      await client.query({ name: `hph_insert_${table}_${deps.schema}`, text: insertSql(deps.schema, table), values: columnsOf(batch) })
      if (table === 'samples') {
        await client.query({ name: `hph_checkpoint_samples_${deps.schema}`, text: checkpointSql(deps.schema), values: [streamName(deps.prefix, 'SAMPLES'), Math.max(...batch.map((d) => d.seq))] })
      }
    })
  } catch (err) {
    // a month this process believed created is gone (a table swapped by a rebuild): look again next time
    if (pgCode(err) === '23514') forgetPartitions(deps.db, deps.schema, table)
    throw asSwapError(err)
  }
}

/** What the event schema takes as an instant (PostgreSQL alone would also take 'yesterday' or 'epoch'). */
const ISO_INSTANT = String.raw`^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$`
const TYPE_MARKS = [Buffer.from(`"type":"${SAMPLE_TYPE}"`), Buffer.from(`"type":"${SAMPLE_V1_TYPE}"`)]
const COMMA = Buffer.from(',')

/**
 * The bulk insert of a rebuild: the events' JSON as one jsonb array, taken apart and cast by PostgreSQL;
 * an `hph.sample.v1` event is read as the one sample it holds, as the upcaster reads it. A row that breaks
 * a rule of the event's schema (type, user id, metric, stage, offset, value or stage by metric) gets a null
 * id, so the whole statement fails and the pull takes the validating path.
 */
export function rawInsertSql(schema: string, table: string): string {
  return `insert into "${schema}".${table}
      (sample_id, user_id, metric, start_ts, end_ts, utc_offset_min, value, stage,
       source_name, source_bundle, device, external_id, ingest_id, stream_seq)
    select case when x.e->>'type' in ('${SAMPLE_TYPE}', '${SAMPLE_V1_TYPE}') and d->>'userId' ~ '^[A-Za-z0-9_-]{1,64}$' and d->>'metric' = any($3::text[])
                 and (s->>'stage' is null or s->>'stage' = any($4::text[])) and (s->>'utcOffsetMinutes')::int between -840 and 840
                 and (d->>'metric' = 'sleep_stage') = (s ? 'stage') and (d->>'metric' = 'sleep_stage') = not (s ? 'value')
                 and jsonb_typeof(coalesce(s->'value', '0')) = 'number' and jsonb_typeof(s->'source'->'name') = 'string'
                 and s->>'start' ~ '${ISO_INSTANT}' and s->>'end' ~ '${ISO_INSTANT}'
            then (s->>'id')::uuid end,
       d->>'userId', d->>'metric', (s->>'start')::timestamptz, (s->>'end')::timestamptz, (s->>'utcOffsetMinutes')::smallint,
       (s->>'value')::float8, s->>'stage', s->'source'->>'name', s->'source'->>'bundleId', s->'source'->>'device', s->>'externalId', d->>'ingestId', x.seq
    from rows from (jsonb_array_elements($1::jsonb), unnest($2::bigint[])) as x(e, seq),
      lateral (select x.e->'data' as d) y,
      lateral jsonb_array_elements(case when x.e->>'type' = '${SAMPLE_V1_TYPE}' then jsonb_build_array(y.d || jsonb_build_object('id', x.e->'id')) else y.d->'samples' end) as s
    on conflict do nothing`
}

/**
 * A rebuild's pull written without decoding it in Node (the rebuild is bound by this process's CPU):
 * the events' bytes go to PostgreSQL as they are. Only for pulls of sample events (either version), which
 * the live samples-writer validated when it first took them; returns false, writing nothing, when a message
 * is of another type or the database refuses a value (bad syntax, a missing column, a month without a
 * partition), and the caller then takes the validating path.
 */
export async function writeRawSamples(deps: Pick<SamplesWriterDeps, 'pool' | 'schema'>, batch: readonly { data: Uint8Array; seq: number }[], table: string): Promise<boolean> {
  const parts: Uint8Array[] = [Buffer.from('[')]
  for (const [i, m] of batch.entries()) {
    const bytes = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength)
    if (!TYPE_MARKS.some((mark) => bytes.indexOf(mark) >= 0)) return false
    if (i > 0) parts.push(COMMA)
    parts.push(m.data)
  }
  parts.push(Buffer.from(']'))
  try {
    await deps.pool.query({ name: `hph_raw_insert_${table}_${deps.schema}`, text: rawInsertSql(deps.schema, table), values: [Buffer.concat(parts).toString('utf8'), batch.map((m) => m.seq), METRICS, STAGES] })
    return true
  } catch (err) {
    const code = pgCode(err) ?? ''
    if (code.startsWith('22') || code.startsWith('23')) return false
    throw err
  }
}

/**
 * samples-writer (docs/architecture.md "Stages"): each pull in ONE transaction, however many samples its events hold, then the changes, then the runtime acks.
 * A redelivered pull inserts nothing new but publishes its changes again, so a crash between commit
 * and publish never loses a change.
 */
export function samplesWriter(deps: SamplesWriterDeps): BatchHandler<SampleBatch> {
  return {
    stage: 'samples-writer',
    schema: SampleEvent,
    itemsOf: (b) => b.samples.length,
    // inserts commute (on conflict do nothing), so the next pull is handled while this one commits
    concurrency: 3,
    async handle(batch) {
      await writeSamples(deps, batch)
      await publishAll(deps.nats.js, changesOf(deps.prefix, batch))
    },
  }
}
