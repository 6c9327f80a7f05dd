import fc from 'fast-check'

// Adversarial request bodies for the "never crashes" promises (docs/architecture.md §9.6, docs/api.md §9): JSON texts written
// token by token, so they can hold what JSON.stringify never writes — duplicate keys, `__proto__`, numbers
// beyond a double, deep nesting — beside batches that look almost right.

const HOSTILE_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__']
const FIELDS = ['batchId', 'source', 'samples', 'uuid', 'type', 'value', 'unit', 'startDate', 'endDate', 'sourceName', 'sourceBundleId', 'device', 'name', 'bundleId']
const TYPES = [
  'HKQuantityTypeIdentifierHeartRateVariabilitySDNN',
  'HKQuantityTypeIdentifierRestingHeartRate',
  'HKQuantityTypeIdentifierHeartRate',
  'HKCategoryTypeIdentifierSleepAnalysis',
  'HPHQuantityTypeIdentifierHeartRateVariabilityRMSSD',
  'HKQuantityTypeIdentifierStepCount',
]
const UNITS = ['ms', 's', 'count/min', 'bpm', '', 'MS', 'ms ', 'µs']
const SLEEP_VALUES = [
  'HKCategoryValueSleepAnalysisInBed',
  'HKCategoryValueSleepAnalysisAsleepDeep',
  'HKCategoryValueSleepAnalysisAwake',
  'HKCategoryValueSleepAnalysisAsleepREM',
  'HKCategoryValueSleepAnalysisBogus',
]

const str = (s: string) => JSON.stringify(s)

/** Number texts, including those a double cannot hold. */
export const numberText = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
  fc.integer().map(String),
  fc.constantFrom(
    '1e400',
    '-1e400',
    '123456789012345678901234567890',
    '0.000000000000000000000000001',
    '-0',
    '5e-324',
    '1.7976931348623157e308',
    '9007199254740993',
    '48.2',
    '0',
    '3',
    '2.5',
    '1E2',
  ),
)

/** Date-like texts: valid ISO and export.xml forms, impossible dates, far years, garbage. */
export const dateText = fc.oneof(
  fc.date({ min: new Date('1960-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => str(d.toISOString())),
  fc.constantFrom(
    '"2026-03-01T02:14:00-08:00"',
    '"2026-03-01 02:14:00 -0800"',
    '"2026-02-30T00:00:00Z"',
    '"2026-13-01T00:00:00Z"',
    '"2026-03-01T24:00:00Z"',
    '"2026-03-01T02:14:00+14:01"',
    '"+275760-09-13T00:00:00Z"',
    '"-000001-01-01T00:00:00Z"',
    '"0000-01-01T00:00:00Z"',
    '"9999-12-31T23:59:59Z"',
    '"yesterday"',
    '""',
    '"2026-03-01"',
    '"2026-03-01T02:14:00"',
    '"2026-03-01T02:14:00.123456789Z"',
    '1772330040000',
    'null',
    '{}',
    '[]',
  ),
  fc.string().map(str),
)

/** Any JSON text, nested up to `depth`, with hostile keys and duplicate keys among the ordinary ones. */
export function jsonText(depth: number): fc.Arbitrary<string> {
  const { value } = fc.letrec<{ value: string; array: string; object: string }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', maxDepth: depth },
      numberText,
      fc.string({ unit: 'binary' }).map(str),
      fc.constantFrom('true', 'false', 'null'),
      tie('array'),
      tie('object'),
    ),
    array: fc.array(tie('value'), { maxLength: 4 }).map((xs) => `[${xs.join(',')}]`),
    object: fc
      .array(fc.tuple(fc.oneof(fc.constantFrom(...HOSTILE_KEYS, ...FIELDS), fc.string({ unit: 'grapheme' })), tie('value')), { maxLength: 4 })
      .map((kvs) => `{${kvs.map(([k, v]) => `${str(k)}:${v}`).join(',')}}`),
  }))
  return value
}

/** A nesting of `[` / `{` of the given depth around a value. */
export const deepText = fc
  .tuple(fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 5000 })), fc.boolean())
  .map(([n, arrays]) => (arrays ? `${'['.repeat(n)}1${']'.repeat(n)}` : `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`))

const sampleText = fc
  .record({
    type: fc.oneof(fc.constantFrom(...TYPES).map(str), fc.string().map(str), numberText),
    value: fc.oneof(numberText, fc.constantFrom(...SLEEP_VALUES).map(str), fc.string().map(str), fc.constantFrom('null', '[]', '{}')),
    unit: fc.oneof(fc.constantFrom(...UNITS).map(str), numberText),
    startDate: dateText,
    endDate: dateText,
    uuid: fc.oneof(fc.uuid().map(str), fc.string().map(str), numberText),
    extra: fc.option(fc.tuple(fc.constantFrom(...HOSTILE_KEYS), jsonText(2)), { nil: undefined }),
  })
  .map(({ extra, ...s }) => `{${[...Object.entries(s).map(([k, v]) => `${str(k)}:${v}`), ...(extra ? [`${str(extra[0])}:${extra[1]}`] : [])].join(',')}}`)

/** A sample that is valid or nearly so: an understood type, its unit, a value near its range, a minute-long interval. */
const plausibleSampleText = fc
  .record({
    kind: fc.constantFrom('hrv', 'hr', 'sleep'),
    value: fc.double({ min: -10, max: 600, noNaN: true }),
    code: fc.integer({ min: -1, max: 6 }),
    start: fc.date({ min: new Date('2020-01-01T00:00:00Z'), max: new Date('2027-01-01T00:00:00Z'), noInvalidDate: true }),
    minutes: fc.integer({ min: -5, max: 1500 }),
    uuid: fc.option(fc.uuid(), { nil: undefined }),
  })
  .map(({ kind, value, code, start, minutes, uuid }) =>
    JSON.stringify({
      ...(uuid ? { uuid } : {}),
      ...(kind === 'hrv' ? { type: TYPES[0], value, unit: 'ms' } : kind === 'hr' ? { type: TYPES[2], value, unit: 'count/min' } : { type: TYPES[3], value: code }),
      startDate: start.toISOString(),
      endDate: new Date(start.getTime() + minutes * 60_000).toISOString(),
    }),
  )

/** A batch that is nearly right: the envelope's fields, samples of understood and other types, hostile extras. */
export const batchText = fc
  .record({
    batchId: fc.option(fc.oneof({ weight: 4, arbitrary: fc.string({ maxLength: 140 }).map(str) }, { weight: 1, arbitrary: numberText }), { nil: undefined }),
    source: fc.option(
      fc.oneof({ weight: 1, arbitrary: jsonText(2) }, { weight: 4, arbitrary: fc.record({ name: fc.string(), bundleId: fc.string() }).map((o) => JSON.stringify(o)) }),
      { nil: undefined },
    ),
    samples: fc.oneof(
      { weight: 5, arbitrary: fc.array(fc.oneof(sampleText, plausibleSampleText), { minLength: 1, maxLength: 8 }).map((xs) => `[${xs.join(',')}]`) },
      { weight: 1, arbitrary: jsonText(3) },
    ),
    hostile: fc.option(fc.tuple(fc.constantFrom(...HOSTILE_KEYS), jsonText(2)), { nil: undefined }),
    deep: fc.option(deepText, { nil: undefined, freq: 4 }),
  })
  .map(({ batchId, source, samples, hostile, deep }) => {
    const fields = [
      ...(batchId !== undefined ? [`"batchId":${batchId}`] : []),
      ...(source !== undefined ? [`"source":${source}`] : []),
      `"samples":${samples}`,
      ...(hostile ? [`${str(hostile[0])}:${hostile[1]}`] : []),
      ...(deep ? [`"nested":${deep}`] : []),
    ]
    return `{${fields.join(',')}}`
  })

/** Any body a client could send: mostly near-batches, then any JSON, deep nesting, and text that is not JSON. */
export const bodyText = fc.oneof(
  { weight: 6, arbitrary: batchText },
  { weight: 2, arbitrary: jsonText(4) },
  { weight: 1, arbitrary: deepText },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
)
