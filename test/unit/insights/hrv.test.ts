import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { addDays } from '../../../processors/insights/days.ts'
import { hrvDaily, metricOfDays, type HrvDailyRow } from '../../../processors/insights/hrv.ts'
import { hrv, ms } from './build.ts'

// the main sleep episode of 2026-03-01: 00:00–08:00Z
const episodes = new Map([['2026-03-01', { start: ms('2026-03-01T00:00:00Z'), end: ms('2026-03-01T08:00:00Z') }]])

describe('hrvDaily (docs/insights.md §2)', () => {
  it('averages the readings that start inside the main episode, start included and end excluded', () => {
    // inside: 00:00 → 40, 03:00 → 50; at the end 08:00 → 60 and at 12:00 → 70 are not: mean (40 + 50) / 2 = 45
    const rows = hrvDaily([hrv(40, '2026-03-01T00:00:00Z'), hrv(50, '2026-03-01T03:00:00Z'), hrv(60, '2026-03-01T08:00:00Z'), hrv(70, '2026-03-01T12:00:00Z')], episodes, 'sdnn')
    expect(rows).toEqual([{ day: '2026-03-01', metric: 'sdnn', value_ms: 45, ln_value: Math.log(45), n: 2, min_ms: 40, max_ms: 50, basis: 'sleep' }])
  })

  it('falls back to the readings of the local day when the night has none', () => {
    // 2026-03-01: the night has no reading; the day has 10:00 → 30 and 20:00 → 60: mean 45, basis day
    // 2026-03-02T05:00Z at −480 is 21:00 on 03-01, so it counts for 03-01 too: (30 + 60 + 36) / 3 = 42
    const rows = hrvDaily([hrv(30, '2026-03-01T10:00:00Z'), hrv(60, '2026-03-01T20:00:00Z'), hrv(36, '2026-03-02T05:00:00Z', -480)], episodes, 'sdnn')
    expect(rows).toEqual([{ day: '2026-03-01', metric: 'sdnn', value_ms: 42, ln_value: Math.log(42), n: 3, min_ms: 30, max_ms: 60, basis: 'day' }])
  })

  it('uses the day set on a date without a night, and writes no row without readings', () => {
    const rows = hrvDaily([hrv(50, '2026-03-05T09:00:00Z')], episodes, 'sdnn')
    expect(rows.map((r) => [r.day, r.basis, r.value_ms])).toEqual([['2026-03-05', 'day', 50]])
  })

  it('summarises each metric on its own', () => {
    const samples = [hrv(40, '2026-03-01T01:00:00Z'), hrv(30, '2026-03-01T02:00:00Z', 0, 'hrv_rmssd'), hrv(34, '2026-03-01T03:00:00Z', 0, 'hrv_rmssd')]
    expect(hrvDaily(samples, episodes, 'sdnn').map((r) => r.value_ms)).toEqual([40])
    expect(hrvDaily(samples, episodes, 'rmssd').map((r) => [r.metric, r.value_ms, r.n])).toEqual([['rmssd', 32, 2]])
  })
})

describe('the metric of a day (§2)', () => {
  const row = (day: string, metric: 'sdnn' | 'rmssd'): HrvDailyRow => ({ day, metric, value_ms: 40, ln_value: Math.log(40), n: 1, min_ms: 40, max_ms: 40, basis: 'day' })
  const X = '2026-06-01'
  const days = (from: number, n: number, metric: 'sdnn' | 'rmssd') => Array.from({ length: n }, (_, i) => row(addDays(X, from + i), metric))

  it('is rmssd once 7 of the days X−60 … X have an rmssd row, whatever the sdnn rows', () => {
    const sdnn = days(-60, 61, 'sdnn')
    expect(metricOfDays([...sdnn, ...days(-6, 6, 'rmssd')])(X)).toBe('sdnn')
    expect(metricOfDays([...sdnn, ...days(-6, 7, 'rmssd')])(X)).toBe('rmssd')
    // the window is X−60 … X, day X included: a 7th rmssd day at X−61 does not count, one at X−60 does
    expect(metricOfDays([...sdnn, ...days(-6, 6, 'rmssd'), row(addDays(X, -61), 'rmssd')])(X)).toBe('sdnn')
    expect(metricOfDays([...sdnn, ...days(-6, 6, 'rmssd'), row(addDays(X, -60), 'rmssd')])(X)).toBe('rmssd')
    // and never a day after X
    expect(metricOfDays([...sdnn, ...days(-5, 6, 'rmssd'), row(addDays(X, 1), 'rmssd')])(X)).toBe('sdnn')
  })

  it('is rmssd with a single rmssd row when the window has no sdnn row; sdnn with no row at all', () => {
    expect(metricOfDays([row(addDays(X, -30), 'rmssd')])(X)).toBe('rmssd')
    expect(metricOfDays([row(addDays(X, -30), 'rmssd'), row(addDays(X, -61), 'sdnn')])(X)).toBe('rmssd')
    expect(metricOfDays([row(addDays(X, -30), 'rmssd'), row(addDays(X, -60), 'sdnn')])(X)).toBe('sdnn')
    expect(metricOfDays([])(X)).toBe('sdnn')
    expect(metricOfDays([row(addDays(X, -61), 'rmssd')])(X)).toBe('sdnn')
  })

  it('depends only on the rows of the days X−60 … X', () => {
    const dayIn = fc.integer({ min: -200, max: 200 })
    const rows = fc.array(fc.record({ d: dayIn, metric: fc.constantFrom('sdnn' as const, 'rmssd' as const) }), { maxLength: 120 })
    fc.assert(
      fc.property(rows, rows, fc.integer({ min: -100, max: 100 }), (a, b, x) => {
        const day = addDays(X, x)
        const inWindow = (r: { d: number }) => r.d >= x - 60 && r.d <= x
        // a's rows inside the window with b's rows outside it: the same metric as a alone
        const mixed = [...a.filter(inWindow), ...b.filter((r) => !inWindow(r))]
        const of = (list: typeof a) => metricOfDays(list.map((r) => row(addDays(X, r.d), r.metric)))(day)
        expect(of(mixed)).toBe(of(a))
      }),
      { numRuns: 300 },
    )
  })
})
