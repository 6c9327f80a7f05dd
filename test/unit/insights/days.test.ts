import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { addDays, dayNumber, dayString, localDate } from '../../../processors/insights/days.ts'

const viaDate = (n: number) => new Date(n * 86_400_000).toISOString().slice(0, 10)

describe('local dates as day numbers', () => {
  it('agree with Date on every day of years 0001–9999', () => {
    for (let n = dayNumber('0001-01-01'); n <= dayNumber('9999-12-31'); n++) {
      const s = viaDate(n)
      if (dayString(n) !== s || dayNumber(s) !== n) expect([n, dayString(n), dayNumber(s)]).toEqual([n, s, n])
    }
    expect([dayNumber('1970-01-01'), dayNumber('0001-01-01'), dayNumber('9999-12-31')]).toEqual([0, -719_162, 2_932_896])
    // 3.65 million days: seconds on a busy machine, beyond vitest's default 5 s when the integration tests share its 2 cores
  }, 60_000)

  it('add days across months, leap days and years', () => {
    expect([addDays('2024-02-28', 1), addDays('2024-03-01', -1), addDays('2023-12-31', 1), addDays('2026-03-10', 61)]).toEqual([
      '2024-02-29',
      '2024-02-29',
      '2024-01-01',
      '2026-05-10',
    ])
    fc.assert(fc.property(fc.integer({ min: -300_000, max: 2_000_000 }), fc.integer({ min: -1000, max: 1000 }), (n, k) => addDays(dayString(n), k) === viaDate(n + k)))
  })

  it('take the local date of an instant in its own offset', () => {
    // 07:00Z at −08:00 is 23:00 the day before; at +14:00 it is 21:00 the same day; 10:00Z at +14:00 is midnight the next day
    expect(localDate(Date.parse('2026-03-01T07:00:00Z'), -480)).toBe('2026-02-28')
    expect(localDate(Date.parse('2026-03-01T07:00:00Z'), 840)).toBe('2026-03-01')
    expect(localDate(Date.parse('2026-03-01T10:00:00Z'), 840)).toBe('2026-03-02')
  })
})
