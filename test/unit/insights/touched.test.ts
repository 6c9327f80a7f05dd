import { describe, expect, it } from 'vitest'
import { affectedRange, dailyRange, derivedRange, touchedDays } from '../../../processors/insights/touched.ts'
import { stage } from './build.ts'

describe('touched days (docs/insights.md §6)', () => {
  it('are the local dates of a sample start and end, in its offset', () => {
    // 07:00Z–15:00Z at −480: 2026-02-28 23:00 → 2026-03-01 07:00 local
    expect(touchedDays(stage('core', '2026-03-01T07:00:00Z', '2026-03-01T15:00:00Z', -480))).toEqual(['2026-02-28', '2026-03-01'])
    expect(touchedDays(stage('core', '2026-03-01T09:00:00Z', '2026-03-01T15:00:00Z', -480))).toEqual(['2026-03-01'])
  })

  it('change the daily rows of D−1 … D+1 and the baselines and readiness up to D+61', () => {
    expect(dailyRange('2026-03-01')).toEqual({ from: '2026-02-28', to: '2026-03-02' })
    // 2026-03-10 + 61 days: 21 days to 03-31, 30 to 04-30, 10 more → 05-10
    expect(derivedRange('2026-03-10')).toEqual({ from: '2026-03-09', to: '2026-05-10' })
  })

  it('cover every touched date of a batch', () => {
    const r = affectedRange(['2026-03-10', '2026-03-01', '2026-03-10'])
    expect(r.first).toBe('2026-03-01')
    expect([...r.daily].sort()).toEqual(['2026-02-28', '2026-03-01', '2026-03-02', '2026-03-09', '2026-03-10', '2026-03-11'])
    expect([r.derivedFrom, r.derivedTo]).toEqual(['2026-02-28', '2026-05-10'])
  })
})
