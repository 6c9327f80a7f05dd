import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { addDays, dayNumber, dayString, instantMs, isoUtc, localDate } from '../../../processors/insights/days.ts'
import { isoInstant } from '../../../streams/instants.ts'

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

// The fast readers and writers of instants against what they stand in for: Date.parse, and isoUtc as it was
// written with a Date (below). NaN and exceptions count as results.

const outcome = (f: () => unknown): unknown => {
  try {
    return f()
  } catch (err) {
    return `throws ${(err as Error).name}`
  }
}

const isoUtcViaDate = (ms: number): string => {
  const iso = new Date(ms).toISOString()
  const frac = iso.slice(20, 23)
  return `${iso.slice(0, 19)}${frac === '000' ? '' : `.${frac}000`}+00:00`
}

/** What toISOString writes for years 0–9999, the first and last millisecond of those years more often. */
const canonical = fc
  .oneof(
    fc.date({ min: new Date('0000-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59.999Z'), noInvalidDate: true }),
    fc.constantFrom(new Date('0000-01-01T00:00:00.000Z'), new Date('9999-12-31T23:59:59.999Z'), new Date('2024-02-29T23:59:59.999Z')),
  )
  .map((d) => d.toISOString())

/** Strings of the canonical length whose every place holds a digit or one of a few look-alikes: months 13–99, day 32, 24:00, 23:60, … */
const shaped = fc
  .tuple(
    ...Array.from({ length: 24 }, (_, i) =>
      i === 4 || i === 7
        ? fc.constantFrom('-', '-', '-', '/', '0')
        : i === 10
          ? fc.constantFrom('T', 'T', 'T', 't', ' ')
          : i === 13 || i === 16
            ? fc.constantFrom(':', ':', ':', '0')
            : i === 19
              ? fc.constantFrom('.', '.', '.', ',')
              : i === 23
                ? fc.constantFrom('Z', 'Z', 'Z', 'z', '0')
                : fc.constantFrom(...'0123456789', '0', '1', '2', 'a', '+'),
    ),
  )
  .map((c) => c.join(''))

/** A canonical instant with one character changed, inserted or removed. */
const damaged = fc
  .tuple(canonical, fc.nat(24), fc.constantFrom(...'0123456789-:.TZtz +/'), fc.constantFrom('replace', 'insert', 'remove'))
  .map(([s, at, c, how]) => s.slice(0, at) + (how === 'remove' ? '' : c) + s.slice(how === 'insert' ? at : at + 1))

const firstMs = Date.parse('0000-01-01T00:00:00.000Z')
const lastMs = Date.parse('9999-12-31T23:59:59.999Z')

describe('instants in epoch ms', () => {
  it('read exactly what Date.parse reads, NaN included, canonical or not', () => {
    let canonicalNumbers = 0
    fc.assert(
      fc.property(fc.oneof(canonical, shaped, damaged, fc.string({ maxLength: 30 })), (s) => {
        const parsed = instantMs(s)
        if (!Object.is(parsed, Date.parse(s))) expect([s, parsed]).toEqual([s, Date.parse(s)])
        if (s.length === 24 && !Number.isNaN(parsed)) canonicalNumbers++
      }),
      { numRuns: 50_000 },
    )
    // the fast path itself was tried, not only the fallback
    expect(canonicalNumbers).toBeGreaterThan(10_000)
    expect([instantMs('1970-01-01T00:00:00.000Z'), instantMs('0000-01-01T00:00:00.000Z'), instantMs('2026-03-01T07:00:00Z')]).toEqual([0, -62_167_219_200_000, 1_772_348_400_000])
  }, 60_000)

  it('are written by isoUtc as the Date-based writer wrote them, and by isoInstant as toISOString writes them, for every millisecond and beyond', () => {
    const ms = fc.oneof(
      fc.integer({ min: firstMs - 86_400_000, max: lastMs + 86_400_000 }),
      fc.integer({ min: -1000, max: 1000 }).map((d) => firstMs + d),
      fc.integer({ min: -1000, max: 1000 }).map((d) => lastMs + d),
      fc.integer({ min: -8_640_000_000_000_000, max: 8_640_000_000_000_000 }),
      fc.double({ min: -9e15, max: 9e15 }),
      fc.constantFrom(-0, 0.5, -0.5, 999.9, NaN, Infinity, -Infinity, 8.64e15, -8.64e15, 8.64e15 + 1),
    )
    fc.assert(
      fc.property(ms, (t) => {
        const written = outcome(() => isoUtc(t))
        if (written !== outcome(() => isoUtcViaDate(t))) expect([t, written]).toEqual([t, isoUtcViaDate(t)])
        const iso = outcome(() => isoInstant(t))
        if (iso !== outcome(() => new Date(t).toISOString())) expect([t, iso]).toEqual([t, outcome(() => new Date(t).toISOString())])
      }),
      { numRuns: 50_000 },
    )
    expect([isoUtc(0), isoUtc(1_772_348_400_123), isoUtc(lastMs)]).toEqual(['1970-01-01T00:00:00+00:00', '2026-03-01T07:00:00.123000+00:00', '9999-12-31T23:59:59.999000+00:00'])
    expect([isoInstant(0), isoInstant(1_772_348_400_123), isoInstant(firstMs)]).toEqual(['1970-01-01T00:00:00.000Z', '2026-03-01T07:00:00.123Z', '0000-01-01T00:00:00.000Z'])
  }, 60_000)
})
