import { describe, expect, it } from 'vitest'
import { baselineAsOf, baselineDays, blend, currentBaselineDay, windowValues, type DailySeries } from '../../../processors/insights/baseline.ts'
import { addDays } from '../../../processors/insights/days.ts'
import { DEFAULT_CONFIG } from '../../../processors/insights/defaults.ts'

const X = '2026-05-01'
const series = (hrvLn: Array<[string, number]>, sleepHours: Array<[string, number]>): DailySeries => ({ metric: 'sdnn', hrvLn: new Map(hrvLn), sleepHours: new Map(sleepHours) })

describe('blend (docs/insights.md §3)', () => {
  it('blends 7 days half and half with the prior (w = 7/14 = 0.5)', () => {
    // hours 6 7 8 6 7 8 7: mean 7; squares of deviations 1+0+1+1+0+1+0 = 4, sd = sqrt(4/6) = 0.816496…
    // mu = 0.5·7 + 0.5·7.5 = 7.25; sd = 0.5·0.816496… + 0.5·0.75 = 0.783248…
    const b = blend([6, 7, 8, 6, 7, 8, 7], { mu: 7.5, sd: 0.75 }, 14)
    expect(b.n).toBe(7)
    expect(b.mu).toBeCloseTo(7.25, 12)
    expect(b.sd).toBeCloseTo(0.783248290463863, 12)
  })

  it('uses sd_0 for one value and the prior alone for none', () => {
    // n = 1, w = 1/14: mu = ln 60 / 14 + 13/14 · ln 45; sd = 0.25 (sd_p = sd_0)
    const one = blend([Math.log(60)], { mu: Math.log(45), sd: 0.25 }, 14)
    expect(one.mu).toBeCloseTo(Math.log(60) / 14 + (13 / 14) * Math.log(45), 12)
    expect(one.sd).toBeCloseTo(0.25, 12)
    expect(blend([], { mu: Math.log(45), sd: 0.25 }, 14)).toEqual({ mu: Math.log(45), sd: 0.25, n: 0 })
  })

  it('is fully personal from K days on', () => {
    const values = Array.from({ length: 20 }, (_, i) => 6 + (i % 3))
    const b = blend(values, { mu: 7.5, sd: 0.75 }, 14)
    expect(b.mu).toBeCloseTo(values.reduce((s, v) => s + v, 0) / 20, 12)
  })
})

describe('baselineAsOf (§3)', () => {
  it('reads days X−60 … X−1 only, never day X', () => {
    const s = new Map([
      [addDays(X, -61), 1],
      [addDays(X, -60), 2],
      [addDays(X, -1), 3],
      [X, 4],
    ])
    expect(windowValues(s, X, 60)).toEqual([2, 3])
  })

  it('reports a blended baseline from 7 valid nights and no HRV', () => {
    const hours = [6, 7, 8, 6, 7, 8, 7]
    // w = 7/14: mu_s = 7.25, sd_s = 0.783248… as in blend above
    const b = baselineAsOf(
      X,
      series(
        [],
        hours.map((h, i) => [addDays(X, -1 - i), h]),
      ),
    )
    // HRV: the prior (ln 45, 0.25); data quality (0 + 7) / 28 = 0.25
    expect(b).toMatchObject({ hrv_metric: 'sdnn', hrv_days: 0, sleep_days: 7, baseline_source: 'blended', data_quality_score: 0.25 })
    expect(b.hrv_baseline_sdnn).toBeCloseTo(45, 12)
    expect(b.hrv_ln_mean).toBe(Math.log(45))
    expect(b.hrv_ln_sd).toBe(0.25)
    expect(b.sleep_baseline_hours).toBeCloseTo(7.25, 12)
    expect(b.sleep_sd_hours).toBeCloseTo(0.783248290463863, 12)
  })

  it('is default with no data and personal with K days of each', () => {
    expect(baselineAsOf(X, series([], []))).toEqual({
      hrv_metric: 'sdnn',
      hrv_baseline_sdnn: Math.exp(Math.log(45)),
      hrv_ln_mean: Math.log(45),
      hrv_ln_sd: 0.25,
      hrv_days: 0,
      sleep_baseline_hours: 7.5,
      sleep_sd_hours: 0.75,
      sleep_days: 0,
      baseline_source: 'default',
      data_quality_score: 0,
    })
    const days = Array.from({ length: 20 }, (_, i) => addDays(X, -1 - i))
    const b = baselineAsOf(
      X,
      series(
        days.map((d) => [d, Math.log(50)]),
        days.map((d) => [d, 7]),
      ),
      DEFAULT_CONFIG,
    )
    // 20 days each: personal, data quality (14 + 14) / 28 = 1; sd of equal values is 0
    expect(b).toMatchObject({
      baseline_source: 'personal',
      data_quality_score: 1,
      hrv_days: 20,
      sleep_days: 20,
      hrv_ln_sd: expect.closeTo(0, 12),
      sleep_sd_hours: 0,
      sleep_baseline_hours: 7,
    })
    expect(b.hrv_baseline_sdnn).toBeCloseTo(50, 12)
  })
})

describe('baseline days (§3)', () => {
  it('are the days with an HRV row of the metric or a sleep row; the current one is the day after the latest', () => {
    const days = baselineDays(['2026-03-02', '2026-03-05'], ['2026-03-05', '2026-03-01'])
    expect(days).toEqual(['2026-03-01', '2026-03-02', '2026-03-05'])
    expect(currentBaselineDay(days)).toBe('2026-03-06')
    expect(currentBaselineDay([])).toBeUndefined()
  })
})
