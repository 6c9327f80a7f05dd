import { describe, expect, it } from 'vitest'
import { personalTable, type Cpt } from '../../../processors/insights/cpt.ts'
import { DEFAULT_CONFIG } from '../../../processors/insights/defaults.ts'
import { labelOf, marginalise, readiness, readinessRow } from '../../../processors/insights/readiness.ts'

// q = 1 (the expert table E); sleep good ≥ 6.5 h, medium ≥ 5.5 h; HRV good ≥ 45 ms, medium ≥ 37 ms
const cpt: Cpt = { sleep: { good: 6.5, medium: 5.5 }, hrv: { good: 45, medium: 37 }, table: DEFAULT_CONFIG.expert }

describe('readiness (docs/insights.md §5)', () => {
  it('reads the table row of both states', () => {
    // good|good = (0.8, 0.15, 0.05): score = floor(100·(0.8 + 0.075) + 0.5) = floor(88) = 88
    expect(readiness({ hrvMs: 50, sleepHours: 7 }, cpt)).toEqual({ high: 0.8, medium: 0.15, low: 0.05, score: 88, label: 'high', sleep: 'good', hrv: 'good' })
  })

  it('rounds the score half up: good|poor (0.2, 0.45, 0.35) gives floor(42.5 + 0.5) = 43', () => {
    const r = readiness({ hrvMs: 30, sleepHours: 8 }, cpt)
    expect([r?.hrv, r?.score, r?.label]).toEqual(['poor', 43, 'medium'])
  })

  it('marginalises a missing sleep parent over its three states', () => {
    // HRV good: mean of good|good, medium|good, poor|good
    // high (0.8 + 0.55 + 0.3)/3 = 0.55, medium (0.15 + 0.35 + 0.45)/3 = 0.316667, low (0.05 + 0.1 + 0.25)/3 = 0.133333
    // score = floor(100·(0.55 + 0.158333) + 0.5) = floor(71.33) = 71
    const r = readiness({ hrvMs: 46 }, cpt)!
    expect(r.high).toBeCloseTo(0.55, 15)
    expect(r.medium).toBeCloseTo(0.95 / 3, 15)
    expect(r.low).toBeCloseTo(0.4 / 3, 15)
    expect([r.score, r.label, r.sleep, r.hrv]).toEqual([71, 'high', undefined, 'good'])
    expect(readinessRow('2026-03-03', r)).toMatchObject({ day: '2026-03-03', sleep_state: null, hrv_state: 'good', score: 71 })
  })

  it('marginalises a missing HRV parent over its three states', () => {
    // sleep poor (5 h): high (0.3 + 0.1 + 0.05)/3 = 0.15, medium (0.45 + 0.45 + 0.25)/3 = 0.383333, low (0.25 + 0.45 + 0.7)/3 = 0.466667
    // score = floor(100·(0.15 + 0.191667) + 0.5) = floor(34.67) = 34; label low
    const r = readiness({ sleepHours: 5 }, cpt)!
    expect(r.high).toBeCloseTo(0.15, 15)
    expect(r.medium).toBeCloseTo(1.15 / 3, 15)
    expect(r.low).toBeCloseTo(1.4 / 3, 15)
    expect([r.score, r.label, r.sleep, r.hrv]).toEqual([34, 'low', 'poor', undefined])
  })

  it('gives no readiness without evidence', () => {
    expect(readiness({}, cpt)).toBeUndefined()
  })

  it('is 50 and medium when the table is uniform (q = 0)', () => {
    // 100·(1/3 + 1/6) + 0.5 = 50.5 → 50; three equal probabilities → medium
    const r = readiness({ hrvMs: 50, sleepHours: 5 }, { ...cpt, table: personalTable(DEFAULT_CONFIG.expert, 0) })
    expect([r?.score, r?.label]).toEqual([50, 'medium'])
    expect(marginalise(personalTable(DEFAULT_CONFIG.expert, 0), undefined, undefined)).toEqual({ high: 1 / 3, medium: 1 / 3, low: 1 / 3 })
  })
})

describe('labelOf (§5)', () => {
  it('breaks ties towards medium, then low, then high', () => {
    expect(labelOf({ high: 0.4, medium: 0.4, low: 0.2 })).toBe('medium')
    expect(labelOf({ high: 0.2, medium: 0.4, low: 0.4 })).toBe('medium')
    expect(labelOf({ high: 0.4, medium: 0.2, low: 0.4 })).toBe('low')
    expect(labelOf({ high: 0.5, medium: 0.3, low: 0.2 })).toBe('high')
  })
})
