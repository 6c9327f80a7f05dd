import { describe, expect, it } from 'vitest'
import { latestPerRow, rowsOf } from '../../../projections/insights/writer.ts'
import type { Delivered } from '../../../streams/consumer.ts'
import { INSIGHT_KINDS, groupOf, type Insight, type InsightBatch, type InsightEntry } from '../../../streams/schemas.ts'

const row = (kind: Insight['kind'], userId: string, key: string, dataVersion: number): Insight => ({ kind, userId, key, dataVersion, dataCount: 1, row: null }) as Insight

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
    const shape = (m: Map<string, Insight[]>) => [...m].map(([kind, list]) => [kind, list.map((r) => `${r.userId} ${r.key} v${r.dataVersion}`)])
    const expected = [
      ['hrv_daily', ['ana 2026-03-01|sdnn v5', 'ana 2026-03-02|sdnn v5']],
      ['readiness_daily', ['ana 2026-03-01 v7', 'zoe 2026-03-02 v5']],
    ]
    expect(shape(latestPerRow(rows))).toEqual(expected)
    expect(shape(latestPerRow([...rows].reverse()))).toEqual(expected)
    expect(INSIGHT_KINDS.indexOf('hrv_daily')).toBeLessThan(INSIGHT_KINDS.indexOf('readiness_daily'))
  })

  it('reads the rows of every event of a pull with the event’s user, in stream order', () => {
    const pull = [event([row('hrv_daily', 'ana', '2026-03-01|sdnn', 5), row('sleep_daily', 'ana', '2026-03-01', 5)], 1), event([row('baseline', 'zoe', '', 3)], 2)]
    expect(rowsOf(pull).map((r) => `${r.userId} ${r.kind} ${r.key}`)).toEqual(['ana hrv_daily 2026-03-01|sdnn', 'ana sleep_daily 2026-03-01', 'zoe baseline '])
    // the same rows cut into other events give the same latest rows
    const other = [event([row('hrv_daily', 'ana', '2026-03-01|sdnn', 5)], 1), event([row('sleep_daily', 'ana', '2026-03-01', 5)], 2), event([row('baseline', 'zoe', '', 3)], 3)]
    expect(latestPerRow(rowsOf(other))).toEqual(latestPerRow(rowsOf(pull)))
  })
})
