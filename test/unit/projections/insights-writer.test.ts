import { describe, expect, it } from 'vitest'
import { latestPerRow } from '../../../projections/insights/writer.ts'
import type { Delivered } from '../../../streams/consumer.ts'
import { INSIGHT_KINDS, type Insight } from '../../../streams/schemas.ts'

const event = (kind: Insight['kind'], userId: string, key: string, dataVersion: number, seq: number): Delivered<Insight> => {
  const data = { kind, userId, key, dataVersion, dataCount: 1, row: null } as Insight
  return { event: { specversion: '1.0', id: `${seq}`, type: 'hph.insight.v1', source: 't', subject: userId, time: '', data }, data, subject: '', seq, deliveries: 1, traceparent: undefined }
}

describe('latestPerRow', () => {
  it('keeps the newest event of each row, and orders kinds and rows the same whatever the order of the pull (no deadlock between instances)', () => {
    const pull = [
      event('readiness_daily', 'zoe', '2026-03-02', 5, 1), event('hrv_daily', 'ana', '2026-03-02|sdnn', 5, 2), event('readiness_daily', 'ana', '2026-03-01', 5, 3),
      event('readiness_daily', 'ana', '2026-03-01', 7, 4), event('readiness_daily', 'ana', '2026-03-01', 6, 5), event('hrv_daily', 'ana', '2026-03-01|sdnn', 5, 6),
    ]
    const shape = (m: Map<string, Insight[]>) => [...m].map(([kind, rows]) => [kind, rows.map((r) => `${r.userId} ${r.key} v${r.dataVersion}`)])
    const expected = [
      ['hrv_daily', ['ana 2026-03-01|sdnn v5', 'ana 2026-03-02|sdnn v5']],
      ['readiness_daily', ['ana 2026-03-01 v7', 'zoe 2026-03-02 v5']],
    ]
    expect(shape(latestPerRow(pull))).toEqual(expected)
    expect(shape(latestPerRow([...pull].reverse()))).toEqual(expected)
    expect(INSIGHT_KINDS.indexOf('hrv_daily')).toBeLessThan(INSIGHT_KINDS.indexOf('readiness_daily'))
  })
})
