import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isNewer, latestPerRow, liveRowsJson, rowsOf, type PulledRow } from '../../../projections/insights/writer.ts'
import type { Delivered } from '../../../streams/consumer.ts'
import { INSIGHT_KINDS, groupOf, type Insight, type InsightBatch, type InsightEntry, type InsightKind } from '../../../streams/schemas.ts'

const row = (kind: Insight['kind'], userId: string, key: string, dataVersion: number, dataCount = 1): Insight =>
  ({ kind, userId, key, dataVersion, dataCount, row: null }) as Insight

/** One hph.insight.v2 event of one user holding `rows` (all of the same group). */
const event = (rows: Insight[], seq: number): Delivered<InsightBatch> => {
  const first = rows[0] as Insight
  const data: InsightBatch = { userId: first.userId, group: groupOf(first.kind), rows: rows.map(({ userId: _u, ...r }) => r as InsightEntry) }
  return {
    event: { specversion: '1.0', id: `${seq}`, type: 'hph.insight.v2', source: 't', subject: first.userId, time: '', data },
    data,
    subject: '',
    seq,
    deliveries: 1,
    traceparent: undefined,
  }
}

const pulled = (rows: readonly Insight[]): PulledRow[] => rows.map(({ userId, ...entry }) => ({ userId, entry: entry as InsightEntry }))
const shape = (m: Map<string, PulledRow[]>) => [...m].map(([kind, list]) => [kind, list.map((r) => `${r.userId} ${r.entry.key} v${r.entry.dataVersion}`)])

/** The writer's rows as it first picked them: a copy of each row with its user, one string id a row, one sort of them all. */
function latestPerRowReference(entries: readonly Insight[]): Map<InsightKind, Insight[]> {
  const latest = new Map<string, Insight>()
  for (const r of entries) {
    const id = `${r.kind}\0${r.userId}\0${r.key}`
    const seen = latest.get(id)
    if (!seen || !isNewer(seen, r)) latest.set(id, r)
  }
  const rows = [...latest.values()].sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  const byKind = new Map<InsightKind, Insight[]>(INSIGHT_KINDS.map((k) => [k, []]))
  for (const i of rows) byKind.get(i.kind)?.push(i)
  for (const [kind, list] of byKind) if (list.length === 0) byKind.delete(kind)
  return byKind
}

describe('latestPerRow', () => {
  it('keeps the newest of each row, and orders kinds and rows the same whatever the order of the pull (no deadlock between instances)', () => {
    const rows = [
      row('readiness_daily', 'zoe', '2026-03-02', 5),
      row('hrv_daily', 'ana', '2026-03-02|sdnn', 5),
      row('readiness_daily', 'ana', '2026-03-01', 5),
      row('readiness_daily', 'ana', '2026-03-01', 7),
      row('readiness_daily', 'ana', '2026-03-01', 6),
      row('hrv_daily', 'ana', '2026-03-01|sdnn', 5),
    ]
    const expected = [
      ['hrv_daily', ['ana 2026-03-01|sdnn v5', 'ana 2026-03-02|sdnn v5']],
      ['readiness_daily', ['ana 2026-03-01 v7', 'zoe 2026-03-02 v5']],
    ]
    expect(shape(latestPerRow(pulled(rows)))).toEqual(expected)
    expect(shape(latestPerRow(pulled([...rows].reverse())))).toEqual(expected)
    expect(INSIGHT_KINDS.indexOf('hrv_daily')).toBeLessThan(INSIGHT_KINDS.indexOf('readiness_daily'))
  })

  it('reads the rows of every event of a pull with the event’s user, in stream order', () => {
    const pull = [event([row('hrv_daily', 'ana', '2026-03-01|sdnn', 5), row('sleep_daily', 'ana', '2026-03-01', 5)], 1), event([row('baseline', 'zoe', '', 3)], 2)]
    expect(rowsOf(pull).map((r) => `${r.userId} ${r.entry.kind} ${r.entry.key}`)).toEqual(['ana hrv_daily 2026-03-01|sdnn', 'ana sleep_daily 2026-03-01', 'zoe baseline '])
    // the entries themselves, not copies
    expect(rowsOf(pull)[1]?.entry).toBe(pull[0]?.data.rows[1])
    // the same rows cut into other events give the same latest rows
    const other = [event([row('hrv_daily', 'ana', '2026-03-01|sdnn', 5)], 1), event([row('sleep_daily', 'ana', '2026-03-01', 5)], 2), event([row('baseline', 'zoe', '', 3)], 3)]
    expect(latestPerRow(rowsOf(other))).toEqual(latestPerRow(rowsOf(pull)))
  })

  it('picks the very rows, in the very order, the one-sort reference picks, on generated pulls', () => {
    // few users, keys and versions, so that rows repeat, tie and share prefixes; keys '' (baseline, cpt) too
    const insight = fc
      .record({
        kind: fc.constantFrom(...INSIGHT_KINDS),
        userId: fc.constantFrom('ana', 'an', 'b', 'Zoe', 'zoe_1'),
        key: fc.constantFrom('', '2026-03-01', '2026-03-01|sdnn', '2026-03-01|rmssd', '2026-02-28', '2026-03-10', '2026-3-1'),
        dataVersion: fc.nat(3),
        dataCount: fc.nat(2),
        tag: fc.nat(1000),
      })
      .map(({ tag, ...r }) => ({ ...r, row: null, recompute: tag % 2 ? 'full' : 'incremental', tag }) as unknown as Insight)
    fc.assert(
      fc.property(fc.array(insight, { maxLength: 60 }), (rows) => {
        const ours = [...latestPerRow(pulled(rows))].map(([kind, list]) => [kind, list.map((r) => ({ userId: r.userId, ...r.entry }))])
        const reference = [...latestPerRowReference(rows)].map(([kind, list]) => [kind, list.map(({ userId, ...entry }) => ({ userId, ...entry }))])
        expect(ours).toStrictEqual(reference)
      }),
      { numRuns: 2000 },
    )
  })
})

describe('liveRowsJson', () => {
  const spreadJson = (rows: readonly PulledRow[]) =>
    JSON.stringify(
      rows
        .filter((r) => r.entry.row !== null)
        .map(({ userId, entry: e }) => ({ ...e.row, user_id: userId, key: e.key, data_version: e.dataVersion, data_count: e.dataCount, recompute: e.recompute ?? null })),
    )

  it('writes exactly the JSON of the rows spread with their user, key, versions and recompute', () => {
    // column names as the tables have them; values of every JSON kind, and strings that need escaping
    const value = fc.oneof(fc.double(), fc.integer(), fc.string(), fc.boolean(), fc.constant(null), fc.dictionary(fc.string(), fc.double(), { maxKeys: 3 }))
    const columns = fc.dictionary(fc.constantFrom('day', 'metric', 'value_ms', 'ln_value', 'n', 'valid', 'episode_start', 'as_of_day', 'cpt_probabilities', 'w'), value, {
      maxKeys: 8,
    })
    const entry = fc.record({
      userId: fc.string({ minLength: 1 }),
      key: fc.string(),
      dataVersion: fc.nat(),
      dataCount: fc.nat(),
      row: fc.option(columns, { freq: 4 }),
      recompute: fc.constantFrom('incremental', 'full', undefined),
    })
    const pulledRow = entry.map(({ userId, recompute, ...e }): PulledRow => ({ userId, entry: (recompute === undefined ? e : { ...e, recompute }) as unknown as InsightEntry }))
    fc.assert(
      fc.property(fc.array(pulledRow, { maxLength: 8 }), (rows) => {
        const ours = liveRowsJson(rows)
        const reference = spreadJson(rows)
        // no live row: no JSON at all (the upsert is not run)
        expect(ours).toBe(reference === '[]' ? '' : reference)
      }),
      { numRuns: 5000 },
    )
  })
})
