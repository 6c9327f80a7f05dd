import type pg from 'pg'
import type { Logger } from '../../log.ts'
import type { Nats } from '../../streams/connect.ts'
import type { BatchHandler } from '../../streams/consumer.ts'
import { encodeEnvelopeWithField, envelope, hashHexWithArray, jsonParts, typedEnvelope } from '../../streams/envelope.ts'
import { publishAll, type Outgoing } from '../../streams/publish.ts'
import { CHANGES_TYPE, DaysChanged, groupOf, INSIGHT_TYPE, type InsightBatch, type InsightEntry, type InsightGroup, type InsightKind } from '../../streams/schemas.ts'
import { EVENT_FIELDS_BYTES, eventByteLimit } from '../../streams/sizing.ts'
import { subjects } from '../../streams/subjects.ts'
import { keyOf } from '../../schema/insight-tables.ts'
import { computeInsights, type InsightRowSet } from './compute.ts'
import { addDays } from './days.ts'
import type { HrvMetric } from './defaults.ts'
import { loadUserSamples, rememberMetricSql } from './load.ts'
import { affectedRange, type AffectedRange } from './touched.ts'

export const ChangesEvent = typedEnvelope(CHANGES_TYPE, DaysChanged)

export interface InsightsEngineDeps {
  pool: pg.Pool
  nats: Nats
  prefix: string
  schema: string
  log: Logger
  /** HPH_EVENT_MAX_BYTES: an event's bound, lowered to the server's max_payload */
  eventMaxBytes: number
  /** users recomputed at once within a pull (each holds one pooled connection while it loads) */
  userConcurrency?: number
}

/**
 * How far before the first touched day samples are loaded: the 60-day window of the earliest derived
 * day (D−1), an evening before for that night's episode, and a day of slack for offsets up to ±14 h.
 */
export const LOOKBACK_DAYS = 64

/** What one recomputation of a user read and how far its rows reach. */
export interface Recomputation {
  userId: string
  rows: InsightRowSet
  range: AffectedRange
  /** the highest HPH_SAMPLES sequence of the user's samples read */
  dataVersion: number
  /** how many samples the user had when read (the tie-break of equal versions) */
  dataCount: number
  /** `full`: the whole history was read (user_baselines.last_full_update), else `incremental` */
  recompute: 'incremental' | 'full'
  /** every row of the history is published, not just the affected range (a full recompute) */
  everyDay: boolean
  /** the metric of the current baseline (docs/insights.md §2: each day has its own) */
  metric: HrvMetric
  /** which kinds of samples the user has at all: rows of the others cannot exist, so they need no tombstones */
  has: { sdnn: boolean; rmssd: boolean; sleep: boolean }
  /** the metric of the current baseline the engine last published for the user */
  storedMetric: string | undefined
}

const GROUPS: readonly InsightGroup[] = ['daily', 'baseline', 'cpt']

/**
 * Rows of one user as `hph.insight.v2` events (docs/architecture.md §5): one event a group (daily,
 * baseline, cpt), cut into parts under `maxBytes`. The id is a hash of the user, the group and the content
 * (every row's version included): a row that comes back after a tombstone is never dropped as a duplicate.
 * `salt` sets apart the events of a run that must not be taken for the engine's (a full recompute).
 */
export function insightEventsOf(prefix: string, userId: string, entries: readonly InsightEntry[], maxBytes: number, salt = ''): Outgoing[] {
  const out: Outgoing[] = []
  for (const group of GROUPS) {
    const rows = entries.filter((e) => groupOf(e.kind) === group)
    for (const part of jsonParts(rows, Number.MAX_SAFE_INTEGER, maxBytes - EVENT_FIELDS_BYTES)) {
      const data: InsightBatch = { userId, group, rows: part.items }
      const event = envelope({ id: hashHexWithArray(['insights', salt, userId, group], part), type: INSIGHT_TYPE, source: 'insights-engine', subject: userId, data })
      out.push({ subject: subjects.insight(prefix, group, userId), event, encoded: encodeEnvelopeWithField(event, 'rows', part) })
    }
  }
  return out
}

/**
 * The rows of one recomputation (docs/insights.md §6): daily rows of the touched days ±1, baselines
 * and readiness of the derived range, tombstones (`row: null`) for rows of those days that are gone, and
 * the current baseline and CPT (the "baseline updated" notification the CPT is recomputed from).
 */
export function insightRows(r: Recomputation): InsightEntry[] {
  const { rows, range, dataVersion, dataCount, recompute } = r
  const out: InsightEntry[] = []
  const add = (kind: InsightKind, key: string, row: Record<string, unknown> | null) => {
    out.push({ kind, key, dataVersion, dataCount, row, recompute } as InsightEntry)
  }
  const inDaily = (day: string) => r.everyDay || range.daily.has(day)
  const inDerived = (day: string) => r.everyDay || (day >= range.derivedFrom && day <= range.derivedTo)
  const emitted = new Set<string>()
  const emit = (kind: InsightKind, list: ReadonlyArray<Record<string, unknown> & { day: string }>, within: (day: string) => boolean) => {
    for (const row of list) {
      if (!within(row.day)) continue
      const key = keyOf(kind, row)
      emitted.add(`${kind}|${key}`)
      add(kind, key, row)
    }
  }
  emit('sleep_daily', rows.sleepDaily, inDaily)
  emit('hrv_daily', rows.hrvDaily, inDaily)
  emit('baseline_history', rows.baselineHistory, inDerived)
  emit('readiness_daily', rows.readiness, inDerived)

  // Rows can only vanish on days whose own data changed (the daily range); when the metric changed,
  // also on any day with a daily row (baseline_history and readiness follow the metric's rows).
  const gone = new Set(range.daily)
  if (r.everyDay) for (const row of [...rows.sleepDaily, ...rows.hrvDaily]) gone.add(row.day)
  for (const day of [...gone].sort()) {
    const keys: Array<[InsightKind, string, boolean]> = [
      ['sleep_daily', day, r.has.sleep],
      ['hrv_daily', `${day}|sdnn`, r.has.sdnn],
      ['hrv_daily', `${day}|rmssd`, r.has.rmssd],
      ['baseline_history', day, true],
      ['readiness_daily', day, true],
    ]
    for (const [kind, key, possible] of keys) if (possible && !emitted.has(`${kind}|${key}`)) add(kind, key, null)
  }
  add('baseline', '', rows.userBaseline ?? null)
  add('cpt', '', rows.userCpt ?? null)
  return out
}

/** The events of one recomputation: its rows in a few `hph.insight.v2` events. */
export function insightEvents(prefix: string, r: Recomputation, maxBytes: number): Outgoing[] {
  return insightEventsOf(prefix, r.userId, insightRows(r), maxBytes)
}

/** One user's recomputation for a set of touched days: one query, then the pure modules. */
export async function recomputeUser(deps: Pick<InsightsEngineDeps, 'pool' | 'schema'>, userId: string, days: readonly string[]): Promise<Recomputation> {
  const range = affectedRange(days)
  const loaded = await loadUserSamples(deps.pool, deps.schema, userId, new Date(`${addDays(range.first, -LOOKBACK_DAYS)}T00:00:00Z`))
  // §2: the metric of each day follows from the rows of its own 61-day window, which the lookback loads:
  // a change never reaches past the range of §6, whatever metric the user's other days use
  const full = !loaded.hasEarlier
  const rows = computeInsights(loaded.samples)
  return {
    userId,
    rows,
    range,
    dataVersion: loaded.maxSeq,
    dataCount: loaded.count,
    recompute: full ? 'full' : 'incremental',
    everyDay: false,
    metric: rows.metric,
    has: { sdnn: loaded.hasSdnn, rmssd: loaded.hasRmssd, sleep: loaded.hasSleep },
    storedMetric: loaded.storedMetric,
  }
}

/** Runs `work` on every item with at most `limit` at once. */
async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const lane = async () => {
    while (next < items.length) await work(items[next++] as T)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane))
}

/**
 * insights-engine (docs/architecture.md §7): coalesces a pull's changes per user, recomputes each user once from
 * PostgreSQL with the pure modules, publishes every insight, and lets the runtime ack only once
 * JetStream has acknowledged all of them.
 */
export function insightsEngine(deps: InsightsEngineDeps): BatchHandler<DaysChanged> {
  const log = deps.log.child({ stage: 'insights-engine' })
  return {
    stage: 'insights-engine',
    schema: ChangesEvent,
    async handle(batch) {
      const touched = new Map<string, Set<string>>()
      for (const d of batch) {
        let days = touched.get(d.data.userId)
        if (!days) touched.set(d.data.userId, (days = new Set()))
        for (const day of d.data.days) days.add(day)
      }
      const maxBytes = eventByteLimit(deps.nats.nc, deps.eventMaxBytes)
      await eachLimited([...touched], deps.userConcurrency ?? 4, async ([userId, days]) => {
        const t0 = performance.now()
        const r = await recomputeUser(deps, userId, [...days])
        const events = insightEvents(deps.prefix, r, maxBytes)
        await publishAll(deps.nats.js, events)
        // only once the rows are out: a crash before this line republishes every day next time
        if (r.storedMetric !== r.metric) await deps.pool.query({ name: `hph_remember_metric_${deps.schema}`, text: rememberMetricSql(deps.schema), values: [userId, r.metric] })
        log.debug(
          { userId, days: days.size, version: r.dataVersion, events: events.length, recompute: r.recompute, everyDay: r.everyDay, ms: performance.now() - t0 },
          'recomputed',
        )
      })
    },
  }
}
