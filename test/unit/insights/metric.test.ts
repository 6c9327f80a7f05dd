import { describe, expect, it } from 'vitest'
import { computeInsights } from '../../../processors/insights/compute.ts'
import { addDays } from '../../../processors/insights/days.ts'
import { hrv, identified } from './build.ts'

// docs/insights.md §2's metric of a day through the whole computation: baselines, CPT and readiness of X use
// it, each metric keeps its own baseline, and baseline_history has a row on every day with any HRV row.

const D0 = '2026-01-01'
const at = (n: number, hour = 12) => `${addDays(D0, n)}T${String(hour).padStart(2, '0')}:00:00.000Z`
const sd = (x: readonly number[]) => {
  const m = x.reduce((a, b) => a + b, 0) / x.length
  return Math.sqrt(x.reduce((a, b) => a + (b - m) ** 2, 0) / (x.length - 1))
}

describe('a user switching from the watch (SDNN) to a ring (RMSSD)', () => {
  // days 0–29: SDNN 40 + (n % 5); days 30–49: RMSSD 60 + (n % 3) from the ring, nothing else
  const samples = [...Array.from({ length: 30 }, (_, n) => hrv(40 + (n % 5), at(n))), ...Array.from({ length: 20 }, (_, i) => hrv(60 + ((30 + i) % 3), at(30 + i), 0, 'hrv_rmssd'))]
  const r = computeInsights(identified(samples))
  const history = new Map(r.baselineHistory.map((b) => [b.day, b]))

  it('has a baseline_history row on every day with an HRV row of either metric', () => {
    expect(r.baselineHistory.map((b) => b.day)).toEqual(Array.from({ length: 50 }, (_, n) => addDays(D0, n)))
  })

  it('keeps sdnn for the first 6 ring days and switches on the 7th, each metric on its own baseline', () => {
    for (let n = 30; n <= 35; n++) expect(history.get(addDays(D0, n))!.hrv_metric, addDays(D0, n)).toBe('sdnn')
    for (let n = 36; n < 50; n++) expect(history.get(addDays(D0, n))!.hrv_metric, addDays(D0, n)).toBe('rmssd')
    // day 35 (sdnn): the 30 sdnn days before it; the ring's rows are not in its L
    const ln35 = Array.from({ length: 30 }, (_, n) => Math.log(40 + (n % 5)))
    const b35 = history.get(addDays(D0, 35))!
    expect(b35.hrv_days).toBe(30)
    expect(b35.hrv_ln_mean).toBeCloseTo(ln35.reduce((a, b) => a + b, 0) / 30, 12)
    expect(b35.hrv_ln_sd).toBeCloseTo(sd(ln35), 12)
    // day 36 (rmssd): the 6 ring days 30–35 only, blended with the prior (w = 6/14)
    const ln36 = Array.from({ length: 6 }, (_, i) => Math.log(60 + ((30 + i) % 3)))
    const w = 6 / 14
    const b36 = history.get(addDays(D0, 36))!
    expect(b36.hrv_days).toBe(6)
    expect(b36.hrv_ln_mean).toBeCloseTo(w * (ln36.reduce((a, b) => a + b, 0) / 6) + (1 - w) * Math.log(45), 12)
    expect(b36.hrv_ln_sd).toBeCloseTo(w * sd(ln36) + (1 - w) * 0.25, 12)
    expect(r.metric).toBe('rmssd')
    expect(r.userBaseline).toMatchObject({ as_of_day: addDays(D0, 50), hrv_metric: 'rmssd', hrv_days: 20 })
  })

  it("judges readiness of X on the value of X's metric: none from a ring day whose metric is still sdnn", () => {
    const readiness = new Map(r.readiness.map((x) => [x.day, x]))
    // days 30–35 have only an rmssd row and their metric is sdnn: no HRV evidence, no sleep: no readiness
    for (let n = 30; n <= 35; n++) expect(readiness.has(addDays(D0, n))).toBe(false)
    expect(readiness.get(addDays(D0, 36))!.hrv_state).not.toBeNull()
    expect(readiness.get(addDays(D0, 29))!.hrv_state).not.toBeNull()
  })
})
