import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { normalizeBatch, parseBatchEnvelope } from '../../../processors/normalize/healthkit.ts'
import { sampleEventsOf } from '../../../processors/normalize/stage.ts'
import { decodeJson, typedEnvelope } from '../../../streams/envelope.ts'
import { isIsoInstant, isPlainSampleEvent } from '../../../streams/plain.ts'
import { METRICS, SAMPLE_TYPE, SampleBatch, STAGES } from '../../../streams/schemas.ts'
import { SampleEvent } from '../../../streams/upcast.ts'

// streams/plain.ts: `true` must imply that the zod schema accepts the event and returns it unchanged; `false`
// sends the event to the schema. Checked on events as normalize writes them, on generated ones and on every
// kind of damage to them.

const ZodSampleV2 = typedEnvelope(SAMPLE_TYPE, SampleBatch)
const ZodInstant = z.string().datetime({ offset: true })

/** The property: whatever the fast check accepts, the schema accepts unchanged. */
function agrees(e: unknown): boolean {
  const plain = isPlainSampleEvent(e)
  if (plain) {
    const r = ZodSampleV2.safeParse(e)
    expect(r.success).toBe(true)
    expect(r.data).toStrictEqual(e)
  }
  return plain
}

const instant = fc.date({ min: new Date('0000-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59.999Z'), noInvalidDate: true }).map((d) => d.toISOString())
const source = fc.record(
  { name: fc.string({ minLength: 1, maxLength: 256 }), bundleId: fc.string({ maxLength: 256 }), device: fc.string({ maxLength: 1024 }) },
  { requiredKeys: ['name'] },
)
const facts = { id: fc.uuid(), start: instant, end: instant, utcOffsetMinutes: fc.integer({ min: -840, max: 840 }), source, externalId: fc.string({ maxLength: 256 }) }
const required = ['id', 'start', 'end', 'utcOffsetMinutes', 'source'] as const
const item = (sleep: boolean): fc.Arbitrary<object> =>
  sleep
    ? fc.record({ ...facts, stage: fc.constantFrom(...STAGES) }, { requiredKeys: [...required, 'stage'] })
    : fc.record({ ...facts, value: fc.double({ noNaN: true, noDefaultInfinity: true }) }, { requiredKeys: [...required, 'value'] })
/** A generated event as the consumer has it: decoded from JSON (plain objects; each run its own copy to damage). */
const event = fc.constantFrom(...METRICS).chain((metric) =>
  fc
    .record({
      specversion: fc.constant('1.0'),
      id: fc.string({ minLength: 1, maxLength: 200 }),
      type: fc.constant(SAMPLE_TYPE),
      source: fc.string({ minLength: 1 }),
      subject: fc.string({ minLength: 1 }),
      time: instant,
      data: fc.record({
        userId: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
        metric: fc.constant(metric),
        ingestId: fc.string({ minLength: 1 }),
        samples: fc.array(item(metric === 'sleep_stage'), { minLength: 1, maxLength: 5 }),
      }),
    })
    .map((e) => JSON.parse(JSON.stringify(e)) as unknown),
)

/** Every place in a JSON value: [holder, key] pairs. */
function places(v: unknown, out: Array<[Record<string, unknown> | unknown[], string | number]> = []): Array<[Record<string, unknown> | unknown[], string | number]> {
  if (Array.isArray(v)) {
    v.forEach((x, i) => {
      out.push([v, i])
      places(x, out)
    })
  } else if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) {
      out.push([v as Record<string, unknown>, k])
      places(x, out)
    }
  }
  return out
}

/** Values that break a field in some way: a wrong type, an edge of a bound, a date of another form. */
const DAMAGE = [
  undefined,
  null,
  '',
  'x'.repeat(257),
  'x'.repeat(1025),
  841,
  -841,
  1.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  [],
  {},
  '2026-02-29T00:00:00.000Z',
  '2024-02-29T00:00:00.000Z',
  '1900-02-29T00:00:00.000Z',
  '2000-02-29T00:00:00.000Z',
  '2026-04-31T00:00:00.000Z',
  '2026-13-01T00:00:00.000Z',
  '2026-00-10T00:00:00.000Z',
  '2026-01-00T00:00:00.000Z',
  '2026-01-01T24:00:00.000Z',
  '2026-01-01T23:60:00.000Z',
  '2026-01-01T23:59:60.000Z',
  '2026-01-01T00:00:00Z',
  '2026-01-01T00:00:00.000+00:00',
  '2026-01-01T00:00:00.0000Z',
  '2026-01-01 00:00:00.000Z',
  '+02026-01-01T00:00:00.000Z',
  '2026-01-01T00:00:00.00aZ',
  '２０２６-01-01T00:00:00.000Z',
  'F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6',
  'not-a-uuid',
  'hph.sample.v1',
  '1.00',
  'sleep_stage',
  'heart_rate',
  'deep',
  'naps',
  'x'.repeat(201),
  'x'.repeat(65),
  'a b',
  840,
  -840,
  0,
  '2026-01-01T00:00:00.000Zx',
  '2026-01-01T00:00:00.000Z0',
]
const damage = fc.oneof(fc.anything(), fc.constantFrom(...DAMAGE))

describe('isPlainSampleEvent', () => {
  it('takes the events normalize writes, which the schema returns unchanged', () => {
    const samples = [
      {
        type: 'HKCategoryTypeIdentifierSleepAnalysis',
        value: 'HKCategoryValueSleepAnalysisAsleepCore',
        startDate: '2026-03-01T02:14:00-08:00',
        endDate: '2026-03-01T02:44:00-08:00',
        uuid: 'ext-1',
      },
      {
        type: 'HKQuantityTypeIdentifierHeartRate',
        value: 61,
        unit: 'count/min',
        startDate: '2026-03-01T02:14:00+05:30',
        endDate: '2026-03-01T02:14:00+05:30',
        sourceName: 'Ring',
        device: 'Gen3',
      },
    ]
    const r = normalizeBatch(parseBatchEnvelope({ source: { name: 'Watch', bundleId: 'com.apple' }, samples }, { maxSamples: 10 }), {
      userId: 'ana',
      ingestId: 'ing-1',
      now: new Date('2026-06-01T00:00:00Z'),
    })
    const events = sampleEventsOf('p', { userId: 'ana', ingestId: 'ing-1', receivedAt: '2026-06-01T00:00:00.000Z' }, r.samples, 256 * 1024)
    expect(events).toHaveLength(2)
    for (const o of events) {
      const decoded = decodeJson(o.encoded as Uint8Array)
      expect(agrees(decoded)).toBe(true)
      expect(SampleEvent.parse(decoded)).toStrictEqual(o.event)
    }
  })

  it('takes generated events, and only what the schema accepts unchanged', () => {
    let taken = 0
    fc.assert(
      fc.property(event, (e) => void (agrees(e) && taken++)),
      { numRuns: 500 },
    )
    // the generator writes every form the fast check knows: it took them all
    expect(taken).toBe(500)
  }, 60_000)

  it('never takes a damaged event the schema would refuse or change', () => {
    let taken = 0
    let left = 0
    fc.assert(
      fc.property(event, fc.nat(), damage, fc.constantFrom('set', 'delete', 'add'), (e, at, bad, how) => {
        const all = places(e)
        const [holder, key] = all[at % all.length] as (typeof all)[number]
        if (how === 'set') (holder as Record<string | number, unknown>)[key] = bad
        else if (how === 'delete' && !Array.isArray(holder)) delete holder[key as string]
        else if (how === 'delete') holder.length = 0
        else if (Array.isArray(holder)) holder.push(bad)
        else holder[`extra${key}`] = bad
        if (agrees(e)) taken++
        else left++
      }),
      { numRuns: 2000 },
    )
    // both sides were exercised: harmless damage (an optional text in bounds) is still taken
    expect(left).toBeGreaterThan(400)
    expect(taken).toBeGreaterThan(40)
  }, 60_000)

  it('never takes an event with any one field set to any of the edge values the schema refuses or changes', () => {
    const base = {
      type: 'HKQuantityTypeIdentifierHeartRate',
      value: 61,
      unit: 'count/min',
      startDate: '2026-03-01T02:14:00Z',
      endDate: '2026-03-01T02:15:00Z',
      uuid: 'ext',
      sourceName: 'Ring',
      sourceBundleId: 'b',
      device: 'd',
    }
    const r = normalizeBatch(
      parseBatchEnvelope({ samples: [base, { ...base, type: 'HKCategoryTypeIdentifierSleepAnalysis', value: 'HKCategoryValueSleepAnalysisAsleepREM' }] }, { maxSamples: 10 }),
      { userId: 'ana', ingestId: 'i', now: new Date('2026-06-01T00:00:00Z') },
    )
    const encoded = sampleEventsOf('p', { userId: 'ana', ingestId: 'i', receivedAt: '2026-06-01T00:00:00.000Z' }, r.samples, 256 * 1024).map((o) => o.encoded as Uint8Array)
    let left = 0
    for (const bytes of encoded) {
      for (let at = 0; at < places(decodeJson(bytes)).length; at++) {
        for (const bad of DAMAGE) {
          const e = decodeJson(bytes)
          const [holder, key] = places(e)[at] as ReturnType<typeof places>[number]
          ;(holder as Record<string | number, unknown>)[key] = bad
          if (!agrees(e)) left++
        }
      }
    }
    expect(left).toBeGreaterThan(500)
  })

  it('leaves everything else to the schema, whose errors still name the field', () => {
    const r = SampleEvent.safeParse({
      specversion: '1.0',
      id: 'e',
      type: SAMPLE_TYPE,
      source: 's',
      subject: 'ana',
      time: '2026-01-01T00:00:00.000Z',
      data: { userId: 'ana', metric: 'heart_rate', ingestId: 'i', samples: [{ id: 'x' }] },
    })
    expect(r.success).toBe(false)
    expect(r.error?.issues.map((i) => i.path.join('.'))).toContain('data.samples.0.id')
  })
})

describe('isIsoInstant', () => {
  it('takes what toISOString writes for years 0–9999', () => {
    fc.assert(fc.property(instant, (s) => isIsoInstant(s)))
  })

  it('takes nothing the schema refuses, on strings of the same shape', () => {
    const shaped = fc
      .tuple(
        ...Array.from({ length: 24 }, (_, i) =>
          i === 4 || i === 7
            ? fc.constantFrom('-', '0', '/')
            : i === 10
              ? fc.constantFrom('T', ' ', 't')
              : i === 13 || i === 16
                ? fc.constantFrom(':', '0')
                : i === 19
                  ? fc.constantFrom('.', ',')
                  : i === 23
                    ? fc.constantFrom('Z', 'z', '0')
                    : fc.constantFrom(...'0123456789a'),
        ),
      )
      .map((c) => c.join(''))
    let taken = 0
    fc.assert(
      fc.property(fc.oneof(shaped, instant), (s) => {
        if (!isIsoInstant(s)) return
        taken++
        expect(ZodInstant.safeParse(s).success).toBe(true)
      }),
      { numRuns: 20_000 },
    )
    expect(taken).toBeGreaterThan(5000)
  }, 60_000)
})
