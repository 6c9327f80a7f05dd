import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ValidationError } from '../../../errors.ts'
import { normalizeBatch, parseBatchEnvelope, parseDate, type BatchEnvelope } from '../../../processors/normalize/healthkit.ts'
import { hashUuid } from '../../../streams/ids.ts'
import { Sample } from '../../../streams/schemas.ts'

const now = new Date('2026-03-10T00:00:00Z')
const ctx = { userId: 'ana', ingestId: 'ing-1', now }
const run = (samples: unknown[], extra: Partial<BatchEnvelope> = {}) => normalizeBatch({ samples, ...extra }, ctx)
const q = (type: string, value: unknown, unit: string, start = '2026-03-01T02:14:00-08:00', end = '2026-03-01T02:15:00-08:00') =>
  ({ type, value, unit, startDate: start, endDate: end })
const sleep = (value: unknown, start = '2026-03-01T01:00:00-08:00', end = '2026-03-01T01:30:00-08:00') =>
  ({ type: 'HKCategoryTypeIdentifierSleepAnalysis', value, startDate: start, endDate: end })

describe('types and units (spec/api.md)', () => {
  it.each([
    ['HKQuantityTypeIdentifierHeartRateVariabilitySDNN', 48.2, 'ms', 'hrv_sdnn', 48.2],
    ['HKQuantityTypeIdentifierHeartRateVariabilitySDNN', 0.0482, 's', 'hrv_sdnn', 48.2],
    ['HPHQuantityTypeIdentifierHeartRateVariabilityRMSSD', 31, 'ms', 'hrv_rmssd', 31],
    ['HPHQuantityTypeIdentifierHeartRateVariabilityRMSSD', 0.031, 's', 'hrv_rmssd', 31],
    ['HKQuantityTypeIdentifierRestingHeartRate', 52, 'count/min', 'resting_hr', 52],
    ['HKQuantityTypeIdentifierHeartRate', '72', 'count/min', 'heart_rate', 72],
  ])('%s in %s → %s', (type, value, unit, metric, expected) => {
    const [s] = run([q(type, value, unit)]).samples
    expect(s?.sample.metric).toBe(metric)
    expect(s?.sample.value).toBeCloseTo(expected as number, 12)
    expect(s?.sample.stage).toBeUndefined()
  })

  it.each([
    [0, 'in_bed'], [1, 'asleep'], [2, 'awake'], [3, 'core'], [4, 'deep'], [5, 'rem'], ['3', 'core'],
    ['HKCategoryValueSleepAnalysisInBed', 'in_bed'], ['HKCategoryValueSleepAnalysisAsleepUnspecified', 'asleep'],
    ['HKCategoryValueSleepAnalysisAsleep', 'asleep'], ['HKCategoryValueSleepAnalysisAwake', 'awake'],
    ['HKCategoryValueSleepAnalysisAsleepCore', 'core'], ['HKCategoryValueSleepAnalysisAsleepDeep', 'deep'],
    ['HKCategoryValueSleepAnalysisAsleepREM', 'rem'],
  ])('sleep value %s → %s', (value, stage) => {
    const [s] = run([sleep(value)]).samples
    expect(s?.sample).toMatchObject({ metric: 'sleep_stage', stage })
    expect(s?.sample.value).toBeUndefined()
  })

  it('counts other types as ignored, per type, and normalises nothing of them', () => {
    const r = run([q('HKQuantityTypeIdentifierStepCount', 10, 'count'), q('HKQuantityTypeIdentifierStepCount', 5, 'count'), q('__proto__', 1, 'x')])
    expect(r).toMatchObject({ samples: [], rejected: [], ignored: 3 })
    expect(Object.entries(r.ignoredByType)).toEqual([['HKQuantityTypeIdentifierStepCount', 2], ['__proto__', 1]])
  })
})

describe('dates', () => {
  it('reads ISO 8601 with offsets, Z, fractions, and the export.xml form', () => {
    expect(parseDate('2026-03-01T02:14:00-08:00', 'd')).toEqual({ ms: Date.parse('2026-03-01T10:14:00Z'), offset: -480 })
    expect(parseDate('2026-03-01T02:14:00+05:30', 'd')).toEqual({ ms: Date.parse('2026-02-28T20:44:00Z'), offset: 330 })
    expect(parseDate('2026-03-01T02:14:00.250Z', 'd')).toEqual({ ms: Date.parse('2026-03-01T02:14:00.250Z'), offset: 0 })
    expect(parseDate('2026-03-01 02:14:00 -0800', 'd')).toEqual({ ms: Date.parse('2026-03-01T10:14:00Z'), offset: -480 })
    expect(parseDate('2026-03-01T02:14:00+0100', 'd')).toEqual({ ms: Date.parse('2026-03-01T01:14:00Z'), offset: 60 })
  })

  it('keeps the written offset as utcOffsetMinutes and stores UTC instants', () => {
    const [s] = run([q('HKQuantityTypeIdentifierHeartRate', 60, 'count/min', '2026-03-01 23:30:00 +0930', '2026-03-01 23:31:00 +0930')]).samples
    expect(s?.sample).toMatchObject({ start: '2026-03-01T14:00:00.000Z', end: '2026-03-01T14:01:00.000Z', utcOffsetMinutes: 570 })
  })
})

describe('ids (DESIGN.md §4)', () => {
  it('uses a HealthKit UUID, lower-cased, and keeps it as externalId', () => {
    const [s] = run([{ ...q('HKQuantityTypeIdentifierHeartRate', 60, 'count/min'), uuid: '3A1F2B4C-0000-4000-8000-00000000000A' }]).samples
    expect(s?.id).toBe('3a1f2b4c-0000-4000-8000-00000000000a')
    expect(s?.sample.externalId).toBe('3A1F2B4C-0000-4000-8000-00000000000A')
  })

  it('hashes a uuid that is not a UUID with the user', () => {
    const [s] = run([{ ...q('HKQuantityTypeIdentifierHeartRate', 60, 'count/min'), uuid: '3A1F…' }]).samples
    expect(s?.id).toBe(hashUuid('uuid', 'ana', '3A1F…'))
  })

  it('hashes (user, metric, source, start, end, value): the same sample in s or ms, or another offset spelling, has one id', () => {
    const a = run([q('HKQuantityTypeIdentifierHeartRateVariabilitySDNN', 48, 'ms')]).samples[0]
    const b = run([q('HKQuantityTypeIdentifierHeartRateVariabilitySDNN', 0.048, 's', '2026-03-01 10:14:00 +0000', '2026-03-01T10:15:00Z')]).samples[0]
    expect(a?.id).toBe(hashUuid('ana', 'hrv_sdnn', 'unknown', '2026-03-01T10:14:00.000Z', '2026-03-01T10:15:00.000Z', '48'))
    expect(b?.id).toBe(a?.id)
  })
})

describe('sources', () => {
  it("takes the sample's own source over the batch's, and 'unknown' when neither names one", () => {
    const batchSource = { name: 'Apple Watch', bundleId: 'com.apple.health.5C8D', device: 'Watch6,2' }
    const r = run([{ ...sleep(4), sourceName: 'iPhone', sourceBundleId: 'com.apple.health.1A2B' }, sleep(3)], { source: batchSource })
    expect(r.samples.map((s) => s.sample.source)).toEqual([{ name: 'iPhone', bundleId: 'com.apple.health.1A2B', device: 'Watch6,2' }, batchSource])
    expect(run([sleep(3)]).samples[0]?.sample.source).toEqual({ name: 'unknown' })
  })
})

describe('rejections, each with its reason', () => {
  it.each([
    [q('HKQuantityTypeIdentifierHeartRateVariabilitySDNN', 900, 'ms'), 'value out of range 1..500 ms'],
    [q('HKQuantityTypeIdentifierHeartRateVariabilitySDNN', 0.5, 'ms'), 'value out of range 1..500 ms'],
    [q('HKQuantityTypeIdentifierHeartRate', 251, 'count/min'), 'value out of range 20..250 /min'],
    [q('HKQuantityTypeIdentifierRestingHeartRate', 19, 'count/min'), 'value out of range 20..250 /min'],
    [q('HKQuantityTypeIdentifierHeartRateVariabilitySDNN', 40, 'kg'), 'unknown unit "kg" for HKQuantityTypeIdentifierHeartRateVariabilitySDNN'],
    [q('HKQuantityTypeIdentifierHeartRate', 60, 'bpm'), 'unknown unit "bpm" for HKQuantityTypeIdentifierHeartRate'],
    [q('HKQuantityTypeIdentifierHeartRate', 'fast', 'count/min'), 'value must be a finite number (got "fast")'],
    [q('HKQuantityTypeIdentifierHeartRate', 60, 'count/min', '2026-03-01T02:14:00'), 'startDate is not an ISO 8601 date with offset nor an export date (got "2026-03-01T02:14:00")'],
    [q('HKQuantityTypeIdentifierHeartRate', 60, 'count/min', '2026-02-30T02:14:00Z'), 'startDate is not a valid calendar date and time'],
    [q('HKQuantityTypeIdentifierHeartRate', 60, 'count/min', '2026-03-01T02:14:00+15:00'), 'startDate has an offset beyond ±14:00'],
    [q('HKQuantityTypeIdentifierHeartRate', 60, 'count/min', '2026-03-01T02:15:00Z', '2026-03-01T02:14:00Z'), 'endDate before startDate'],
    [q('HKQuantityTypeIdentifierHeartRate', 60, 'count/min', '2026-03-10T00:10:01Z', '2026-03-10T00:10:01Z'), 'date later than now + 10 minutes'],
    [sleep(4, '2026-03-01T01:00:00Z', '2026-03-01T01:00:00Z'), 'sleep sample has zero duration'],
    [sleep(4, '2026-03-01T01:00:00Z', '2026-03-02T01:00:01Z'), 'sleep sample longer than 24 h'],
    [sleep('HKCategoryValueSleepAnalysisNap'), 'unknown sleep value "HKCategoryValueSleepAnalysisNap"'],
    [sleep(6), 'unknown sleep value 6'],
    [42, 'sample is not an object'],
    [{ value: 1 }, 'type is missing'],
  ])('%j → %s', (sample, problem) => {
    expect(run([q('HKQuantityTypeIdentifierHeartRate', 60, 'count/min'), sample])).toMatchObject({ rejected: [{ index: 1, problem }] })
  })

  it('accepts the edges of every range and a date exactly now + 10 minutes', () => {
    const r = run([
      q('HKQuantityTypeIdentifierHeartRateVariabilitySDNN', 1, 'ms'), q('HKQuantityTypeIdentifierHeartRateVariabilitySDNN', 500, 'ms'),
      q('HKQuantityTypeIdentifierHeartRate', 20, 'count/min'), q('HKQuantityTypeIdentifierHeartRate', 250, 'count/min'),
      q('HKQuantityTypeIdentifierHeartRate', 60, 'count/min', '2026-03-10T00:10:00Z', '2026-03-10T00:10:00Z'),
      sleep(4, '2026-03-01T01:00:00Z', '2026-03-02T01:00:00Z'),
    ])
    expect(r.rejected).toEqual([])
    expect(r.samples).toHaveLength(6)
  })
})

describe('the batch envelope', () => {
  it.each([
    [null, '(body)'], [[], '(body)'], [{}, 'samples'], [{ samples: [] }, 'samples'], [{ samples: {} }, 'samples'],
    [{ samples: [1], batchId: '' }, 'batchId'], [{ samples: [1], batchId: 'x'.repeat(129) }, 'batchId'], [{ samples: [1, 2, 3] }, 'samples'],
  ])('refuses %j at %s', (body, path) => {
    expect(() => parseBatchEnvelope(body, { maxSamples: 2 })).toThrow(ValidationError)
    try {
      parseBatchEnvelope(body, { maxSamples: 2 })
    } catch (err) {
      expect((err as ValidationError).details.map((d) => d.path)).toContain(path)
    }
  })
})

describe('properties', () => {
  it('never throws anything but ValidationError, whatever the body', () => {
    fc.assert(
      fc.property(fc.oneof(fc.anything(), fc.record({ samples: fc.array(fc.anything(), { minLength: 1 }) }), fc.record({ samples: fc.array(fc.record({ type: fc.constantFrom('HKQuantityTypeIdentifierHeartRate', 'HKCategoryTypeIdentifierSleepAnalysis', 'x'), value: fc.anything(), unit: fc.anything(), startDate: fc.anything(), endDate: fc.anything(), uuid: fc.anything(), sourceName: fc.anything() }), { minLength: 1 }) })), (body) => {
        try {
          const r = normalizeBatch(parseBatchEnvelope(body, { maxSamples: 10_000 }), ctx)
          for (const s of r.samples) Sample.parse(s.sample)
        } catch (err) {
          if (!(err instanceof ValidationError)) throw err
        }
      }),
      { numRuns: 2000 },
    )
  })

  it('gives the same samples whatever the order of the batch', () => {
    const samples = [q('HKQuantityTypeIdentifierHeartRate', 60, 'count/min'), sleep(3), sleep('HKCategoryValueSleepAnalysisAwake', '2026-03-01T01:30:00-08:00', '2026-03-01T01:40:00-08:00'), q('HKQuantityTypeIdentifierHeartRateVariabilitySDNN', 0.05, 's')]
    const sorted = (r: ReturnType<typeof run>) => r.samples.map((s) => JSON.stringify(s)).sort()
    fc.assert(fc.property(fc.shuffledSubarray(samples, { minLength: samples.length, maxLength: samples.length }), (shuffled) => {
      expect(sorted(run(shuffled))).toEqual(sorted(run(samples)))
    }))
  })
})
