import { describe, expect, it } from 'vitest'
import type { Baseline } from '../../../processors/insights/baseline.ts'
import { cptOf, cptRow, personalTable, stateOf, thresholds } from '../../../processors/insights/cpt.ts'
import { DEFAULT_CONFIG } from '../../../processors/insights/defaults.ts'

const baseline = (over: Partial<Baseline> = {}): Baseline => ({
  hrv_metric: 'sdnn',
  hrv_baseline_sdnn: 50,
  hrv_ln_mean: Math.log(50),
  hrv_ln_sd: 0.2,
  hrv_days: 14,
  sleep_baseline_hours: 7,
  sleep_sd_hours: 1,
  sleep_days: 7,
  baseline_source: 'blended',
  data_quality_score: 0.75,
  ...over,
})

describe('thresholds (docs/insights.md §4)', () => {
  it('puts HRV at exp(mu − 0.5 sd) and exp(mu − 1.5 sd), sleep at mu − 0.5 sd and mu − 1.5 sd', () => {
    // HRV: 50·e^−0.1 = 45.2418709…, 50·e^−0.3 = 37.0409110…; sleep: 7 − 0.5 = 6.5, 7 − 1.5 = 5.5
    const t = thresholds(baseline())
    expect(t.hrv.good).toBeCloseTo(45.241870901797974, 10)
    expect(t.hrv.medium).toBeCloseTo(37.040911034085894, 10)
    expect(t.sleep).toEqual({ good: 6.5, medium: 5.5 })
  })

  it('is good from the good threshold on, medium from the medium one, else poor', () => {
    const t = { good: 6.5, medium: 5.5 }
    expect([stateOf(6.5, t), stateOf(6.49, t), stateOf(5.5, t), stateOf(5.49, t)]).toEqual(['good', 'medium', 'medium', 'poor'])
  })
})

describe('personalTable (§4)', () => {
  it('shrinks E towards uniform by q', () => {
    // q = 0.5, good|good: 0.5·(0.8, 0.15, 0.05) + 0.5·(1/3) = (0.566667, 0.241667, 0.191667)
    const p = personalTable(DEFAULT_CONFIG.expert, 0.5)
    expect(p['good|good'][0]).toBeCloseTo(0.8 / 2 + 1 / 6, 15)
    expect(p['good|good'][1]).toBeCloseTo(0.15 / 2 + 1 / 6, 15)
    expect(p['good|good'][2]).toBeCloseTo(0.05 / 2 + 1 / 6, 15)
    // poor|poor: 0.5·(0.05, 0.25, 0.7) + 1/6
    expect(p['poor|poor'].map((v) => v - 1 / 6)).toEqual([0.025, 0.125, 0.35].map((v) => expect.closeTo(v, 15)))
    for (const row of Object.values(p)) expect(row[0] + row[1] + row[2]).toBeCloseTo(1, 15)
  })

  it('is E with q = 1 and uniform with q = 0', () => {
    expect(personalTable(DEFAULT_CONFIG.expert, 1)).toEqual(DEFAULT_CONFIG.expert)
    for (const row of Object.values(personalTable(DEFAULT_CONFIG.expert, 0))) expect(row).toEqual([1 / 3, 1 / 3, 1 / 3])
  })
})

describe('cptRow (§4)', () => {
  it('writes the thresholds and the nine rows under "<sleep>|<hrv>" keys', () => {
    const row = cptRow('2026-03-31', cptOf(baseline({ data_quality_score: 1 })))
    expect(row.as_of_day).toBe('2026-03-31')
    expect([row.sleep_good_threshold, row.sleep_medium_threshold]).toEqual([6.5, 5.5])
    expect(row.cpt_probabilities.states).toEqual(['high', 'medium', 'low'])
    expect(Object.keys(row.cpt_probabilities.table).sort()).toEqual([
      'good|good',
      'good|medium',
      'good|poor',
      'medium|good',
      'medium|medium',
      'medium|poor',
      'poor|good',
      'poor|medium',
      'poor|poor',
    ])
    expect(row.cpt_probabilities.table['medium|poor']).toEqual([0.1, 0.4, 0.5])
  })
})
