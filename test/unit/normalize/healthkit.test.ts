import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ValidationError } from '../../../errors.ts'
import {
  batchEnvelopeSchema,
  isPlainBatchEnvelope,
  normalizeBatch,
  parseBatchEnvelope,
  parseDate,
  type BatchEnvelope,
  type NormalizeResult,
} from '../../../processors/normalize/healthkit.ts'
import { hashUuid, isUuid } from '../../../streams/ids.ts'
import { Sample } from '../../../streams/schemas.ts'

const SDNN = 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN'
const RMSSD = 'HPHQuantityTypeIdentifierHeartRateVariabilityRMSSD'
const RESTING = 'HKQuantityTypeIdentifierRestingHeartRate'
const HR = 'HKQuantityTypeIdentifierHeartRate'
const SLEEP = 'HKCategoryTypeIdentifierSleepAnalysis'

const now = new Date('2026-03-10T00:00:00Z')
const ctx = { userId: 'ana', ingestId: 'ing-1', now }
const run = (samples: unknown[], source?: BatchEnvelope['source']) => normalizeBatch({ samples, ...(source ? { source } : {}) }, ctx)
const quantity = (type: string, value: unknown, unit: unknown, startDate: unknown = '2026-03-01T02:14:00-08:00', endDate: unknown = '2026-03-01T02:15:00-08:00') => ({
  type,
  value,
  unit,
  startDate,
  endDate,
})
const sleep = (value: unknown, startDate: unknown = '2026-03-01T01:00:00-08:00', endDate: unknown = '2026-03-01T01:30:00-08:00') => ({ type: SLEEP, value, startDate, endDate })
/** The only sample of a one-sample batch, failing loudly when it was not normalised. */
const only = (raw: unknown) => {
  const r = run([raw])
  expect(r.rejected).toEqual([])
  expect(r.samples).toHaveLength(1)
  return r.samples[0]!
}

describe('the example batch of docs/api.md §3', () => {
  it('gives the two canonical samples, written out in full', () => {
    const body = {
      batchId: '7f6c0e2a-2b1e-4d07-9a59-1b2f3c4d5e6f',
      source: { name: 'Apple Watch', bundleId: 'com.apple.health.5C8D', device: 'Watch6,2' },
      samples: [
        { uuid: '3A1F…', type: SDNN, value: 48.2, unit: 'ms', startDate: '2026-03-01T02:14:00-08:00', endDate: '2026-03-01T02:15:00-08:00' },
        {
          uuid: '9B2C…',
          type: SLEEP,
          value: 'HKCategoryValueSleepAnalysisAsleepDeep',
          startDate: '2026-03-01T01:02:00-08:00',
          endDate: '2026-03-01T01:31:30-08:00',
          sourceName: 'iPhone',
          sourceBundleId: 'com.apple.health.1A2B',
        },
      ],
    }
    const r = normalizeBatch(parseBatchEnvelope(body, { maxSamples: 10_000 }), ctx)
    expect(r).toStrictEqual({
      samples: [
        {
          id: hashUuid('uuid', 'ana', '3A1F…'),
          sample: {
            userId: 'ana',
            metric: 'hrv_sdnn',
            start: '2026-03-01T10:14:00.000Z',
            end: '2026-03-01T10:15:00.000Z',
            utcOffsetMinutes: -480,
            value: 48.2,
            source: { name: 'Apple Watch', bundleId: 'com.apple.health.5C8D', device: 'Watch6,2' },
            externalId: '3A1F…',
            ingestId: 'ing-1',
          },
        },
        {
          id: hashUuid('uuid', 'ana', '9B2C…'),
          sample: {
            userId: 'ana',
            metric: 'sleep_stage',
            start: '2026-03-01T09:02:00.000Z',
            end: '2026-03-01T09:31:30.000Z',
            utcOffsetMinutes: -480,
            stage: 'deep',
            source: { name: 'iPhone', bundleId: 'com.apple.health.1A2B' },
            externalId: '9B2C…',
            ingestId: 'ing-1',
          },
        },
      ],
      rejected: [],
      accepted: 2,
      ignored: 0,
      ignoredByType: {},
      derived: 0,
    })
    for (const s of r.samples) expect(Sample.parse(s.sample)).toStrictEqual(s.sample)
  })

  it('reads an export.xml record as the Health app writes it (strings for numbers, the export date form)', () => {
    const device = '<<HKDevice: 0x282a45810>, name:Apple Watch, manufacturer:Apple, model:Watch, hardware:Watch2,4, software:4.3.1>'
    const s = only({
      type: HR,
      sourceName: 'Apple Watch',
      sourceVersion: '4.3.1',
      device,
      unit: 'count/min',
      creationDate: '2018-09-10 02:47:35 -0700',
      startDate: '2018-09-10 02:28:55 -0700',
      endDate: '2018-09-10 02:28:55 -0700',
      value: '72',
    })
    expect(s).toStrictEqual({
      id: hashUuid('ana', 'heart_rate', 'Apple Watch', '2018-09-10T09:28:55.000Z', '2018-09-10T09:28:55.000Z', '72'),
      sample: {
        userId: 'ana',
        metric: 'heart_rate',
        start: '2018-09-10T09:28:55.000Z',
        end: '2018-09-10T09:28:55.000Z',
        utcOffsetMinutes: -420,
        value: 72,
        source: { name: 'Apple Watch', device },
        ingestId: 'ing-1',
      },
    })
  })
})

describe('types and units (docs/api.md §3)', () => {
  it.each([
    [SDNN, 48.2, 'ms', 'hrv_sdnn', 48.2],
    [SDNN, '38.9', 'ms', 'hrv_sdnn', 38.9],
    [SDNN, 0.0071, 's', 'hrv_sdnn', 7.1],
    [SDNN, '0.0657', 's', 'hrv_sdnn', 65.7],
    [RMSSD, 31, 'ms', 'hrv_rmssd', 31],
    [RMSSD, 0.031, 's', 'hrv_rmssd', 31],
    [RMSSD, '4.82e1', 'ms', 'hrv_rmssd', 48.2],
    [RESTING, 52, 'count/min', 'resting_hr', 52],
    [RESTING, '48.5', 'count/min', 'resting_hr', 48.5],
    [HR, 72, 'count/min', 'heart_rate', 72],
    [HR, '72', 'count/min', 'heart_rate', 72],
  ])('%s %j %s → %s %d', (type, value, unit, metric, expected) => {
    const { sample } = only(quantity(type, value, unit))
    expect(sample.metric).toBe(metric)
    // exact: seconds become milliseconds without a floating-point tail (0.0071 × 1000 = 7.1000000000000005)
    expect(sample.value).toBe(expected)
    expect('stage' in sample).toBe(false)
  })

  it.each([
    [0, 'in_bed'],
    [1, 'asleep'],
    [2, 'awake'],
    [3, 'core'],
    [4, 'deep'],
    [5, 'rem'],
    ['0', 'in_bed'],
    ['1', 'asleep'],
    ['2', 'awake'],
    ['3', 'core'],
    ['4', 'deep'],
    ['5', 'rem'],
    ['HKCategoryValueSleepAnalysisInBed', 'in_bed'],
    ['HKCategoryValueSleepAnalysisAsleepUnspecified', 'asleep'],
    ['HKCategoryValueSleepAnalysisAsleep', 'asleep'],
    ['HKCategoryValueSleepAnalysisAwake', 'awake'],
    ['HKCategoryValueSleepAnalysisAsleepCore', 'core'],
    ['HKCategoryValueSleepAnalysisAsleepDeep', 'deep'],
    ['HKCategoryValueSleepAnalysisAsleepREM', 'rem'],
  ])('sleep value %j → stage %s', (value, stage) => {
    const { sample } = only(sleep(value))
    expect(sample).toMatchObject({ metric: 'sleep_stage', stage })
    expect('value' in sample).toBe(false)
  })

  it('asks no unit of a sleep sample, and ignores one given', () => {
    expect(only({ ...sleep(4), unit: 'kg' }).sample.stage).toBe('deep')
  })

  it('counts every other type as ignored, per type, and neither normalises nor rejects it', () => {
    const r = run([
      quantity('HKQuantityTypeIdentifierStepCount', 10, 'count'),
      quantity(SDNN, 48, 'ms'),
      quantity('HKQuantityTypeIdentifierStepCount', 'not even a number', 'count'),
      { type: '__proto__' },
      { type: 'constructor' },
      { type: 'toString' },
      { type: 'hrv_sdnn' },
      { type: 'X'.repeat(200) },
    ])
    expect(r.samples.map((s) => s.sample.metric)).toEqual(['hrv_sdnn'])
    expect(r.rejected).toEqual([])
    expect(r.ignored).toBe(7)
    expect(r.ignoredByType).toStrictEqual(
      Object.fromEntries([
        ['HKQuantityTypeIdentifierStepCount', 2],
        ['__proto__', 1],
        ['constructor', 1],
        ['toString', 1],
        ['hrv_sdnn', 1],
        [`${'X'.repeat(128)}…`, 1],
      ]),
    )
    expect(Object.getPrototypeOf(r.ignoredByType)).toBe(Object.prototype)
  })
})

describe('dates', () => {
  /** parseDate's answer: the date, or its refusal's message */
  const outcome = (text: string) => {
    try {
      return parseDate(text, 'startDate')
    } catch (err) {
      return (err as Error).message
    }
  }
  const two = fc.integer({ min: 0, max: 99 }).map((n) => String(n).padStart(2, '0'))
  const fourDigits = fc.integer({ min: 0, max: 9999 }).map((n) => String(n).padStart(4, '0'))

  it.each([
    ['2026-03-01T02:14:00-08:00', '2026-03-01T10:14:00.000Z', -480],
    ['2026-03-01T02:14:00+05:30', '2026-02-28T20:44:00.000Z', 330],
    ['2026-03-01T02:14:00+0530', '2026-02-28T20:44:00.000Z', 330],
    ['2026-03-01T02:14:00Z', '2026-03-01T02:14:00.000Z', 0],
    ['2026-03-01T02:14:00-00:00', '2026-03-01T02:14:00.000Z', 0],
    ['2026-03-01T02:14:00.25Z', '2026-03-01T02:14:00.250Z', 0],
    ['2026-03-01T02:14:00.123456789+01:00', '2026-03-01T01:14:00.123Z', 60],
    ['2026-03-01T02:14:00+14:00', '2026-02-28T12:14:00.000Z', 840],
    ['2026-03-01T02:14:00-14:00', '2026-03-01T16:14:00.000Z', -840],
    ['2024-02-29T23:59:59-01:00', '2024-03-01T00:59:59.000Z', -60],
    ['2026-03-01 02:14:00 -0800', '2026-03-01T10:14:00.000Z', -480],
    ['2026-03-01 23:30:00 +0930', '2026-03-01T14:00:00.000Z', 570],
    ['2026-03-01 02:14:00 +0000', '2026-03-01T02:14:00.000Z', 0],
  ])('reads %s as %s with offset %d', (text, utc, offsetMinutes) => {
    const d = parseDate(text, 'startDate')
    expect(new Date(d.ms).toISOString()).toBe(utc)
    expect(Object.is(d.offsetMinutes, offsetMinutes)).toBe(true)
  })

  it.each([
    ['2026-03-01T02:14:00', 'startDate is not an ISO 8601 date with offset nor an export date'],
    ['2026-03-01 02:14:00', 'startDate is not an ISO 8601 date with offset nor an export date'],
    ['2026-03-01 02:14:00 -08:00', 'startDate is not an ISO 8601 date with offset nor an export date'],
    ['2026-03-01T02:14-08:00', 'startDate is not an ISO 8601 date with offset nor an export date'],
    ['2026-03-01T02:14:00+05', 'startDate is not an ISO 8601 date with offset nor an export date'],
    ['2026-03-01T02:14:00z', 'startDate is not an ISO 8601 date with offset nor an export date'],
    [' 2026-03-01T02:14:00Z', 'startDate is not an ISO 8601 date with offset nor an export date'],
    ['2026-03-01', 'startDate is not an ISO 8601 date with offset nor an export date'],
    [1772331240000, 'startDate is not an ISO 8601 date with offset nor an export date'],
    [null, 'startDate is not an ISO 8601 date with offset nor an export date'],
    ['2026-02-30T02:14:00Z', 'startDate is not a valid calendar date and time'],
    ['2026-02-29T02:14:00Z', 'startDate is not a valid calendar date and time'],
    ['2026-13-01T02:14:00Z', 'startDate is not a valid calendar date and time'],
    ['2026-00-10T02:14:00Z', 'startDate is not a valid calendar date and time'],
    ['2026-03-00T02:14:00Z', 'startDate is not a valid calendar date and time'],
    ['2026-03-01T24:00:00Z', 'startDate is not a valid calendar date and time'],
    ['2026-03-01T02:60:00Z', 'startDate is not a valid calendar date and time'],
    ['2026-03-01T02:14:60Z', 'startDate is not a valid calendar date and time'],
    ['2026-03-01T02:14:00+05:60', 'startDate is not a valid calendar date and time'],
    ['2026-03-01T02:14:00+14:01', 'startDate has an offset beyond ±14:00'],
    ['2026-03-01 02:14:00 -1500', 'startDate has an offset beyond ±14:00'],
  ])('refuses %j: %s', (text, problem) => {
    expect(() => parseDate(text, 'startDate')).toThrow(problem)
    expect(run([quantity(HR, 60, 'count/min', text)]).rejected).toEqual([{ index: 0, problem }])
  })

  it('gives every value in the canonical unit rounded to 15 significant digits, however it is written', () => {
    const decimal = fc.oneof(
      fc.double({ min: 0.5, max: 600, noNaN: true }).map(String),
      fc.tuple(fc.integer({ min: 0, max: 600 }), fc.stringMatching(/^[0-9]{0,16}$/)).map(([i, f]) => (f ? `${i}.${f}` : `${i}`)),
      fc.tuple(fc.integer({ min: 1, max: 99_999 }), fc.integer({ min: -6, max: 3 })).map(([m, e]) => `${m}e${e}`),
      fc.constantFrom('-0', '0', '1', '500', '500.0000000000001', '499.99999999999999', '1.000000000000001', '.5e1', '+61'),
    )
    fc.assert(
      fc.property(decimal, fc.constantFrom(['ms', 1], ['s', 1000]), (text, [unit, factor]) => {
        const want = Number((Number(text) * (factor as number)).toPrecision(15))
        const r = run([quantity(SDNN, text, unit)])
        if (want >= 1 && want <= 500) expect(r.samples.map((s) => s.sample.value)).toEqual([want])
        else expect(r.rejected).toEqual([{ index: 0, problem: 'value out of range 1..500 ms' }])
      }),
      { numRuns: 3000 },
    )
  })

  it('reads an export date as it reads the same characters written as ISO 8601 (the same instant, or the same refusal)', () => {
    const exportDate = fc
      .tuple(fourDigits, two, two, two, two, two, fc.constantFrom('+', '-'), two, two)
      .map(([y, mo, d, h, mi, s, sign, zh, zm]) => `${y}-${mo}-${d} ${h}:${mi}:${s} ${sign}${zh}${zm}`)
    // one character of it replaced, anywhere but the two spaces the ISO form does not have
    const spoiled = fc
      .tuple(exportDate, fc.integer({ min: 0, max: 24 }), fc.constantFrom('0', '9', 'a', ' ', '-', '+', ':', 'Z', '\u0663', '\u0000', '/'))
      .filter(([, at]) => at !== 10 && at !== 19)
      .map(([text, at, c]) => text.slice(0, at) + c + text.slice(at + 1))
    fc.assert(
      fc.property(fc.oneof(exportDate, spoiled), (text) => {
        const iso = `${text.slice(0, 10)}T${text.slice(11, 19)}${text.slice(20)}`
        expect(outcome(text)).toEqual(outcome(iso))
      }),
      { numRuns: 3000 },
    )
  })

  it('reads an ISO 8601 date exactly as the regular expression of its form does (the same instant, or the same refusal)', () => {
    // the reference: the form as a regular expression, its numbers handed to Date.UTC
    const ISO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})$/
    const reference = (text: string) => {
      const m = ISO.exec(text)
      if (!m) return 'startDate is not an ISO 8601 date with offset nor an export date'
      const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number]
      const zone = m[8]!
      const zoneMinutes = zone === 'Z' ? 0 : Number(zone.slice(-2))
      if (zoneMinutes > 59) return 'startDate is not a valid calendar date and time'
      const offsetMinutes = zone === 'Z' ? 0 : (zone.startsWith('-') ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + zoneMinutes) || 0
      if (Math.abs(offsetMinutes) > 14 * 60) return 'startDate has an offset beyond ±14:00'
      const utc = new Date(Date.UTC(2000, month - 1, day, hour, minute, second))
      utc.setUTCFullYear(year)
      if (month < 1 || month > 12 || utc.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) return 'startDate is not a valid calendar date and time'
      const millis = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0
      return { ms: utc.getTime() + millis - offsetMinutes * 60_000, offsetMinutes }
    }
    const iso = fc
      .tuple(
        fourDigits,
        two,
        two,
        two,
        two,
        two,
        fc.option(fc.stringMatching(/^[0-9]{0,11}$/), { nil: undefined }),
        fc.oneof(
          fc.constant('Z'),
          fc.tuple(fc.constantFrom('+', '-'), two, fc.constantFrom(':', ''), two).map((z) => z.join('')),
        ),
      )
      .map(([y, mo, d, h, mi, s, fraction, zone]) => `${y}-${mo}-${d}T${h}:${mi}:${s}${fraction === undefined ? '' : `.${fraction}`}${zone}`)
    // one character of it replaced, dropped or doubled, anywhere
    const spoiled = fc
      .tuple(iso, fc.nat(), fc.constantFrom('0', '9', 'a', ' ', '-', '+', ':', '.', 'T', 'Z', 'z', '\u0663', '\u0000', ''), fc.boolean())
      .map(([text, n, c, insert]) => {
        const at = n % (text.length + 1)
        return text.slice(0, at) + c + text.slice(insert ? at : at + 1)
      })
    fc.assert(
      fc.property(fc.oneof(iso, spoiled), (text) => {
        expect(outcome(text)).toEqual(reference(text))
      }),
      { numRuns: 20_000 },
    )
  })

  it("keeps the startDate's offset as utcOffsetMinutes and stores both dates as UTC instants", () => {
    // an overnight sleep sample across a DST change: the end is written with another offset
    const { sample } = only(sleep(3, '2026-03-08 01:30:00 -0800', '2026-03-08T03:10:00-07:00'))
    expect(sample).toMatchObject({ start: '2026-03-08T09:30:00.000Z', end: '2026-03-08T10:10:00.000Z', utcOffsetMinutes: -480 })
  })
})

describe('ids (docs/architecture.md §4)', () => {
  const hr = quantity(HR, 60, 'count/min')

  it('takes a HealthKit UUID, lower-cased, as the id, and keeps it as given as externalId', () => {
    const s = only({ ...hr, uuid: '3A1F2B4C-0000-4000-8000-00000000000A' })
    expect(s.id).toBe('3a1f2b4c-0000-4000-8000-00000000000a')
    expect(s.sample.externalId).toBe('3A1F2B4C-0000-4000-8000-00000000000A')
  })

  it('hashes a uuid that is not a UUID with the user, and keeps it as externalId', () => {
    const s = only({ ...hr, uuid: 'ABC-123' })
    expect(s.id).toBe(hashUuid('uuid', 'ana', 'ABC-123'))
    expect(s.sample.externalId).toBe('ABC-123')
    expect(normalizeBatch({ samples: [{ ...hr, uuid: 'ABC-123' }] }, { ...ctx, userId: 'bo' }).samples[0]?.id).toBe(hashUuid('uuid', 'bo', 'ABC-123'))
  })

  it('hashes (user, metric, source, start, end, value) without a uuid: ms or s, and any spelling of the same instants, give one id', () => {
    const expected = hashUuid('ana', 'hrv_sdnn', 'unknown', '2026-03-01T10:14:00.000Z', '2026-03-01T10:15:00.000Z', '7.1')
    const spellings = [
      quantity(SDNN, 7.1, 'ms', '2026-03-01T02:14:00-08:00', '2026-03-01T02:15:00-08:00'),
      quantity(SDNN, 0.0071, 's', '2026-03-01 10:14:00 +0000', '2026-03-01T10:15:00Z'),
      quantity(SDNN, '7.1', 'ms', '2026-03-01T11:14:00.000+0100', '2026-03-01 15:45:00 +0530'),
    ]
    const r = run(spellings)
    expect(r.samples.map((s) => s.id)).toEqual([expected, expected, expected])
    expect(r.samples.map((s) => s.sample.utcOffsetMinutes)).toEqual([-480, 0, 60])
    expect('externalId' in r.samples[0]!.sample).toBe(false)
  })

  it('hashes a sleep sample with its stage: code 4 and the AsleepDeep name give one id', () => {
    const expected = hashUuid('ana', 'sleep_stage', 'unknown', '2026-03-01T09:00:00.000Z', '2026-03-01T09:30:00.000Z', 'deep')
    expect(run([sleep(4), sleep('4'), sleep('HKCategoryValueSleepAnalysisAsleepDeep')]).samples.map((s) => s.id)).toEqual([expected, expected, expected])
  })

  it('gives other users, sources, values and instants other ids', () => {
    const base = only(hr).id
    const others = [
      normalizeBatch({ samples: [hr] }, { ...ctx, userId: 'bo' }).samples[0]?.id,
      only({ ...hr, sourceName: 'Polar' }).id,
      only(quantity(HR, 61, 'count/min')).id,
      only(quantity(HR, 60, 'count/min', '2026-03-01T02:14:01-08:00')).id,
      only(quantity(RESTING, 60, 'count/min')).id,
    ]
    expect(new Set([base, ...others]).size).toBe(6)
  })
})

describe('sources', () => {
  const watch = { name: 'Apple Watch', bundleId: 'com.apple.health.5C8D', device: 'Watch6,2' }

  it("gives a sample that names no source the batch's", () => {
    expect(run([sleep(3)], watch).samples[0]?.sample.source).toStrictEqual(watch)
  })

  it('keeps a source a sample names, taking nothing from the batch', () => {
    const own = { ...sleep(3), sourceName: 'iPhone', sourceBundleId: 'com.apple.health.1A2B' }
    expect(run([own], watch).samples[0]?.sample.source).toStrictEqual({ name: 'iPhone', bundleId: 'com.apple.health.1A2B' })
    expect(run([{ ...own, device: 'iPhone14,2' }], watch).samples[0]?.sample.source).toStrictEqual({ name: 'iPhone', bundleId: 'com.apple.health.1A2B', device: 'iPhone14,2' })
  })

  it("lets a sample's own bundleId and device win over the batch's when it names no source", () => {
    expect(run([{ ...sleep(3), device: 'Watch7,1' }], watch).samples[0]?.sample.source).toStrictEqual({ ...watch, device: 'Watch7,1' })
    expect(run([{ ...sleep(3), sourceBundleId: 'b', sourceName: '' }], watch).samples[0]?.sample.source).toStrictEqual({ ...watch, bundleId: 'b' })
  })

  it("names the source 'unknown' when neither the sample nor the batch does, and omits what nobody gave", () => {
    expect(run([sleep(3)]).samples[0]?.sample.source).toStrictEqual({ name: 'unknown' })
    expect(run([sleep(3)], { device: 'Watch6,2' }).samples[0]?.sample.source).toStrictEqual({ name: 'unknown', device: 'Watch6,2' })
    expect(JSON.stringify(only({ ...sleep(3), sourceName: null, device: null }).sample)).not.toContain('null')
  })
})

describe('rejections, each with its reason', () => {
  const long = (n: number) => 'x'.repeat(n)
  it.each([
    [42, 'sample is not an object'],
    ['HKQuantityTypeIdentifierHeartRate', 'sample is not an object'],
    [null, 'sample is not an object'],
    [[quantity(HR, 60, 'count/min')], 'sample is not an object'],
    [{ value: 60, unit: 'count/min' }, 'type is missing'],
    [{ type: '' }, 'type is missing'],
    [{ type: null }, 'type is missing'],
    [{ type: 7 }, 'type is not a string'],
    [quantity(HR, 60, undefined), `unit is missing for ${HR}`],
    [quantity(SDNN, 40, 'kg'), `unknown unit 'kg' for ${SDNN}`],
    [quantity(SDNN, 40, 'count/min'), `unknown unit 'count/min' for ${SDNN}`],
    [quantity(RMSSD, 40, 'MS'), `unknown unit 'MS' for ${RMSSD}`],
    [quantity(HR, 60, 'bpm'), `unknown unit 'bpm' for ${HR}`],
    [quantity(RESTING, 60, 'ms'), `unknown unit 'ms' for ${RESTING}`],
    [quantity(HR, 60, 1), `unknown unit 1 for ${HR}`],
    [quantity(HR, undefined, 'count/min'), 'value is missing'],
    [quantity(HR, 'fast', 'count/min'), "value 'fast' is not a finite number"],
    [quantity(HR, '', 'count/min'), "value '' is not a finite number"],
    [quantity(HR, ' 60', 'count/min'), "value ' 60' is not a finite number"],
    [quantity(HR, '0x3C', 'count/min'), "value '0x3C' is not a finite number"],
    [quantity(HR, 'Infinity', 'count/min'), "value 'Infinity' is not a finite number"],
    [quantity(HR, Number.NaN, 'count/min'), 'value NaN is not a finite number'],
    [quantity(HR, true, 'count/min'), 'value true is not a finite number'],
    [quantity(HR, { v: 60 }, 'count/min'), 'value (object) is not a finite number'],
    [quantity(SDNN, 0.9, 'ms'), 'value out of range 1..500 ms'],
    [quantity(SDNN, 500.1, 'ms'), 'value out of range 1..500 ms'],
    [quantity(SDNN, 0.0009, 's'), 'value out of range 1..500 ms'],
    [quantity(RMSSD, 0.6, 's'), 'value out of range 1..500 ms'],
    [quantity(RMSSD, '1e308', 's'), 'value out of range 1..500 ms'],
    [quantity(HR, 19, 'count/min'), 'value out of range 20..250 count/min'],
    [quantity(HR, 251, 'count/min'), 'value out of range 20..250 count/min'],
    [quantity(RESTING, -60, 'count/min'), 'value out of range 20..250 count/min'],
    [sleep(undefined), 'value is missing'],
    [sleep(6), 'unknown sleep value 6'],
    [sleep(-1), 'unknown sleep value -1'],
    [sleep(1.5), 'unknown sleep value 1.5'],
    [sleep('6'), "unknown sleep value '6'"],
    [sleep('03'), "unknown sleep value '03'"],
    [sleep('HKCategoryValueSleepAnalysisNap'), "unknown sleep value 'HKCategoryValueSleepAnalysisNap'"],
    [sleep('asleepDeep'), "unknown sleep value 'asleepDeep'"],
    [sleep(long(100)), `unknown sleep value '${long(40)}…'`],
    [sleep(['deep']), 'unknown sleep value (object)'],
    [quantity(HR, 60, 'count/min', '2026-03-01T02:14:00'), 'startDate is not an ISO 8601 date with offset nor an export date'],
    [{ ...quantity(HR, 60, 'count/min'), startDate: undefined }, 'startDate is not an ISO 8601 date with offset nor an export date'],
    [quantity(HR, 60, 'count/min', '2026-03-01T02:14:00Z', '2026-03-01'), 'endDate is not an ISO 8601 date with offset nor an export date'],
    [quantity(HR, 60, 'count/min', '2026-02-30T02:14:00Z'), 'startDate is not a valid calendar date and time'],
    [quantity(HR, 60, 'count/min', '2026-03-01T02:14:00Z', '2026-03-01T02:14:00+15:00'), 'endDate has an offset beyond ±14:00'],
    [quantity(HR, 60, 'count/min', '2026-03-01T02:15:00Z', '2026-03-01T02:14:59.999Z'), 'endDate before startDate'],
    [quantity(HR, 60, 'count/min', '2026-03-01T02:15:00-08:00', '2026-03-01T03:14:00-07:00'), 'endDate before startDate'],
    [quantity(HR, 60, 'count/min', '1969-12-31T23:59:59Z', '1970-01-01T00:00:00Z'), 'date earlier than 1970-01-01'],
    [quantity(HR, 60, 'count/min', '0001-01-01T00:00:00+01:00', '0001-01-01T00:00:00Z'), 'date earlier than 1970-01-01'],
    [quantity(HR, 60, 'count/min', '2026-03-10T00:10:00.001Z', '2026-03-10T00:10:00.001Z'), 'date later than now + 10 minutes'],
    [quantity(HR, 60, 'count/min', '2026-03-09T23:00:00Z', '2026-03-10T01:10:01+01:00'), 'date later than now + 10 minutes'],
    [sleep(4, '2026-03-01T01:00:00Z', '2026-03-01 02:00:00 +0100'), 'sleep sample has zero duration'],
    [sleep(4, '2026-03-01T01:00:00Z', '2026-03-02T01:00:00.001Z'), 'sleep sample longer than 24 h'],
    [{ ...sleep(3), sourceName: 7 }, 'sourceName is not a string'],
    [{ ...sleep(3), sourceName: long(257) }, 'sourceName is longer than 256 characters'],
    [{ ...sleep(3), sourceBundleId: long(257) }, 'sourceBundleId is longer than 256 characters'],
    [{ ...sleep(3), device: { name: 'Watch' } }, 'device is not a string'],
    [{ ...sleep(3), device: long(1025) }, 'device is longer than 1024 characters'],
    [{ ...sleep(3), uuid: 12345 }, 'uuid is not a string'],
    [{ ...sleep(3), uuid: long(257) }, 'uuid is longer than 256 characters'],
  ])('%j → %s', (raw, problem) => {
    const r = run([quantity(HR, 60, 'count/min'), raw, { type: 'HKQuantityTypeIdentifierStepCount' }])
    expect(r.rejected).toEqual([{ index: 1, problem }])
    expect(r.samples).toHaveLength(1)
    expect(r.ignored).toBe(1)
  })

  it('rejects a hole in the samples array like any other non-object', () => {
    // eslint-disable-next-line no-sparse-arrays
    expect(run([sleep(3), , sleep(4)]).rejected).toEqual([{ index: 1, problem: 'sample is not an object' }])
  })

  it('accepts the edges of every range', () => {
    const r = run([
      quantity(SDNN, 1, 'ms'),
      quantity(SDNN, 500, 'ms'),
      quantity(RMSSD, 0.001, 's'),
      quantity(RMSSD, '0.5', 's'),
      quantity(HR, 20, 'count/min'),
      quantity(RESTING, 250, 'count/min'),
      quantity(HR, 60, 'count/min', '2026-03-10T00:10:00Z', '2026-03-10 01:10:00 +0100'),
      quantity(HR, 60, 'count/min', '1970-01-01T00:00:00Z', '1970-01-01T00:00:00Z'),
      sleep(4, '2026-03-01T01:00:00Z', '2026-03-02T01:00:00Z'),
      sleep(4, '2026-03-01T01:00:00Z', '2026-03-01T01:00:00.001Z'),
    ])
    expect(r.rejected).toEqual([])
    expect(r.samples.map((s) => s.sample.value ?? s.sample.stage)).toEqual([1, 500, 1, 500, 20, 250, 60, 60, 'deep', 'deep'])
  })
})

describe('the batch envelope', () => {
  const details = (body: unknown, maxSamples = 2) => {
    try {
      parseBatchEnvelope(body, { maxSamples })
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError)
      return (err as ValidationError).details
    }
    throw new Error('the body was taken for a batch')
  }
  const notABatch = [{ path: '(body)', problem: 'must be an object with a samples array' }]

  it.each([
    [null, notABatch],
    [[], notABatch],
    ['{"samples":[1]}', notABatch],
    [42, notABatch],
    [{}, [{ path: 'samples', problem: 'is missing' }]],
    [{ samples: {} }, [{ path: 'samples', problem: 'must be an array' }]],
    [{ samples: 'x' }, [{ path: 'samples', problem: 'must be an array' }]],
    [{ samples: [] }, [{ path: 'samples', problem: 'must have 1..2 entries' }]],
    [{ samples: [1, 2, 3] }, [{ path: 'samples', problem: 'must have 1..2 entries' }]],
    [{ samples: [1], batchId: '' }, [{ path: 'batchId', problem: 'must be a string of 1..128 characters' }]],
    [{ samples: [1], batchId: 'b'.repeat(129) }, [{ path: 'batchId', problem: 'must be a string of 1..128 characters' }]],
    [{ samples: [1], batchId: 7 }, [{ path: 'batchId', problem: 'must be a string of 1..128 characters' }]],
    [{ samples: [1], source: 'Apple Watch' }, [{ path: 'source', problem: 'must be an object' }]],
    [{ samples: [1], source: { name: 1 } }, [{ path: 'source.name', problem: 'must be a string of 1..256 characters' }]],
    [{ samples: [1], source: { device: 'd'.repeat(1025) } }, [{ path: 'source.device', problem: 'must be a string of 1..1024 characters' }]],
    [
      { batchId: '', samples: [] },
      [
        { path: 'batchId', problem: 'must be a string of 1..128 characters' },
        { path: 'samples', problem: 'must have 1..2 entries' },
      ],
    ],
  ])('refuses %j', (body, expected) => {
    expect(details(body)).toEqual(expected)
  })

  it('says what is wrong in the message too, with the configured limit', () => {
    expect(() => parseBatchEnvelope({ samples: [] }, { maxSamples: 10_000 })).toThrow('the body is not a batch: samples must have 1..10000 entries')
    expect(details({ samples: Array(10_001).fill(1) }, 10_000)).toEqual([{ path: 'samples', problem: 'must have 1..10000 entries' }])
  })

  it('takes a batch at its limits and drops unknown top-level keys', () => {
    const body = JSON.parse('{"__proto__": {"x": 1}, "extra": [[[]]], "batchId": "' + 'b'.repeat(128) + '", "source": {"name": "W", "extra": 1}, "samples": [1, 2]}') as unknown
    expect(parseBatchEnvelope(body, { maxSamples: 2 })).toStrictEqual({ batchId: 'b'.repeat(128), source: { name: 'W' }, samples: [1, 2] })
  })

  it('recognises a plain envelope only when the schema accepts it unchanged (generated and mutated bodies)', () => {
    const schema = batchEnvelopeSchema(3)
    const text = (max: number) => fc.oneof(fc.string({ minLength: 0, maxLength: 3 }), fc.string({ minLength: max - 1, maxLength: max + 1 }))
    const value = fc.oneof(fc.constant(undefined), fc.constant(null), fc.integer(), fc.constant([]), fc.constant({}), text(8))
    const source = fc.oneof(
      fc.record({ name: text(256), bundleId: text(256), device: text(1024) }, { requiredKeys: [], noNullPrototype: true }),
      fc.dictionary(fc.constantFrom('name', 'bundleId', 'device', 'extra'), value, { noNullPrototype: true }),
      value,
    )
    const body = fc.oneof(
      fc.record({ batchId: text(128), source, samples: fc.array(fc.anything(), { minLength: 0, maxLength: 4 }) }, { requiredKeys: [], noNullPrototype: true }),
      fc.dictionary(fc.constantFrom('batchId', 'source', 'samples', 'extra', '__proto__'), fc.oneof(value, fc.array(fc.integer(), { maxLength: 4 })), { noNullPrototype: true }),
      value,
    )
    let recognised = 0
    fc.assert(
      fc.property(body, (b) => {
        if (!isPlainBatchEnvelope(b, 3)) return
        recognised++
        const r = schema.safeParse(b)
        expect(r.success).toBe(true)
        expect(r.data).toStrictEqual(b)
      }),
      { numRuns: 20_000 },
    )
    // the check is not vacuous: it recognises most of the well-formed bodies
    expect(recognised).toBeGreaterThan(500)
  })
})

// ── properties ──

const UNDERSTOOD = [SDNN, RMSSD, RESTING, HR, SLEEP]

/** `ms` (whole seconds) written with `offsetMinutes`, in one of the three accepted spellings. */
function spell(ms: number, offsetMinutes: number, form: 'iso' | 'isoNoColon' | 'export'): string {
  const local = new Date(ms + offsetMinutes * 60_000).toISOString().slice(0, 19)
  const sign = offsetMinutes < 0 ? '-' : '+'
  const hh = String(Math.floor(Math.abs(offsetMinutes) / 60)).padStart(2, '0')
  const mm = String(Math.abs(offsetMinutes) % 60).padStart(2, '0')
  if (form === 'export') return `${local.replace('T', ' ')} ${sign}${hh}${mm}`
  return `${local}${sign}${hh}${form === 'iso' ? ':' : ''}${mm}`
}

const instant = fc.integer({ min: Date.UTC(1970, 0, 1) / 1000, max: now.getTime() / 1000 }).map((s) => s * 1000)
/** well inside the accepted dates, so that a sample a day long ending then is valid */
const recentInstant = fc.integer({ min: Date.UTC(2000, 0, 1) / 1000, max: Date.UTC(2026, 2, 1) / 1000 }).map((s) => s * 1000)
const offset = fc.integer({ min: -840, max: 840 })
const form = fc.constantFrom('iso' as const, 'isoNoColon' as const, 'export' as const)
const dateText = fc.oneof(
  fc.tuple(instant, offset, form).map(([ms, off, f]) => spell(ms, off, f)),
  fc.string(),
  fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  fc.anything(),
)

/** Sample-shaped objects: mostly plausible fields, sometimes anything at all. */
const sampleLike = fc.record(
  {
    type: fc.oneof(fc.constantFrom(...UNDERSTOOD, 'HKQuantityTypeIdentifierStepCount', '__proto__'), fc.anything()),
    value: fc.oneof(fc.double(), fc.integer({ min: -1, max: 300 }), fc.constantFrom('3', '72', '0.05', 'HKCategoryValueSleepAnalysisAsleepREM'), fc.anything()),
    unit: fc.oneof(fc.constantFrom('ms', 's', 'count/min', 'kg'), fc.anything()),
    startDate: dateText,
    endDate: dateText,
    uuid: fc.oneof(fc.uuid(), fc.string(), fc.anything()),
    sourceName: fc.oneof(fc.string(), fc.anything()),
    sourceBundleId: fc.string(),
    device: fc.string(),
  },
  { requiredKeys: [] },
)

/** Samples that pass every check (HealthKit uuids or none), with duplicates among them. */
const validSample = fc
  .tuple(
    fc.constantFrom(...UNDERSTOOD),
    recentInstant,
    fc.integer({ min: 0, max: 86_399 }),
    offset,
    form,
    fc.integer({ min: 0, max: 5 }),
    fc.double({ min: 20, max: 250, noNaN: true }),
    fc.option(fc.uuid()),
    fc.constantFrom(undefined, 'Apple Watch', 'Oura'),
  )
  .map(([type, ms, seconds, off, f, code, value, uuid, sourceName]) => ({
    type,
    ...(type === SLEEP ? { value: code } : { value: type === SDNN || type === RMSSD ? String(value / 1000) : value, unit: type === SDNN || type === RMSSD ? 's' : 'count/min' }),
    startDate: spell(ms - (seconds + 1) * 1000, off, f),
    endDate: spell(ms, off, f),
    ...(uuid ? { uuid } : {}),
    ...(sourceName ? { sourceName } : {}),
  }))

/** A valid sample with one field replaced: reaches every check, not only the first. */
const nearlyValid = fc
  .tuple(
    validSample,
    fc.constantFrom('type', 'value', 'unit', 'startDate', 'endDate', 'uuid', 'sourceName', 'sourceBundleId', 'device'),
    fc.oneof(fc.anything(), fc.string(), dateText),
  )
  .map(([sample, key, value]) => ({ ...sample, [key]: value }))

const pairs = (r: NormalizeResult) => r.samples.map((s) => JSON.stringify([s.id, s.sample])).sort()

describe('properties', () => {
  it('never throws anything but ValidationError, whatever the body, and every sample it gives is a valid hph.sample.v1', () => {
    const body = fc.oneof(
      fc.jsonValue(),
      fc.anything(),
      fc.record({ samples: fc.array(fc.anything(), { minLength: 1 }), source: fc.anything() }, { requiredKeys: ['samples'] }),
      fc.record(
        {
          batchId: fc.string(),
          source: fc.record({ name: fc.string(), device: fc.string() }, { requiredKeys: [] }),
          samples: fc.array(sampleLike, { minLength: 1, maxLength: 20 }),
        },
        { requiredKeys: ['samples'] },
      ),
      fc.array(fc.oneof(validSample, nearlyValid, sampleLike), { minLength: 1, maxLength: 20 }).map((samples) => ({ samples })),
    )
    fc.assert(
      fc.property(body, (b) => {
        let batch: BatchEnvelope
        try {
          batch = parseBatchEnvelope(b, { maxSamples: 10_000 })
        } catch (err) {
          if (err instanceof ValidationError) return
          throw err
        }
        const r = normalizeBatch(batch, ctx)
        expect(r.samples.length + r.rejected.length + r.ignored).toBe(batch.samples.length)
        expect(r.accepted).toBe(r.samples.length)
        // the api's counts-only pass agrees with the stage's full one
        expect(normalizeBatch(batch, ctx, { build: false })).toEqual({ ...r, samples: [] })
        for (const s of r.samples) {
          expect(isUuid(s.id)).toBe(true)
          expect(Sample.parse(s.sample)).toStrictEqual(s.sample)
        }
      }),
      { numRuns: 3000 },
    )
  })

  it('gives the same (id, sample) pairs whatever the order of the batch', () => {
    const batchAndShuffle = fc
      .array(validSample, { minLength: 1, maxLength: 30 })
      .map((samples) => [...samples, ...samples.slice(0, 3)])
      .chain((samples) => fc.tuple(fc.constant(samples), fc.shuffledSubarray(samples, { minLength: samples.length, maxLength: samples.length })))
    fc.assert(
      fc.property(batchAndShuffle, ([samples, shuffled]) => {
        const inOrder = run(samples)
        expect(inOrder.rejected).toEqual([])
        expect(pairs(run(shuffled))).toEqual(pairs(inOrder))
      }),
      { numRuns: 300 },
    )
  })

  it('gives the same id and instants for any offset spelling of the same sample', () => {
    fc.assert(
      fc.property(fc.constantFrom(...UNDERSTOOD), recentInstant, offset, offset, form, form, (type, ms, offA, offB, formA, formB) => {
        const of = (off: number, f: 'iso' | 'isoNoColon' | 'export') =>
          only({
            type,
            value: type === SLEEP ? 2 : 60,
            unit: type === SLEEP ? undefined : type === SDNN || type === RMSSD ? 'ms' : 'count/min',
            startDate: spell(ms - 60_000, off, f),
            endDate: spell(ms, off, f),
          })
        const [a, b] = [of(offA, formA), of(offB, formB)]
        expect(b.id).toBe(a.id)
        expect([b.sample.start, b.sample.end]).toEqual([a.sample.start, a.sample.end])
        expect([a.sample.utcOffsetMinutes, b.sample.utcOffsetMinutes]).toEqual([offA, offB])
      }),
    )
  })
})
