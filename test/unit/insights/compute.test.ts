import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { computeInsights, type IdentifiedSample, type InsightRowSet } from '../../../processors/insights/compute.ts'
import { addDays } from '../../../processors/insights/days.ts'
import { affectedRange, touchedDays } from '../../../processors/insights/touched.ts'
import { InsightRows, STAGES, type Sample } from '../../../streams/schemas.ts'
import { exportRecords, exportSamples } from '../../helpers/export-fixture.ts'
import { hrv, identified, stage } from './build.ts'

const FIXTURES = new URL('../../fixtures/', import.meta.url)
const xml = readFileSync(new URL('healthkit-export-30-nights.xml', FIXTURES), 'utf8')
const expected = JSON.parse(readFileSync(new URL('healthkit-export-30-nights.expected.json', FIXTURES), 'utf8')) as Record<string, Record<string, unknown>>
const fixture = exportSamples(xml)

type Row = Record<string, unknown>
const byKey = (rows: readonly Row[], key: (r: Row) => string = (r) => String(r.day)) => Object.fromEntries(rows.map((r) => [key(r), r]))
const tables = (r: InsightRowSet) => ({
  sleep_daily: byKey(r.sleepDaily),
  hrv_daily: byKey(r.hrvDaily, (x) => `${x.day}|${x.metric}`),
  readiness_daily: byKey(r.readiness),
  user_baselines: r.userBaseline as Row | undefined,
  user_cpt_tables: r.userCpt as Row | undefined,
})

/** Every field of `want` (recursively) in `got`; numbers to 1e-9, everything else exactly. */
function expectFields(got: unknown, want: unknown, path: string): void {
  if (typeof want === 'number') {
    expect(typeof got, path).toBe('number')
    expect(Math.abs((got as number) - want), `${path}: ${String(got)} vs ${want}`).toBeLessThanOrEqual(1e-9)
  } else if (want !== null && typeof want === 'object') {
    expect(got, path).toBeTypeOf('object')
    if (Array.isArray(want)) expect((got as unknown[]).length, path).toBe(want.length)
    for (const [k, v] of Object.entries(want)) expectFields((got as Record<string, unknown>)[k], v, `${path}.${k}`)
  } else expect(got, path).toEqual(want)
}

/** The same nights again, `days` later, under new ids: a longer history for the window tests. */
const shifted = (samples: readonly IdentifiedSample[], days: number, tag: string): IdentifiedSample[] =>
  samples.map(({ id, sample }) => ({
    id: `${id}+${tag}`,
    sample: { ...sample, start: new Date(Date.parse(sample.start) + days * 86_400_000).toISOString(), end: new Date(Date.parse(sample.end) + days * 86_400_000).toISOString() },
  }))
const history = [...fixture, ...shifted(fixture, 30, 'a'), ...shifted(fixture, 60, 'b'), ...shifted(fixture, 90, 'c')]

/** Fisher–Yates with a seeded generator (mulberry32), so fast-check can shrink the seed. */
function shuffle<T>(items: readonly T[], seed: number): T[] {
  const out = [...items]
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

describe('the 30-night export (fixtures/healthkit-export-30-nights.expected.json)', () => {
  const got = tables(computeInsights(fixture))

  it('reads the records the fixture counts', () => {
    const counts: Record<string, number> = {}
    for (const r of exportRecords(xml)) counts[r.type!] = (counts[r.type!] ?? 0) + 1
    expect(counts).toEqual(expected.records)
    expect(fixture).toHaveLength(436 + 92)
  })

  it.each(['sleep_daily', 'hrv_daily', 'readiness_daily'] as const)('reproduces every %s row and no other', (table) => {
    expect(Object.keys(got[table]).sort()).toEqual(Object.keys(expected[table]!).sort())
    expectFields(got[table], expected[table], table)
  })

  it.each(['user_baselines', 'user_cpt_tables'] as const)('reproduces %s', (table) => {
    expectFields(got[table], expected[table], table)
  })

  it('writes rows with exactly the columns of the insight schemas', () => {
    const r = computeInsights(fixture)
    const check = (kind: keyof typeof InsightRows, rows: readonly object[]) => {
      for (const row of rows) {
        expect(Object.keys(row).sort()).toEqual(Object.keys(InsightRows[kind].shape).sort())
        expect(InsightRows[kind].parse(row)).toEqual(row)
      }
    }
    check('sleep_daily', r.sleepDaily)
    check('hrv_daily', r.hrvDaily)
    check('baseline_history', r.baselineHistory)
    check('readiness_daily', r.readiness)
    check('baseline', [r.userBaseline!])
    check('cpt', [r.userCpt!])
    expect(r.baselineHistory).toHaveLength(30)
  })
})

describe('computeInsights is a function of the set of samples (docs/insights.md §0)', () => {
  const full = computeInsights(fixture)

  it('never changes with the order of the samples', () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        expect(computeInsights(shuffle(fixture, seed))).toEqual(full)
      }),
      { numRuns: 25 },
    )
  }, 60_000)

  it('never changes when samples arrive more than once', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(fixture.length - 1), { minLength: 1, maxLength: 200 }), fc.integer(), (again, seed) => {
        expect(computeInsights(shuffle([...fixture, ...again.map((i) => fixture[i]!)], seed))).toEqual(full)
      }),
      { numRuns: 25 },
    )
  }, 60_000)

  it('holds for arbitrary overlapping samples, offsets and both metrics too', () => {
    const minute = (m: number) => new Date(Date.parse('2026-03-01T00:00:00Z') + m * 60_000).toISOString()
    const offset = fc.constantFrom(-480, -420, 0, 60, 540)
    const sleep = fc
      .record({ s: fc.constantFrom(...STAGES), at: fc.integer({ min: 0, max: 5 * 1440 }), dur: fc.integer({ min: 0, max: 600 }), offset })
      .map(({ s, at, dur, offset }): Sample => stage(s, minute(at), minute(at + dur), offset))
    const reading = fc
      .record({
        metric: fc.constantFrom('hrv_sdnn' as const, 'hrv_rmssd' as const),
        at: fc.integer({ min: 0, max: 5 * 1440 }),
        value: fc.double({ min: 5, max: 200, noNaN: true }),
        offset,
      })
      .map(({ metric, at, value, offset }) => hrv(value, minute(at), offset, metric))
    fc.assert(
      fc.property(fc.array(fc.oneof(sleep, reading), { maxLength: 60 }), fc.array(fc.nat(59), { maxLength: 10 }), fc.integer(), (samples, again, seed) => {
        const all = identified(samples)
        const twice = [...all, ...again.filter((i) => i < all.length).map((i) => all[i]!)]
        expect(computeInsights(shuffle(twice, seed))).toEqual(computeInsights(all))
      }),
      { numRuns: 200 },
    )
  }, 60_000)
})

describe('recomputing part of the days (docs/insights.md §6)', () => {
  const full = computeInsights(history)
  const first = history.reduce((m, s) => (s.sample.start < m ? s.sample.start : m), history[0]!.sample.start).slice(0, 10)
  const day = (n: number) => addDays(first, n)

  it('gives the same rows for the days asked as computing everything', () => {
    fc.assert(
      fc.property(fc.nat(125), fc.nat(125), (a, b) => {
        const days = { from: day(Math.min(a, b)), to: day(Math.max(a, b)) }
        const part = computeInsights(history, { days })
        const inside = <R extends { day: string }>(rows: readonly R[]) => rows.filter((r) => r.day >= days.from && r.day <= days.to)
        expect(part).toEqual({
          ...full,
          sleepDaily: inside(full.sleepDaily),
          hrvDaily: inside(full.hrvDaily),
          baselineHistory: inside(full.baselineHistory),
          readiness: inside(full.readiness),
        })
      }),
      { numRuns: 30 },
    )
  }, 60_000)

  it('leaves every row outside the touched range as it was, and the range can be computed from the samples of the 63 days before it', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.nat(history.length - 1), { minLength: 1, maxLength: 15 }), (added) => {
        const isAdded = new Set(added)
        const before = computeInsights(history.filter((_, i) => !isAdded.has(i)))
        const range = affectedRange(added.flatMap((i) => touchedDays(history[i]!.sample)))
        const outsideDaily = (d: string) => !range.daily.has(d)
        const outsideDerived = (d: string) => d < range.derivedFrom || d > range.derivedTo
        const keep = <R extends { day: string }>(rows: readonly R[], outside: (d: string) => boolean) => rows.filter((r) => outside(r.day))
        expect(keep(full.sleepDaily, outsideDaily)).toEqual(keep(before.sleepDaily, outsideDaily))
        expect(keep(full.hrvDaily, outsideDaily)).toEqual(keep(before.hrvDaily, outsideDaily))
        expect(keep(full.baselineHistory, outsideDerived)).toEqual(keep(before.baselineHistory, outsideDerived))
        expect(keep(full.readiness, outsideDerived)).toEqual(keep(before.readiness, outsideDerived))

        // what the engine does: load the samples starting on or after first touched day − 63, compute the range
        const since = `${addDays(range.first, -63)}T00:00:00Z`
        const loaded = history.filter((s) => Date.parse(s.sample.start) >= Date.parse(since))
        const part = computeInsights(loaded, { days: { from: range.derivedFrom, to: range.derivedTo } })
        const within = <R extends { day: string }>(rows: readonly R[]) => rows.filter((r) => r.day >= range.derivedFrom && r.day <= range.derivedTo)
        expect(part.sleepDaily).toEqual(within(full.sleepDaily))
        expect(part.hrvDaily).toEqual(within(full.hrvDaily))
        expect(part.baselineHistory).toEqual(within(full.baselineHistory))
        expect(part.readiness).toEqual(within(full.readiness))
        expect([part.userBaseline, part.userCpt]).toEqual([full.userBaseline, full.userCpt])
      }),
      { numRuns: 40 },
    )
  }, 60_000)

  it('reaches back to D−1: a sample after midnight can move the night of D−1 to D', () => {
    // night core 2026-03-09 20:00–23:30 (210 min, valid) with a reading of 50 ms at 21:00: readiness of 03-09 has both parents
    const night = [stage('core', '2026-03-09T20:00:00Z', '2026-03-09T23:30:00Z'), hrv(50, '2026-03-09T21:00:00Z')]
    // core 00:10–01:00 on 03-10 starts 40 min after the episode's end: it joins, and the night is now 03-10's
    const late = stage('core', '2026-03-10T00:10:00Z', '2026-03-10T01:00:00Z')
    expect(touchedDays(late)).toEqual(['2026-03-10'])
    const before = computeInsights(identified(night))
    const after = computeInsights(identified([...night, late]))
    expect(before.readiness.find((r) => r.day === '2026-03-09')?.sleep_state).not.toBeNull()
    expect(after.readiness.find((r) => r.day === '2026-03-09')?.sleep_state).toBeNull()
    expect(after.hrvDaily.find((r) => r.day === '2026-03-09')?.basis).toBe('day')
    expect(affectedRange(touchedDays(late)).derivedFrom).toBe('2026-03-09')
  })
})
