import { arrayJson } from '../../../streams/envelope.ts'
import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { medianInPlace, parseClockTime, placeExportBeats, rawFigures, rmssdOfSeries } from '../../../processors/normalize/beats.ts'
import { readExport, type ExportSample } from '../../../ingest/healthkit-export/reader.ts'
import { normalizeBatch, parseBatchEnvelope } from '../../../processors/normalize/healthkit.ts'

const dir = new URL('../../fixtures/beats/', import.meta.url)
const expected = JSON.parse(readFileSync(new URL('expected.json', dir), 'utf8')) as {
  'rest-rri.txt': { intervals: number; raw_sdnn_ms: number; raw_rmssd_ms: number }
  'heartbeat-series.json': Record<string, { rmssd_ms?: number; start?: string; end?: string; rejected?: string }>
}
const RR = readFileSync(new URL('rest-rri.txt', dir), 'utf8').split(/\s+/).filter(Boolean).map(Number)
const SERIES = JSON.parse(readFileSync(new URL('heartbeat-series.json', dir), 'utf8')) as { batchId: string; samples: Array<Record<string, unknown>> }

const close = (a: number | undefined, b: number) => expect(Math.abs((a ?? NaN) - b)).toBeLessThanOrEqual(1e-9)

/** beat times from intervals (ms), starting at 0 */
const timesOf = (rr: readonly number[]) => rr.reduce<number[]>((t, v) => [...t, t[t.length - 1]! + v], [0])
/** RMSSD by the book: the root mean square of the given differences */
const rms = (d: readonly number[]) => Math.sqrt(d.reduce((s, x) => s + x * x, 0) / d.length)
/** an alternating rhythm: 1000, 1010, 1000, 1010… every difference ±10 */
const alternating = (n: number): number[] => Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 1000 : 1010))

describe('the raw figures of rest-rri.txt (fixtures/beats)', () => {
  it('are the SDNN and RMSSD the source project publishes, to 1e-9', () => {
    expect(RR).toHaveLength(expected['rest-rri.txt'].intervals)
    const f = rawFigures(RR)
    close(f.sdnn, expected['rest-rri.txt'].raw_sdnn_ms)
    close(f.rmssd, expected['rest-rri.txt'].raw_rmssd_ms)
  })
})

describe('rmssdOfSeries: hand-worked cases', () => {
  it('takes the root mean square of successive differences of exact times', () => {
    // 21 alternating intervals: 20 differences of ±10 ms → RMSSD 10
    const r = rmssdOfSeries({ times: timesOf(alternating(21)), resolutionMs: 0 })
    // 11 intervals of 1000 and 10 of 1010: the median is 1000
    expect(r).toMatchObject({ intervals: 21, usable: 21, clean: 21, differences: 20, medianMs: 1000 })
    close(r.rmssd, 10)
  })

  it('needs 20 differences: 19 give no value, 20 give one', () => {
    const nineteen = rmssdOfSeries({ times: timesOf(alternating(20)), resolutionMs: 0 })
    expect(nineteen.differences).toBe(19)
    expect(nineteen.rmssd).toBeUndefined()
    expect(nineteen.problem).toBe('21 beats give fewer than 20 clean successive differences (19)')
    const twenty = rmssdOfSeries({ times: timesOf(alternating(21)), resolutionMs: 0 })
    expect(twenty.differences).toBe(20)
    close(twenty.rmssd, 10)
  })

  it('drops the interval after a gap, and the gap breaks the pairs on both sides', () => {
    // 24 intervals of 1000/1010; a gap before beat 12 drops RR_12: d_12 and d_13 go, 23 − 2 = 21 differences remain
    const times = timesOf(alternating(24))
    const gaps: boolean[] = []
    gaps[12] = true
    const r = rmssdOfSeries({ times, gaps, resolutionMs: 0 })
    expect(r).toMatchObject({ intervals: 24, usable: 23, clean: 23, differences: 21 })
    close(r.rmssd, 10)
  })

  it('drops an interval out of 300–2000 ms (and keeps 300 and 2000 themselves)', () => {
    // a lost beat: one interval of 2010 ms (out), among 1000/1010: 24 intervals, 23 usable, 21 differences
    const rr = alternating(24)
    rr[10] = 2010
    const r = rmssdOfSeries({ times: timesOf(rr), resolutionMs: 0 })
    expect(r).toMatchObject({ usable: 23, clean: 23, differences: 21 })
    close(r.rmssd, 10)
    // 2000 is usable but far outside the clean band of a 1000 ms rhythm: usable, not clean
    rr[10] = 2000
    expect(rmssdOfSeries({ times: timesOf(rr), resolutionMs: 0 })).toMatchObject({ usable: 24, clean: 23, differences: 21 })
  })

  it('drops an ectopic beat and its compensatory pause (|RR − M| > 20 % of M), keeping the rest', () => {
    // rhythm 1000/1010 with a premature beat: RR 600 (ectopic) then 1400 (pause); M = 1010 with both in:
    // 600 and 1400 are 410 and 390 away (> 202): not clean; the pairs touching them go (3 differences)
    const rr = [...alternating(12), 600, 1400, ...alternating(12)]
    const r = rmssdOfSeries({ times: timesOf(rr), resolutionMs: 0 })
    expect(r).toMatchObject({ intervals: 26, usable: 26, clean: 24, differences: 22 })
    // the differences kept: 11 inside each run (±10) → RMSSD 10; with the ectopic pair in it would be far higher
    close(r.rmssd, 10)
    const d = rr.slice(1).map((v, i) => v - rr[i]!)
    expect(rms(d)).toBeGreaterThan(100)
  })

  it('takes the mean of the two middle values for an even count', () => {
    expect(medianInPlace(new Float64Array([1000, 700, 900, 800]))).toBe(850)
    expect(medianInPlace(new Float64Array([3, 1, 2]))).toBe(2)
    // the band follows the even median: M = (800 + 1200) / 2 = 1000, band 200: 800 and 1200 clean, 1201 not
    const rr = [...Array.from({ length: 11 }, () => 800), ...Array.from({ length: 11 }, () => 1200)]
    const even = rmssdOfSeries({ times: timesOf(rr), resolutionMs: 0 })
    expect(even).toMatchObject({ medianMs: 1000, clean: 22, differences: 21 })
    // 20 differences of 0 and one of 400: sqrt(400² / 21)
    close(even.rmssd, Math.sqrt(400 ** 2 / 21))
    rr[21] = 1201
    expect(rmssdOfSeries({ times: timesOf(rr), resolutionMs: 0 })).toMatchObject({ medianMs: 1000, clean: 21 })
  })

  it('removes q²/2 for times rounded to a step q: q = 10 ms vs exact', () => {
    // the same beats, exact and written in 10 ms steps: mean(d²) = 100 → exact 10; with q = 10: sqrt(100 − 50)
    const times = timesOf(alternating(21))
    close(rmssdOfSeries({ times, resolutionMs: 0 }).rmssd, 10)
    close(rmssdOfSeries({ times, resolutionMs: 10 }).rmssd, Math.sqrt(50))
    // never below zero: a constant rhythm in 10 ms steps
    const flat = timesOf(Array.from({ length: 21 }, () => 1000))
    expect(rmssdOfSeries({ times: flat, resolutionMs: 10 }).rmssd).toBeUndefined() // 0 is out of 1..500
  })

  it('corrects rounding in expectation: a rhythm rounded to 10 ms gives back its exact RMSSD', () => {
    // a seeded rhythm with a true RMSSD of ~30 ms, its beats rounded to 10 ms: the corrected figure lands near
    // the exact one, the uncorrected one above it (rounding only adds variance)
    let seed = 7
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
    const rr = Array.from({ length: 4000 }, () => 950 + random() * 60 + (random() - 0.5) * 40)
    const exact = timesOf(rr)
    const rounded = exact.map((t) => Math.round(t / 10) * 10)
    const truth = rmssdOfSeries({ times: exact, resolutionMs: 0 }).rmssd!
    const naive = rmssdOfSeries({ times: rounded, resolutionMs: 0 }).rmssd!
    const corrected = rmssdOfSeries({ times: rounded, resolutionMs: 10 }).rmssd!
    expect(Math.abs(corrected - truth)).toBeLessThan(0.5)
    expect(naive - truth).toBeGreaterThan(Math.abs(corrected - truth))
  })

  it('gives nothing for a value out of 1..500 ms, and says so', () => {
    // alternating 300/2000 are all usable; M = 1150, band 230: none clean → no differences at all
    const wild = rmssdOfSeries({ times: timesOf(Array.from({ length: 30 }, (_, i) => (i % 2 ? 300 : 2000))), resolutionMs: 0 })
    expect(wild.rmssd).toBeUndefined()
    expect(wild.differences).toBe(0)
  })
})

describe('the heartbeat series of heartbeat-series.json (fixtures/beats)', () => {
  const batch = parseBatchEnvelope(SERIES, { maxSamples: 1000 })
  const r = normalizeBatch(batch, { userId: 'ana', ingestId: 'i', now: new Date('2026-03-03T00:00:00Z') })

  it("derives one hrv_rmssd sample a series, to 1e-9, from T_0 to T_n, in the series' offset, with its uuid", () => {
    const [a, b] = r.samples
    const first = expected['heartbeat-series.json']['samples[0]']!
    close(a!.sample.value, first.rmssd_ms!)
    expect(a!.sample).toMatchObject({
      metric: 'hrv_rmssd',
      start: new Date(first.start!).toISOString(),
      end: new Date(first.end!).toISOString(),
      utcOffsetMinutes: -480,
      source: { name: 'Apple Watch' },
      externalId: SERIES.samples[0]!.uuid,
    })
    // beats 100 and 500 preceded by gaps: their intervals dropped, the rest as in the first
    close(b!.sample.value, expected['heartbeat-series.json']['samples[1]']!.rmssd_ms!)
    expect(new Set(r.samples.map((s) => s.id)).size).toBe(r.samples.length)
  })

  it('the third, 22 beats (21 intervals, all clean), sits on the bound: exactly 20 differences, a value; one beat fewer is a rejection naming it', () => {
    // expected.json calls it a rejection of "21 beats"; it holds 22 beats, and the rule (at least 20 differences) accepts
    // its 20 (docs/insights.md §2a): the boundary is tested from both sides here instead
    const beats = SERIES.samples[2]!.beats as Array<{ t: number }>
    expect(beats).toHaveLength(22)
    expect(rmssdOfSeries({ times: beats.map((x) => x.t * 1000), resolutionMs: 0 }).differences).toBe(20)
    expect(r.accepted).toBe(3)
    expect(r.derived).toBe(3)
    expect(r.rejected).toEqual([])
    const shorter = { samples: [{ ...SERIES.samples[2], beats: beats.slice(0, 21) }] }
    const s = normalizeBatch(parseBatchEnvelope(shorter, { maxSamples: 10 }), { userId: 'ana', ingestId: 'i', now: new Date('2026-03-03T00:00:00Z') })
    expect(s.rejected).toEqual([{ index: 0, problem: '21 beats give fewer than 20 clean successive differences (19)' }])
    expect(s.rejected[0]!.problem).toContain(expected['heartbeat-series.json']['samples[2]']!.rejected!)
    expect(s.samples).toEqual([])
  })
})

describe('export beat lists: clock times', () => {
  it('reads 12- and 24-hour times, . or , before the fraction, exactly', () => {
    expect(parseClockTime('11:58:31.11 PM')).toEqual({ ms: ((23 * 60 + 58) * 60 + 31) * 1000 + 110, fractionDigits: 2 })
    expect(parseClockTime('12:00:01,83 AM')).toEqual({ ms: 1830, fractionDigits: 2 })
    expect(parseClockTime('12:30:00.5 PM')).toEqual({ ms: 12.5 * 3_600_000 + 500, fractionDigits: 1 })
    expect(parseClockTime('23:59:59,999')).toEqual({ ms: 86_399_999, fractionDigits: 3 })
    expect(parseClockTime('07:05:09')).toEqual({ ms: (7 * 3600 + 5 * 60 + 9) * 1000, fractionDigits: 0 })
    for (const bad of ['24:00:00.00', '13:00:00.00 PM', '0:00:00.00 AM', '1:60:00.00', 'noon', '']) expect(parseClockTime(bad)).toBeUndefined()
  })

  it('places a list crossing midnight on the nearest days, in order; q from the most fraction digits', () => {
    // a record starting 23:58:30 local: 11:59:59 PM stays on its day, 12:00:01 AM goes to the next
    const start = ((23 * 60 + 58) * 60 + 30) * 1000
    const placed = placeExportBeats(['11:58:30.00 PM', '11:59:59.5 PM', '12:00:01.25 AM'], start)!
    expect(placed.times).toEqual([start, 86_399_500, 86_401_250])
    expect(placed.resolutionMs).toBe(10)
    // a record starting just after midnight with a beat just before it: the day before
    expect(placeExportBeats(['23:59:59.00', '00:00:01.00'], 1000)!.times).toEqual([-1000, 1000])
    // no fraction anywhere: nothing to derive
    expect(placeExportBeats(['1:00:00 AM', '1:00:01 AM', '1:00:02 AM'], 3_600_000)).toBeUndefined()
    expect(() => placeExportBeats(['1:00:00.00 AM', 'soon'], 3_600_000)).toThrow(/beat 1 time 'soon' is not a clock time/)
  })
})

describe('properties', () => {
  const rhythm = fc.array(fc.double({ min: 700, max: 1100, noNaN: true }), { minLength: 25, maxLength: 120 })

  it('the derived sample does not depend on batch boundaries, resends or arrival order', () => {
    const sample = (i: number, rr: number[]) => ({
      uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
      type: 'HKDataTypeIdentifierHeartbeatSeries',
      sourceName: 'Apple Watch',
      startDate: `2026-03-0${1 + (i % 5)}T0${i % 10}:00:00.000-08:00`,
      endDate: `2026-03-0${1 + (i % 5)}T0${i % 10}:59:59.000-08:00`,
      beats: timesOf(rr).map((t) => ({ t: Math.round(t) / 1000 })),
    })
    fc.assert(
      fc.property(fc.array(rhythm, { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 0, max: 1000 }), (rhythms, cut, seed) => {
        const all = rhythms.map((rr, i) => sample(i, rr))
        const derive = (samples: unknown[]) =>
          normalizeBatch(parseBatchEnvelope({ samples }, { maxSamples: 100 }), { userId: 'u', ingestId: 'x', now: new Date('2026-04-01T00:00:00Z') }).samples
        const byId = (list: ReturnType<typeof derive>) => new Map(list.map((s) => [s.id, JSON.stringify({ ...s.sample, ingestId: '' })]))
        const whole = byId(derive(all))
        // cut into batches, with some samples resent and the batches in another order
        const batches: unknown[][] = []
        for (let i = 0; i < all.length; i += cut) batches.push(all.slice(i, i + cut))
        const resent = [...batches, all.slice(seed % all.length, (seed % all.length) + 2)]
        const shuffled = resent
          .map((b, i) => ({ b, k: (i * 7919 + seed) % 101 }))
          .sort((x, y) => x.k - y.k)
          .map((x) => x.b)
        const pieces = new Map<string, string>()
        for (const b of shuffled) for (const [id, s] of byId(derive(b))) pieces.set(id, s)
        expect(pieces).toEqual(whole)
      }),
      { numRuns: 60 },
    )
  })

  it('the value depends on the intervals only, never on where the series starts', () => {
    fc.assert(
      fc.property(rhythm, fc.double({ min: -1e7, max: 1e7, noNaN: true }), (rr, shift) => {
        const times = timesOf(rr)
        const a = rmssdOfSeries({ times, resolutionMs: 0 })
        const b = rmssdOfSeries({ times: times.map((t) => t + Math.round(shift)), resolutionMs: 0 })
        expect(b.differences).toBe(a.differences)
        if (a.rmssd !== undefined) expect(Math.abs(b.rmssd! - a.rmssd)).toBeLessThan(1e-6)
      }),
    )
  })
})

describe('what healthkit-export-beats.xml yields (fixtures/beats)', () => {
  const want = (
    JSON.parse(readFileSync(new URL('expected.json', dir), 'utf8')) as {
      'healthkit-export-beats.xml': { records: number; sdnn_samples: number; derived_rmssd_samples: number; derived: { rmssd_ms: number; q_ms: number } }
    }
  )['healthkit-export-beats.xml']
  const xml = readFileSync(new URL('healthkit-export-beats.xml', dir))

  async function imported(bytes: Uint8Array) {
    const reader = readExport(
      (async function* () {
        yield bytes
      })(),
      { format: 'xml', batchSize: 1000 },
    )
    const samples: ExportSample[] = []
    for await (const b of reader.batches) samples.push(...(JSON.parse(arrayJson(b.texts)) as ExportSample[]))
    return {
      counts: reader.counts,
      samples,
      r: normalizeBatch(parseBatchEnvelope({ samples }, { maxSamples: 1000 }), { userId: 'ana', ingestId: 'i', now: new Date('2026-03-05T18:00:00Z') }),
    }
  }

  it('keeps both SDNN samples and derives one RMSSD sample, to 1e-9, crossing midnight in 10 ms steps', async () => {
    const { counts, samples, r } = await imported(xml)
    expect(counts.records).toEqual({ HKQuantityTypeIdentifierHeartRateVariabilitySDNN: want.records })
    expect(samples[0]!.beatTimes).toHaveLength(911)
    // the 2-beat list of the second record is left out of the batch: nothing to derive from it, and no error
    expect(samples[1]!.beatTimes).toBeUndefined()
    expect(r.rejected).toEqual([])
    expect(r.derived).toBe(want.derived_rmssd_samples)
    const sdnn = r.samples.filter((s) => s.sample.metric === 'hrv_sdnn')
    const rmssd = r.samples.filter((s) => s.sample.metric === 'hrv_rmssd')
    expect(sdnn.map((s) => s.sample.value)).toEqual([57.8182, 41.2])
    expect(sdnn).toHaveLength(want.sdnn_samples)
    expect(rmssd).toHaveLength(1)
    close(rmssd[0]!.sample.value, want.derived.rmssd_ms)
    // 11:58:30.00 PM on 03-01 to 12:14:33.43 AM on 03-02, at −08:00
    expect(rmssd[0]!.sample).toMatchObject({ start: '2026-03-02T07:58:30.000Z', end: '2026-03-02T08:14:33.430Z', utcOffsetMinutes: -480, source: { name: 'Apple Watch' } })
    // q = 10 ms: the uncorrected figure is larger by exactly the q²/2 term
    const times = samples[0]!.beatTimes!.map((t) => parseClockTime(t)!.ms)
    expect(placeExportBeats(samples[0]!.beatTimes!, times[0]!)!.resolutionMs).toBe(want.derived.q_ms)
  })

  it('gives the same sample whatever the separator and clock: 24-hour times with , before the fraction', async () => {
    const to24 = (t: string) => {
      const c = parseClockTime(t)!
      const h = Math.floor(c.ms / 3_600_000)
      return `${String(h).padStart(2, '0')}${t
        .replace(/^\d{1,2}/, '')
        .replace(/ [AP]M$/, '')
        .replace('.', ',')}`
    }
    const other = Buffer.from(xml.toString('utf8').replace(/time="([^"]+)"/g, (_, t: string) => `time="${to24(t)}"`))
    expect(other.toString('utf8')).toContain('time="00:00:01,83"')
    const a = (await imported(xml)).r.samples
    const b = (await imported(other)).r.samples
    expect(b.map((s) => [s.id, s.sample.value, s.sample.start, s.sample.end])).toEqual(a.map((s) => [s.id, s.sample.value, s.sample.start, s.sample.end]))
  })
})

describe('heartbeat series checks (POST /samples): each failure a rejection naming it', () => {
  const base = { type: 'HKDataTypeIdentifierHeartbeatSeries', sourceName: 'Apple Watch', startDate: '2026-03-02T01:00:00-08:00', endDate: '2026-03-02T01:00:30-08:00' }
  const good = timesOf(alternating(25)).map((t) => ({ t: t / 1000 }))
  const problem = (sample: Record<string, unknown>) =>
    normalizeBatch(parseBatchEnvelope({ samples: [sample] }, { maxSamples: 10 }), { userId: 'u', ingestId: 'i', now: new Date('2026-03-03T00:00:00Z') }).rejected[0]?.problem

  it('accepts a good series', () => expect(problem({ ...base, beats: good })).toBeUndefined())
  it.each([
    ['no beats', {}, 'beats is missing'],
    ['beats not an array', { beats: 'x' }, 'beats is not an array'],
    ['1 beat', { beats: [{ t: 0 }] }, 'beats must have 2..10000 entries (has 1)'],
    ['10,001 beats', { beats: Array.from({ length: 10_001 }, (_, i) => ({ t: i * 0.001 })) }, 'beats must have 2..10000 entries (has 10001)'],
    ['a beat not an object', { beats: [{ t: 0 }, 3] }, 'beats[1] is not an object'],
    ['t not finite', { beats: [{ t: 0 }, { t: 'x' }] }, "beats[1].t 'x' is not a finite number"],
    ['t missing', { beats: [{ t: 0 }, {}] }, 'beats[1].t (undefined) is not a finite number'],
    ['t negative', { beats: [{ t: -0.5 }, { t: 1 }] }, 'beats[0].t -0.5 is negative'],
    ['t not increasing', { beats: [{ t: 0 }, { t: 1 }, { t: 1 }] }, 'beats[2].t 1 is not after beats[1].t 1'],
    ['t after endDate + 1 s', { beats: [{ t: 0 }, { t: 31.001 }] }, 'beats[1].t 31.001 is later than endDate + 1 s'],
    ['a gap flag not a boolean', { beats: [{ t: 0 }, { t: 1, precededByGap: 'yes' }] }, 'beats[1].precededByGap is not a boolean'],
    ['too few differences', { beats: good.slice(0, 21) }, '21 beats give fewer than 20 clean successive differences (19)'],
  ])('%s', (_, over, want) => expect(problem({ ...base, ...over })).toBe(want))

  it('a value outside 1..500 ms', () => {
    // 12 × 1400 and 12 × 2000 alternating: M = 1700, both 300 from it (band 340), every difference ±600 → 600 ms
    const wide = timesOf(Array.from({ length: 24 }, (_, i) => (i % 2 ? 1400 : 2000)))
    expect(problem({ ...base, endDate: '2026-03-02T01:01:00-08:00', beats: wide.map((t) => ({ t: t / 1000 })) })).toMatch(
      /^derived RMSSD 600(\.0+\d*)? ms out of range 1\.\.500 ms$/,
    )
    const flat = timesOf(Array.from({ length: 25 }, () => 1000))
    expect(problem({ ...base, beats: flat.map((t) => ({ t: t / 1000 })) })).toMatch(/^derived RMSSD 0 ms out of range 1\.\.500 ms$/)
  })

  it('t exactly at endDate + 1 s is accepted', () => {
    const ts = timesOf(alternating(25)).map((t) => t / 1000)
    const end = ts[ts.length - 1]! - 1
    expect(problem({ ...base, endDate: new Date(Date.parse('2026-03-02T09:00:00Z') + end * 1000).toISOString(), beats: ts.map((t) => ({ t })) })).toBeUndefined()
  })
})
