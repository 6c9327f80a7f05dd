import { describe, expect, it } from 'vitest'
import { computeInsights } from '../../../processors/insights/compute.ts'
import { insightEvents, insightRows, type Recomputation } from '../../../processors/insights/stage.ts'
import { affectedRange } from '../../../processors/insights/touched.ts'
import { groupOf, InsightBatch, type Insight, type InsightEntry } from '../../../streams/schemas.ts'
import { hrv, identified, stage } from './build.ts'

// processors/insights/stage.ts: which rows and tombstones one recomputation publishes (docs/insights.md §6).

// three nights, 03-01 … 03-03 (UTC), each with a reading inside it
const nights = ['01', '02', '03'].flatMap((d) => [stage('core', `2026-03-${d}T00:00:00Z`, `2026-03-${d}T07:00:00Z`), hrv(50, `2026-03-${d}T02:00:00Z`)])
const rows = computeInsights(identified(nights))

function recomputation(days: string[], over: Partial<Recomputation> = {}): Recomputation {
  return {
    userId: 'u',
    rows,
    range: affectedRange(days),
    dataVersion: 9,
    dataCount: 6,
    recompute: 'incremental',
    everyDay: false,
    metric: 'sdnn',
    storedMetric: 'sdnn',
    has: { sdnn: true, rmssd: true, sleep: true },
    ...over,
  }
}
const MAX = 256 * 1024
/** every row of the events, with its event's subject and id */
const published = (r: Recomputation, maxBytes = MAX) =>
  insightEvents('hph', r, maxBytes).flatMap((o) => (o.event.data as InsightBatch).rows.map((row: InsightEntry) => ({ subject: o.subject, id: o.event.id, ...row })))
const keys = (r: Recomputation, kind: Insight['kind'], live: boolean) =>
  published(r)
    .filter((e) => e.kind === kind && (e.row !== null) === live)
    .map((e) => e.key)
    .sort()

describe('the events of a recomputation', () => {
  it('publishes the daily rows of the touched days ±1 only, and tombstones the days of that range without a row', () => {
    const r = recomputation(['2026-03-03'])
    expect(keys(r, 'sleep_daily', true)).toEqual(['2026-03-02', '2026-03-03'])
    expect(keys(r, 'hrv_daily', true)).toEqual(['2026-03-02|sdnn', '2026-03-03|sdnn'])
    expect(keys(r, 'sleep_daily', false)).toEqual(['2026-03-04'])
    expect(keys(r, 'hrv_daily', false)).toEqual(['2026-03-02|rmssd', '2026-03-03|rmssd', '2026-03-04|rmssd', '2026-03-04|sdnn'])
  })

  it('tombstones no row of a kind of sample the user has never had', () => {
    const r = recomputation(['2026-03-03'], { has: { sdnn: true, rmssd: false, sleep: true } })
    expect(keys(r, 'hrv_daily', false)).toEqual(['2026-03-04|sdnn'])
    expect(keys(recomputation(['2026-03-03'], { has: { sdnn: true, rmssd: true, sleep: false } }), 'sleep_daily', false)).toEqual([])
  })

  it('publishes baselines and readiness from D−1 on, and always the current baseline and CPT', () => {
    const r = recomputation(['2026-03-03'])
    expect(keys(r, 'baseline_history', true)).toEqual(['2026-03-02', '2026-03-03'])
    expect(keys(r, 'readiness_daily', true)).toEqual(['2026-03-02', '2026-03-03'])
    expect(
      published(r)
        .filter((e) => e.kind === 'baseline' || e.kind === 'cpt')
        .map((e) => [e.kind, e.key, e.row !== null]),
    ).toEqual([
      ['baseline', '', true],
      ['cpt', '', true],
    ])
    expect(published(r).find((e) => e.kind === 'baseline')?.subject).toBe('hph.insights.v2.baseline.u')
  })

  it('publishes every day of the history when the metric changed', () => {
    const r = recomputation(['2026-03-03'], { everyDay: true, recompute: 'full' })
    expect(keys(r, 'sleep_daily', true)).toEqual(['2026-03-01', '2026-03-02', '2026-03-03'])
    expect(keys(r, 'baseline_history', true)).toEqual(['2026-03-01', '2026-03-02', '2026-03-03'])
    expect(published(r).every((e) => e.recompute === 'full' && e.dataVersion === 9 && e.dataCount === 6)).toBe(true)
  })

  it('tombstones the current baseline and CPT of a user left without rows', () => {
    const r = recomputation(['2026-03-03'], { rows: computeInsights([]) })
    expect(
      published(r)
        .filter((e) => e.kind === 'baseline' || e.kind === 'cpt')
        .map((e) => e.row),
    ).toEqual([null, null])
    expect(keys(r, 'readiness_daily', false)).toEqual(['2026-03-02', '2026-03-03', '2026-03-04'])
  })

  it('publishes a recomputation as one event a group (daily, baseline, cpt), each valid, and parts under the byte limit', () => {
    const r = recomputation(['2026-03-03'], { everyDay: true, recompute: 'full' })
    const events = insightEvents('hph', r, MAX)
    expect(events.map((e) => e.subject)).toEqual(['hph.insights.v2.daily.u', 'hph.insights.v2.baseline.u', 'hph.insights.v2.cpt.u'])
    for (const e of events) expect(InsightBatch.safeParse(e.event.data).success).toBe(true)
    expect(events.flatMap((e) => (e.event.data as InsightBatch).rows)).toEqual(
      insightRows(r).sort((a, b) => ['daily', 'baseline', 'cpt'].indexOf(groupOf(a.kind)) - ['daily', 'baseline', 'cpt'].indexOf(groupOf(b.kind))),
    )
    // a small limit cuts the daily rows into parts, each within it, none lost or doubled
    const small = insightEvents('hph', r, 3000)
    expect(small.length).toBeGreaterThan(events.length)
    for (const e of small) expect(e.encoded?.length ?? 0).toBeLessThanOrEqual(3000)
    expect(published(r, 3000).map((e) => `${e.kind}|${e.key}`)).toEqual(published(r).map((e) => `${e.kind}|${e.key}`))
    expect(new Set(small.map((e) => e.event.id)).size).toBe(small.length)
  })

  it('gives deterministic ids that change with the version, the count and the content', () => {
    const ids = (r: Recomputation) => insightEvents('hph', r, MAX).map((e) => e.event.id)
    const r = recomputation(['2026-03-03'])
    expect(ids(r)).toEqual(ids(recomputation(['2026-03-03'])))
    expect(new Set(ids(r)).size).toBe(ids(r).length)
    for (const other of [{ dataVersion: 10 }, { dataCount: 7 }]) {
      const again = new Set(ids(recomputation(['2026-03-03'], other)))
      expect(ids(r).some((id) => again.has(id))).toBe(false)
    }
  })
})
