import type pg from 'pg'
import type { Logger } from '../../log.ts'
import { INSIGHT_TABLES } from '../../schema/insight-tables.ts'
import { identifier } from '../../schema/db.ts'
import type { Nats } from '../../streams/connect.ts'
import { publishAll } from '../../streams/publish.ts'
import type { InsightEntry, InsightKind } from '../../streams/schemas.ts'
import { eventByteLimit } from '../../streams/sizing.ts'
import { computeInsights } from './compute.ts'
import { loadUserSamples, rememberMetricSql } from './load.ts'
import { insightEventsOf, insightRows, type Recomputation } from './stage.ts'
import { affectedRange } from './touched.ts'

// `hph rebuild insights --recompute` (docs/operating.md §4): every user's insights re-derived from `samples` — after an
// algorithm change, when replaying HPH_INSIGHTS would only give back the old numbers. Each user's whole
// history is computed as the engine computes it and published to HPH_INSIGHTS as a full recomputation;
// rows the new computation no longer produces get tombstones. The live insights-writer applies them in
// place under its version guard (a recomputation of the same samples carries the same version, and an
// equal version replaces), so readers see each row change from its old value to its new one, never a
// missing row, and the event log stays the one source of every row.

export interface RecomputeOptions {
  /**
   * Names this run: mixed into every event id, so that a row the new computation gives exactly as before
   * is still written again (a table edited by hand heals too) instead of being dropped by JetStream as a
   * duplicate of its earlier event. Rerunning with the same id publishes nothing twice.
   */
  runId: string
  pool: pg.Pool
  nats: Nats
  prefix: string
  schema: string
  log: Logger
  /** HPH_EVENT_MAX_BYTES */
  eventMaxBytes: number
  /** users recomputed at once */
  concurrency?: number
  onProgress?: (p: { users: number; total: number; events: number }) => void
}

export interface RecomputeResult {
  users: number
  events: number
  /** rows and tombstones those events carry */
  rows: number
  tombstones: number
  seconds: number
}

/** The keys of a user's rows in every insight table (what a full recomputation must either rewrite or tombstone). */
async function existingKeys(pool: pg.Pool, schema: string, userId: string): Promise<Array<{ kind: InsightKind; key: string; version: number; count: number }>> {
  const parts = (Object.entries(INSIGHT_TABLES) as Array<[InsightKind, (typeof INSIGHT_TABLES)[InsightKind]]>).map(([kind, t]) => {
    const key = t.keys.length ? t.keys.map((k) => `${k}::text`).join(` || '|' || `) : `''`
    return `select '${kind}' as kind, ${key} as key, data_version as version, data_count as count from "${identifier(schema)}".${identifier(t.table)} where user_id = $1`
  })
  return (await pool.query<{ kind: InsightKind; key: string; version: number; count: number }>(parts.join(' union all '), [userId])).rows
}

/** One user's whole history, computed and published; returns the number of events and tombstones. */
export async function recomputeWholeUser(
  opts: Pick<RecomputeOptions, 'runId' | 'pool' | 'nats' | 'prefix' | 'schema' | 'eventMaxBytes'>,
  userId: string,
): Promise<{ events: number; tombstones: number; rows: number }> {
  const all = await loadUserSamples(opts.pool, opts.schema, userId, new Date(0))
  if (all.count === 0) return { events: 0, tombstones: 0, rows: 0 }
  const rows = computeInsights(all.samples)
  const metric = rows.metric
  const days = [...rows.sleepDaily, ...rows.hrvDaily].map((r) => r.day)
  const r: Recomputation = {
    userId,
    rows,
    range: affectedRange(days.length ? days : [all.samples[0]?.sample.start.slice(0, 10) ?? '1970-01-01']),
    dataVersion: all.maxSeq,
    dataCount: all.count,
    recompute: 'full',
    everyDay: true,
    metric,
    has: { sdnn: all.hasSdnn, rmssd: all.hasRmssd, sleep: all.hasSleep },
    storedMetric: all.storedMetric,
  }
  const entries = insightRows(r)
  // rows the new computation does not produce: gone, at the version of what was read (never older than theirs)
  const produced = new Set(entries.map((e) => `${e.kind}|${e.key}`))
  let tombstones = 0
  for (const x of await existingKeys(opts.pool, opts.schema, userId)) {
    if (produced.has(`${x.kind}|${x.key}`)) continue
    const version = Math.max(r.dataVersion, x.version)
    const count = version === x.version ? Math.max(r.dataCount, x.count) : r.dataCount
    entries.push({ kind: x.kind, key: x.key, dataVersion: version, dataCount: count, row: null, recompute: 'full' } as InsightEntry)
    tombstones++
  }
  const events = insightEventsOf(opts.prefix, userId, entries, eventByteLimit(opts.nats.nc, opts.eventMaxBytes), `recompute:${opts.runId}`)
  await publishAll(opts.nats.js, events)
  if (all.storedMetric !== metric) await opts.pool.query(rememberMetricSql(opts.schema), [userId, metric])
  return { events: events.length, tombstones, rows: entries.length }
}

/** Every user with samples, recomputed in full (see the top). */
export async function recomputeAll(opts: RecomputeOptions): Promise<RecomputeResult> {
  const t0 = performance.now()
  const users = (await opts.pool.query<{ user_id: string }>(`select distinct user_id from "${identifier(opts.schema)}".samples order by 1`)).rows.map((r) => r.user_id)
  let done = 0
  let events = 0
  let rows = 0
  let tombstones = 0
  let next = 0
  const lane = async () => {
    while (next < users.length) {
      const userId = users[next++] as string
      const r = await recomputeWholeUser(opts, userId)
      done++
      events += r.events
      rows += r.rows
      tombstones += r.tombstones
      opts.onProgress?.({ users: done, total: users.length, events })
    }
  }
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 2, users.length) }, lane))
  const result = { users: users.length, events, rows, tombstones, seconds: (performance.now() - t0) / 1000 }
  opts.log.info(result, 'insights recomputed from samples and published')
  return result
}
