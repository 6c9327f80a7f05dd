import type pg from 'pg'
import type { BatchHandler, Delivered } from '../../streams/consumer.ts'
import { INSIGHT_KINDS, type Insight, type InsightBatch, type InsightEntry, type InsightKind } from '../../streams/schemas.ts'
import { InsightEvent } from '../../streams/upcast.ts'
import { streamName } from '../../streams/subjects.ts'
import { inTransaction } from '../../schema/transaction.ts'
import { asSwapError } from '../../schema/shadow.ts'
import { INSIGHT_TABLES } from '../../schema/insight-tables.ts'

export { InsightEvent }

export interface InsightsWriterDeps {
  pool: pg.Pool
  prefix: string
  schema: string
}

/** (data_version, data_count) of `a` above that of `b`: what the table's guard compares too. */
export function isNewer(a: Pick<Insight, 'dataVersion' | 'dataCount'>, b: Pick<Insight, 'dataVersion' | 'dataCount'>): boolean {
  return a.dataVersion > b.dataVersion || (a.dataVersion === b.dataVersion && a.dataCount > b.dataCount)
}

/** A row of a pull's events with its event's user; the decoded entry itself, never a copy. */
export interface PulledRow {
  userId: string
  entry: InsightEntry
}

/** The rows of a pull's events, in stream order, each with its user. */
export function rowsOf(batch: readonly Delivered<InsightBatch>[]): PulledRow[] {
  const rows: PulledRow[] = []
  for (const d of batch) for (const entry of d.data.rows) rows.push({ userId: d.data.userId, entry })
  return rows
}

/** Within one pull, only the newest of each row counts (equal versions: the later in the stream). */
export function latestPerRow(rows: readonly PulledRow[]): Map<InsightKind, PulledRow[]> {
  // kind → user → key → the newest: nested maps look up the strings the events hold, with no key to build a row
  const latest = new Map<InsightKind, Map<string, Map<string, PulledRow>>>()
  for (const r of rows) {
    let users = latest.get(r.entry.kind)
    if (!users) latest.set(r.entry.kind, (users = new Map()))
    let keys = users.get(r.userId)
    if (!keys) users.set(r.userId, (keys = new Map()))
    const seen = keys.get(r.entry.key)
    if (!seen || !isNewer(seen.entry, r.entry)) keys.set(r.entry.key, r)
  }
  // one order of kinds and of rows in every pull (users, then keys, as strings), so instances writing at once
  // take their row locks in the same order and never deadlock each other
  const byKind = new Map<InsightKind, PulledRow[]>()
  for (const kind of INSIGHT_KINDS) {
    const users = latest.get(kind)
    if (!users) continue
    const list: PulledRow[] = []
    for (const userId of [...users.keys()].sort()) {
      const keys = users.get(userId)!
      for (const key of [...keys.keys()].sort()) list.push(keys.get(key)!)
    }
    byKind.set(kind, list)
  }
  return byKind
}

/**
 * The live rows of one kind as the upsert's JSON parameter: each row's columns, then user_id, key,
 * data_version, data_count and recompute — what `JSON.stringify` gives for `{ ...row, user_id, … }`, written
 * without building that object (it cost more than the JSON itself). No row has a column of those five names:
 * the upsert's record type lists them beside the columns.
 */
export function liveRowsJson(rows: readonly PulledRow[]): string {
  let json = ''
  for (const { userId, entry: e } of rows) {
    if (e.row === null) continue
    const columns = JSON.stringify(e.row)
    json += json === '' ? '[' : ','
    json += columns === '{}' ? '{' : `${columns.slice(0, -1)},`
    json += `"user_id":${JSON.stringify(userId)},"key":${JSON.stringify(e.key)},"data_version":${JSON.stringify(e.dataVersion)},"data_count":${JSON.stringify(e.dataCount)}`
    json += `,"recompute":${JSON.stringify(e.recompute ?? null)}}`
  }
  return json === '' ? json : `${json}]`
}

/**
 * The upsert of one kind: rows arrive as one JSON parameter; a row replaces an existing one only
 * with an equal or newer data version, and never resurrects a row a newer tombstone removed. The same statement
 * drops the tombstones its rows make obsolete (a row at a version at least as new as its tombstone): the rows' JSON,
 * the largest parameter the pipeline sends, crosses to PostgreSQL and is parsed there once, not once for each; as
 * `json`, not `jsonb`, whose tree (built only to be taken apart into records) took 1.8 times as long for the same rows.
 * Both parts see the same snapshot, and they read complementary sets of tombstones (strictly newer, not newer), so
 * the order of two statements in one transaction, which this was, makes no difference.
 */
export function upsertSql(schema: string, kind: InsightKind, suffix = ''): string {
  const { keys, columns } = INSIGHT_TABLES[kind]
  const table = INSIGHT_TABLES[kind].table + suffix
  const cols = Object.keys(columns)
  const recordset = [...cols.map((c) => `${c} ${columns[c]}`), 'user_id text', 'key text', 'data_version bigint', 'data_count bigint', 'recompute text'].join(', ')
  const baselineStamps = kind === 'baseline'
  const extraCols = baselineStamps ? ', last_incremental_update, last_full_update' : ''
  const extraVals = baselineStamps ? `, case when r.recompute = 'incremental' then now() end, case when r.recompute = 'full' then now() end` : ''
  const extraSet = baselineStamps
    ? `, last_incremental_update = coalesce(excluded.last_incremental_update, t.last_incremental_update), last_full_update = coalesce(excluded.last_full_update, t.last_full_update)`
    : ''
  return `with r as materialized (select * from json_to_recordset($1::json) as r(${recordset})),
    cleared as (delete from "${schema}".insight_tombstones${suffix} x using r
                where x.user_id = r.user_id and x.kind = '${kind}' and x.key = r.key and (x.data_version, x.data_count) <= (r.data_version, r.data_count))
    insert into "${schema}".${table} as t (user_id, ${cols.join(', ')}, data_version, data_count, updated_at${extraCols})
    select r.user_id, ${cols.map((c) => `r.${c}`).join(', ')}, r.data_version, r.data_count, now()${extraVals}
    from r
    where not exists (select 1 from "${schema}".insight_tombstones${suffix} x
                      where x.user_id = r.user_id and x.kind = '${kind}' and x.key = r.key and (x.data_version, x.data_count) > (r.data_version, r.data_count))
    on conflict (user_id${keys.map((k) => `, ${k}`).join('')}) do update
      set ${cols.map((c) => `${c} = excluded.${c}`).join(', ')}, data_version = excluded.data_version, data_count = excluded.data_count,
        updated_at = now()${extraSet}
      where (t.data_version, t.data_count) <= (excluded.data_version, excluded.data_count)`
}

/** The key columns of a row from its key (`day`, `day|metric`, or '' for the current baseline and CPT). */
export function keyColumns(kind: InsightKind, key: string): Record<string, string> {
  const parts = key.split('|')
  return Object.fromEntries(INSIGHT_TABLES[kind].keys.map((k, i) => [k, parts[i] ?? '']))
}

/** A tombstone deletes the row when it is not newer, and is remembered with the highest version seen. */
export function tombstoneSql(schema: string, kind: InsightKind, suffix = ''): string[] {
  const { keys, columns } = INSIGHT_TABLES[kind]
  const table = INSIGHT_TABLES[kind].table + suffix
  // typed key columns (the tombstone carries them split out of its key): the table's primary key finds the row
  const keyMatch = keys.map((k) => ` and t.${k} = r.${k}`).join('')
  const recordset = `r(user_id text, key text, ${keys.map((k) => `${k} ${columns[k]}, `).join('')}data_version bigint, data_count bigint)`
  return [
    `delete from "${schema}".${table} t using jsonb_to_recordset($1::jsonb) as ${recordset}
      where t.user_id = r.user_id${keyMatch} and (t.data_version, t.data_count) <= (r.data_version, r.data_count)`,
    `insert into "${schema}".insight_tombstones${suffix} as x (user_id, kind, key, data_version, data_count)
      select r.user_id, '${kind}', r.key, r.data_version, r.data_count from jsonb_to_recordset($1::jsonb) as ${recordset}
      on conflict (user_id, kind, key) do update set data_version = excluded.data_version, data_count = excluded.data_count, updated_at = now()
        where (x.data_version, x.data_count) < (excluded.data_version, excluded.data_count)`,
  ]
}

function checkpointSql(schema: string): string {
  return `insert into "${schema}".projection_checkpoints (projection, stream, last_seq, updated_at) values ('insights', $1, $2, now())
    on conflict (projection) do update set last_seq = greatest(projection_checkpoints.last_seq, excluded.last_seq), stream = excluded.stream, updated_at = now()`
}

/** Every table an insights rebuild replaces: the six insight tables and the tombstones that guard them. */
export const INSIGHT_PROJECTION_TABLES = [...new Set(Object.values(INSIGHT_TABLES).map((t) => t.table)), 'insight_tombstones'] as const

/**
 * Applies one pull to the insight tables (`suffix` '' for the live ones, `__rebuild` for a rebuild's
 * shadows) in ONE transaction, with the projection's checkpoint when writing the live tables.
 */
export async function writeInsights(deps: InsightsWriterDeps, batch: readonly Delivered<InsightBatch>[], suffix = ''): Promise<void> {
  const byKind = latestPerRow(rowsOf(batch))
  const { schema } = deps
  try {
    await inTransaction(deps.pool, async (client) => {
      for (const [kind, rows] of byKind) {
        // named statements: PostgreSQL plans each once a connection, not once a pull; one JSON text serves both of the tombstones' pair
        const dead = rows
          .filter((r) => r.entry.row === null)
          .map(({ userId, entry: e }) => ({ ...keyColumns(kind, e.key), user_id: userId, key: e.key, data_version: e.dataVersion, data_count: e.dataCount }))
        if (dead.length) {
          const json = JSON.stringify(dead)
          const [remove, remember] = tombstoneSql(schema, kind, suffix) as [string, string]
          await client.query({ name: `hph_tomb_delete_${kind}${suffix}_${schema}`, text: remove, values: [json] })
          await client.query({ name: `hph_tomb_insert_${kind}${suffix}_${schema}`, text: remember, values: [json] })
        }
        const live = liveRowsJson(rows)
        if (live !== '') await client.query({ name: `hph_upsert_${kind}${suffix}_${schema}`, text: upsertSql(schema, kind, suffix), values: [live] })
      }
      if (suffix === '') {
        await client.query({
          name: `hph_checkpoint_insights_${schema}`,
          text: checkpointSql(schema),
          values: [streamName(deps.prefix, 'INSIGHTS'), Math.max(...batch.map((d) => d.seq))],
        })
      }
    })
  } catch (err) {
    throw asSwapError(err)
  }
}

/**
 * insights-writer (docs/architecture.md §7): HPH_INSIGHTS → the insight tables, one transaction per pull, row by row under the
 * version guard; into a rebuild's shadow tables given their `shadowSuffix`.
 */
export function insightsWriter(deps: InsightsWriterDeps, opts: { shadowSuffix?: string } = {}): BatchHandler<InsightBatch> {
  return {
    stage: 'insights-writer',
    schema: InsightEvent,
    itemsOf: (b) => b.rows.length,
    handle: (batch) => writeInsights(deps, batch, opts.shadowSuffix ?? ''),
  }
}
