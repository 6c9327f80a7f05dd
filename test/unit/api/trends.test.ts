import { describe, expect, it } from 'vitest'
import { HttpError } from '../../../api/errors.ts'
import { DEFAULT_DAYS, parseDays, windowEnding } from '../../../api/routes/trends.ts'

describe('the dashboard window', () => {
  it('is the days ending with the last one, inclusive, across months and leap days', () => {
    expect(windowEnding('2026-10-30', 90)).toEqual({ from: '2026-08-02', to: '2026-10-30' })
    expect(windowEnding('2028-03-01', 2)).toEqual({ from: '2028-02-29', to: '2028-03-01' })
    expect(windowEnding('2026-01-01', 1)).toEqual({ from: '2026-01-01', to: '2026-01-01' })
  })

  it('takes 1..366 whole days, 90 when not asked', () => {
    expect(parseDays(undefined)).toBe(DEFAULT_DAYS)
    expect(DEFAULT_DAYS).toBe(90)
    expect(parseDays('366')).toBe(366)
    for (const bad of ['0', '367', '-3', '7.5', 'ninety', '']) expect(() => parseDays(bad), bad).toThrow(HttpError)
  })
})
