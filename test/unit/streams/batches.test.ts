import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { rawParts } from '../../../ingest/raw-batch.ts'
import { normalizeBatch, parseBatchEnvelope, type NormalizedSample } from '../../../processors/normalize/healthkit.ts'
import { sampleEventsOf, sampleItemOf, sampleItemWriter } from '../../../processors/normalize/stage.ts'
import { arrayJson, decodeJson, encodeEnvelope, envelope, jsonParts } from '../../../streams/envelope.ts'
import { hashHex } from '../../../streams/ids.ts'
import { INGEST_TYPE, INSIGHT_V1_TYPE, METRICS, SAMPLE_TYPE, SAMPLE_V1_TYPE, SampleBatch, SleepStage, type RawBatch, type Sample } from '../../../streams/schemas.ts'
import { eventByteLimit, HEADROOM_BYTES } from '../../../streams/sizing.ts'
import { InsightEvent, SampleEvent, upcastStored } from '../../../streams/upcast.ts'

// docs/architecture.md §5, §6: how events are cut, and how old ones are read.

const now = new Date('2026-06-01T00:00:00Z')
/** `n` heart-rate samples (and every third an HRV one), as normalize builds them from one raw batch. */
function normalized(n: number, opts: { pad?: number } = {}): NormalizedSample[] {
  const samples = Array.from({ length: n }, (_, i) => ({
    type: i % 3 === 0 ? 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN' : 'HKQuantityTypeIdentifierHeartRate',
    value: i % 3 === 0 ? 40 + (i % 50) : 50 + (i % 90),
    unit: i % 3 === 0 ? 'ms' : 'count/min',
    startDate: new Date(Date.UTC(2026, 0, 1) + i * 60_000).toISOString(),
    endDate: new Date(Date.UTC(2026, 0, 1) + i * 60_000 + 1000).toISOString(),
    ...(opts.pad ? { sourceName: 'x'.repeat(opts.pad) } : {}),
  }))
  return normalizeBatch(parseBatchEnvelope({ samples }, { maxSamples: 100_000 }), { userId: 'ana', ingestId: 'ing-1', now }).samples
}
const raw = { userId: 'ana', ingestId: 'ing-1', receivedAt: now.toISOString() }
const bytesOf = (o: { encoded?: Uint8Array | undefined }) => o.encoded?.length ?? 0

describe('jsonParts', () => {
  it('cuts at the byte bound exactly: a run that fills it stays whole, one byte less cuts it', () => {
    const items = ['aaaa', 'bbbb', 'cccc'] // each `"aaaa"` + a separator = 7 bytes; the array's brackets 2
    expect(jsonParts(items, 10, 2 + 3 * 7).map((p) => p.items)).toEqual([items])
    expect(jsonParts(items, 10, 2 + 3 * 7 - 1).map((p) => p.items)).toEqual([['aaaa', 'bbbb'], ['cccc']])
    expect(jsonParts(items, 2, 1000).map((p) => p.items)).toEqual([['aaaa', 'bbbb'], ['cccc']])
    for (const p of jsonParts(items, 2, 1000)) expect(arrayJson(p.texts)).toBe(JSON.stringify(p.items))
  })

  it('puts an item larger than the bound in a part of its own', () => {
    const parts = jsonParts(['a', 'b'.repeat(50), 'c'], 10, 20)
    expect(parts.map((p) => p.items.length)).toEqual([1, 1, 1])
    expect(parts[1]!.bytes).toBeGreaterThan(20)
  })

  it('never loses, doubles or reorders an item, and keeps every part within both bounds', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 40 }), { maxLength: 200 }), fc.integer({ min: 1, max: 50 }), fc.integer({ min: 50, max: 2000 }), (items, maxItems, maxBytes) => {
        const parts = jsonParts(items, maxItems, maxBytes)
        expect(parts.flatMap((p) => p.items)).toEqual(items)
        for (const p of parts) {
          expect(p.items.length).toBeLessThanOrEqual(maxItems)
          expect(Buffer.byteLength(arrayJson(p.texts))).toBeLessThanOrEqual(Math.max(maxBytes, p.bytes))
          if (p.items.length > 1) expect(Buffer.byteLength(arrayJson(p.texts))).toBeLessThanOrEqual(maxBytes)
        }
      }),
    )
  })
})

describe('hph.sample.v2 events of a raw batch', () => {
  it("writes each sample as the rest of its fields after the event's, byte for byte (sampleItemOf)", () => {
    // what sampleItemOf replaced: the sample without the event's fields, by a rest spread
    const spread = (id: string, sample: Sample) => {
      const { userId: _u, metric: _m, ingestId: _i, ...rest } = sample
      return { id, ...rest }
    }
    const instant = fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59.999Z'), noInvalidDate: true }).map((d) => d.toISOString())
    const source = fc.record({ name: fc.string({ minLength: 1 }), bundleId: fc.string(), device: fc.string() }, { requiredKeys: ['name'] })
    // the fields in the order normalizeSample writes them (value or stage; externalId last, when there is one)
    const sample = fc
      .record({
        userId: fc.string(),
        metric: fc.constantFrom(...METRICS),
        start: instant,
        end: instant,
        utcOffsetMinutes: fc.integer({ min: -840, max: 840 }),
        reading: fc.oneof(fc.record({ value: fc.double({ noNaN: true, noDefaultInfinity: true }) }), fc.record({ stage: fc.constantFrom(...SleepStage.options) })),
        source,
        ingestId: fc.string(),
        externalId: fc.option(fc.string(), { nil: undefined }),
      })
      .map(({ reading, source, ingestId, externalId, ...head }) => ({ ...head, ...reading, source, ingestId, ...(externalId === undefined ? {} : { externalId }) }) as Sample)
    fc.assert(
      fc.property(fc.uuid(), sample, (id, s) => {
        expect(JSON.stringify(sampleItemOf(id, s))).toBe(JSON.stringify(spread(id, s)))
      }),
      { numRuns: 2000 },
    )
    // and the samples normalize really builds, of every kind it builds (quantities, sleep, a derived RMSSD)
    const built = [...normalized(30), ...normalized(3, { pad: 10 })]
    for (const { id, sample: s } of built) expect(JSON.stringify(sampleItemOf(id, s))).toBe(JSON.stringify(spread(id, s)))

    // sampleItemWriter writes what JSON.stringify writes, item after item, sources equal or not (its cache of the last
    // source's JSON): runs of one source, sources that differ in one field, or in a field left out
    const canonical = (name: string, bundleId: string | undefined, device: string | undefined) => ({
      name,
      ...(bundleId === undefined ? {} : { bundleId }),
      ...(device === undefined ? {} : { device }),
    })
    const sources = fc
      .tuple(source, fc.string(), fc.string())
      .map(([s, other, another]) => [
        s,
        canonical(s.name, s.bundleId, other),
        canonical(s.name, another, s.device),
        canonical(s.name, s.bundleId, undefined),
        canonical(s.name, undefined, s.device),
      ])
    fc.assert(
      fc.property(
        sources.chain((pool) =>
          fc.array(fc.tuple(fc.uuid(), sample, fc.nat(pool.length - 1)), { maxLength: 30 }).map((xs) => xs.map(([id, s, k]) => sampleItemOf(id, { ...s, source: pool[k]! }))),
        ),
        (items) => {
          const write = sampleItemWriter()
          for (const item of items) expect(write(item)).toBe(JSON.stringify(item))
        },
      ),
      { numRuns: 1000 },
    )
    const write = sampleItemWriter()
    for (const { id, sample: s } of built) expect(write(sampleItemOf(id, s))).toBe(JSON.stringify(sampleItemOf(id, s)))
  })

  it('holds one metric each, at most 1000 samples, with ids from (ingest id, metric, part)', () => {
    const samples = normalized(3300) // 1100 HRV, 2200 heart rate
    const events = sampleEventsOf('hph', raw, samples, 1024 * 1024)
    const shape = events.map((e) => [e.subject, (e.event.data as SampleBatch).samples.length])
    expect(shape).toEqual([
      ['hph.samples.v2.hrv_sdnn.ana', 1000],
      ['hph.samples.v2.hrv_sdnn.ana', 100],
      ['hph.samples.v2.heart_rate.ana', 1000],
      ['hph.samples.v2.heart_rate.ana', 1000],
      ['hph.samples.v2.heart_rate.ana', 200],
    ])
    expect(events.map((e) => e.event.id)).toEqual([
      hashHex('samples', 'ing-1', 'hrv_sdnn', 0),
      hashHex('samples', 'ing-1', 'hrv_sdnn', 1),
      hashHex('samples', 'ing-1', 'heart_rate', 0),
      hashHex('samples', 'ing-1', 'heart_rate', 1),
      hashHex('samples', 'ing-1', 'heart_rate', 2),
    ])
    // every sample once, each keeping its own id; the bytes are what encodeEnvelope writes, and valid
    expect(events.flatMap((e) => (e.event.data as SampleBatch).samples.map((s) => s.id)).sort()).toEqual(samples.map((s) => s.id).sort())
    for (const e of events) {
      expect(Buffer.from(e.encoded!).toString()).toBe(Buffer.from(encodeEnvelope(e.event)).toString())
      expect(SampleEvent.safeParse(decodeJson(e.encoded!)).success).toBe(true)
      expect(e.event.type).toBe(SAMPLE_TYPE)
    }
  })

  it('cuts a group into parts below the byte bound (samples of ~450 bytes: fewer than 1000 to an event)', () => {
    const samples = normalized(900, { pad: 250 })
    expect(samples.length).toBe(900)
    const limit = 16 * 1024
    const events = sampleEventsOf('hph', raw, samples, limit)
    expect(events.length).toBeGreaterThan(20)
    for (const e of events) expect(bytesOf(e)).toBeLessThanOrEqual(limit)
    expect(events.reduce((n, e) => n + (e.event.data as SampleBatch).samples.length, 0)).toBe(900)
  })

  it('is deterministic: the same raw batch gives the same events (a redelivered batch is dropped by JetStream)', () => {
    const a = sampleEventsOf('hph', raw, normalized(1500), 256 * 1024)
    const b = sampleEventsOf('hph', raw, normalized(1500), 256 * 1024)
    expect(a.map((e) => [e.event.id, Buffer.from(e.encoded!).toString()])).toEqual(b.map((e) => [e.event.id, Buffer.from(e.encoded!).toString()]))
  })

  it('takes the lower of HPH_EVENT_MAX_BYTES and what the server takes', () => {
    expect(eventByteLimit({ info: { max_payload: 1024 * 1024 } } as never, 256 * 1024)).toBe(256 * 1024)
    expect(eventByteLimit({ info: { max_payload: 64 * 1024 } } as never, 256 * 1024)).toBe(64 * 1024 - HEADROOM_BYTES)
  })
})

describe('the upcasters', () => {
  const v1 = envelope({
    id: '3a1f0e2a-2b1e-4d07-9a59-1b2f3c4d5e6f',
    type: SAMPLE_V1_TYPE,
    source: 'normalize',
    subject: 'ana',
    time: '2026-03-01T10:00:00.000Z',
    data: {
      userId: 'ana',
      metric: 'hrv_sdnn',
      start: '2026-03-01T10:14:00.000Z',
      end: '2026-03-01T10:15:00.000Z',
      utcOffsetMinutes: -480,
      value: 48.2,
      source: { name: 'Apple Watch' },
      ingestId: 'ing-9',
    },
  })

  it('reads an hph.sample.v1 event as the one-sample hph.sample.v2 event it stands for, the event id as the sample id', () => {
    const r = SampleEvent.safeParse(v1)
    expect(r.success).toBe(true)
    expect(r.data?.type).toBe(SAMPLE_TYPE)
    expect(r.data?.data).toEqual({
      userId: 'ana',
      metric: 'hrv_sdnn',
      ingestId: 'ing-9',
      samples: [{ id: v1.id, start: '2026-03-01T10:14:00.000Z', end: '2026-03-01T10:15:00.000Z', utcOffsetMinutes: -480, value: 48.2, source: { name: 'Apple Watch' } }],
    })
    expect(upcastStored(v1)).toEqual(r.data)
  })

  it('refuses a v1 or v2 event that breaks its schema, naming the field', () => {
    const bad = SampleEvent.safeParse({ ...v1, data: { ...v1.data, utcOffsetMinutes: 5000 } })
    expect(bad.success).toBe(false)
    expect(JSON.stringify(bad.error?.issues)).toContain('utcOffsetMinutes')
    const sleepWithValue = {
      ...v1,
      type: SAMPLE_TYPE,
      data: { userId: 'ana', metric: 'sleep_stage', ingestId: 'i', samples: [{ ...SampleEvent.parse(v1).data.samples[0], stage: 'deep' }] },
    }
    expect(SampleEvent.safeParse(sleepWithValue).success).toBe(false)
    expect(SampleEvent.safeParse({ ...v1, type: 'hph.sample.v7' }).success).toBe(false)
  })

  it('reads an hph.insight.v1 event as a one-row hph.insight.v2 event of its group', () => {
    const e = envelope({
      id: 'x',
      type: INSIGHT_V1_TYPE,
      source: 'insights-engine',
      subject: 'ana',
      data: { userId: 'ana', kind: 'readiness_daily', key: '2026-03-01', dataVersion: 7, dataCount: 3, row: null },
    })
    const r = InsightEvent.parse(e)
    expect(r.data).toEqual({ userId: 'ana', group: 'daily', rows: [{ kind: 'readiness_daily', key: '2026-03-01', dataVersion: 7, dataCount: 3, row: null }] })
    expect(InsightEvent.parse({ ...e, data: { ...e.data, kind: 'cpt', key: '' } }).data.group).toBe('cpt')
    // a v2 event whose row is not of its group is refused
    expect(InsightEvent.safeParse({ ...r, data: { ...r.data, group: 'cpt' } }).success).toBe(false)
  })
})

describe('a raw batch larger than one message', () => {
  const payload = {
    batchId: 'b-1',
    source: { name: 'Apple Watch' },
    samples: Array.from({ length: 3000 }, (_, i) => ({
      type: 'HKQuantityTypeIdentifierHeartRate',
      value: 60,
      unit: 'count/min',
      startDate: `2026-01-01T00:00:${String(i % 60).padStart(2, '0')}Z`,
      endDate: `2026-01-01T00:00:${String(i % 60).padStart(2, '0')}Z`,
      uuid: `u-${i}`.padEnd(200, '.'),
    })),
  }
  const event = envelope<RawBatch>({
    id: 'ingest-1',
    type: INGEST_TYPE,
    source: 'api',
    subject: 'ana',
    data: { userId: 'ana', receivedAt: now.toISOString(), batchId: 'b-1', payload },
  })

  it('is stored as parts of the same batch under the limit, every sample once and in order, with its place', () => {
    const limit = 100 * 1024
    const parts = rawParts(event, payload.samples, limit)
    expect(parts.length).toBeGreaterThan(5)
    for (const p of parts) expect(p.encoded.length).toBeLessThanOrEqual(limit)
    const decoded = parts.map((p) => decodeJson(p.encoded) as { id: string; data: RawBatch & { payload: typeof payload } })
    expect(decoded.flatMap((d) => d.data.payload.samples)).toEqual(payload.samples)
    let offset = 0
    for (const [i, d] of decoded.entries()) {
      expect(d.data.part).toEqual({ index: i, count: parts.length, offset })
      expect(d.data.payload.batchId).toBe('b-1')
      expect(d.data.payload.source).toEqual({ name: 'Apple Watch' })
      offset += d.data.payload.samples.length
    }
    // deterministic ids, distinct from the batch's and from each other
    const ids = parts.map((p) => p.event.id)
    expect(new Set(ids).size).toBe(ids.length)
    expect(ids).not.toContain('ingest-1')
    expect(rawParts(event, payload.samples, limit).map((p) => p.event.id)).toEqual(ids)
  })

  it('refuses a single sample larger than a message, naming it', () => {
    const big = {
      samples: [
        { type: 'x', value: 1 },
        { type: 'x', note: 'y'.repeat(5000) },
      ],
    }
    const e = { ...event, data: { ...event.data, payload: big } }
    expect(() => rawParts(e, big.samples, 4096)).toThrow(/samples\[1\] takes \d+ bytes/)
  })
})
