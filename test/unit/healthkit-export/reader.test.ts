import { arrayJson } from '../../../streams/envelope.ts'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import { Zip, ZipDeflate, ZipPassThrough, zipSync } from 'fflate'
import { describe, expect, it } from 'vitest'
import { ExportFormatError } from '../../../ingest/healthkit-export/errors.ts'
import {
  exportSampleWriter,
  readExport,
  RECORD_ATTRIBUTES,
  type ExportBatch,
  type ExportCounts,
  type ExportFormat,
  type ExportSample,
} from '../../../ingest/healthkit-export/reader.ts'
import { normalizeBatch, type NormalizedSample } from '../../../processors/normalize/healthkit.ts'
import { exportRecords, exportSamples } from '../../helpers/export-fixture.ts'

const SMALL = readFileSync(new URL('../../fixtures/healthkit-export-small.xml', import.meta.url))
const NIGHTS = readFileSync(new URL('../../fixtures/healthkit-export-30-nights.xml', import.meta.url))
const SLEEP = 'HKCategoryTypeIdentifierSleepAnalysis'
const SDNN = 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN'
const HR = 'HKQuantityTypeIdentifierHeartRate'
const UNDERSTOOD = new Set([SLEEP, SDNN, HR, 'HKQuantityTypeIdentifierRestingHeartRate', 'HPHQuantityTypeIdentifierHeartRateVariabilityRMSSD'])

/** The bytes as a stream of pieces of the given sizes (cycled). */
async function* pieces(bytes: Uint8Array, sizes: readonly number[] = [64 * 1024]): AsyncGenerator<Uint8Array> {
  let i = 0
  for (let at = 0; at < bytes.length; i++) {
    const n = Math.max(1, sizes[i % sizes.length]!)
    yield bytes.subarray(at, at + n)
    at += n
  }
}

/** a batch with its samples parsed from its JSON */
type ReadBatch = ExportBatch & { samples: ExportSample[] }

interface Read {
  batches: ReadBatch[]
  counts: ExportCounts
  error?: unknown
}

async function read(bytes: Uint8Array, opts: { format?: ExportFormat; batchSize?: number; sizes?: number[]; maxBatchChars?: number } = {}): Promise<Read> {
  const r = readExport(pieces(bytes, opts.sizes), {
    format: opts.format ?? 'xml',
    batchSize: opts.batchSize ?? 1000,
    ...(opts.maxBatchChars ? { maxBatchChars: opts.maxBatchChars } : {}),
  })
  const batches: ReadBatch[] = []
  try {
    for await (const b of r.batches) {
      const samples = JSON.parse(arrayJson(b.texts)) as ExportSample[]
      expect(b.size).toBe(samples.length)
      expect(b.lines).toHaveLength(samples.length)
      batches.push({ ...b, samples })
    }
  } catch (error) {
    return { batches, counts: r.counts, error }
  }
  return { batches, counts: r.counts }
}

const now = new Date('2026-11-01T00:00:00Z')
function normalized(batches: readonly ReadBatch[]): NormalizedSample[] {
  return batches.flatMap((b) => {
    const r = normalizeBatch({ samples: b.samples }, { userId: 'ana', ingestId: `ing-${b.index}`, now })
    expect(r.rejected).toEqual([])
    return r.samples
  })
}

const understoodRecords = (xml: string) => exportRecords(xml).filter((r) => UNDERSTOOD.has(r.type ?? ''))

describe('the small real export (fixtures/README.md)', () => {
  it('reads 1 heart-rate record, skips 2 records by type and counts the workout and activity summaries', async () => {
    const r = await read(SMALL)
    expect(r.error).toBeUndefined()
    expect(r.counts.records).toEqual({ [HR]: 1 })
    expect(r.counts.skippedRecords).toEqual({ HKQuantityTypeIdentifierBodyMassIndex: 1, HKQuantityTypeIdentifierDietaryFatTotal: 1 })
    expect(r.counts.otherElements).toEqual({ ExportDate: 1, Me: 1, Workout: 1, ActivitySummary: 2 })
    expect(r.counts.bytesRead).toBe(SMALL.length)
    expect(r.batches).toHaveLength(1)
    expect(r.batches[0]!.lines).toEqual([11]) // the line of its <Record …>
  })

  it('gives the one canonical heart_rate sample: 72 /min at 2018-09-10 02:28:55 -0700 from the Apple Watch', async () => {
    const [s] = normalized((await read(SMALL)).batches)
    expect(s!.sample).toEqual({
      userId: 'ana',
      metric: 'heart_rate',
      start: '2018-09-10T09:28:55.000Z',
      end: '2018-09-10T09:28:55.000Z',
      utcOffsetMinutes: -420,
      value: 72,
      source: { name: 'Apple Watch', device: '<<HKDevice: 0x282a45810>, name:Apple Watch, manufacturer:Apple, model:Watch, hardware:Watch2,4, software:4.3.1>' },
      ingestId: 'ing-0',
    })
  })
})

describe('the 30-nights export (fixtures/README.md)', () => {
  it('reads 436 sleep and 92 SDNN records, skips 30 step counts, counts 1 activity summary', async () => {
    const r = await read(NIGHTS)
    expect(r.error).toBeUndefined()
    expect(r.counts.records).toEqual({ [SLEEP]: 436, [SDNN]: 92 })
    expect(r.counts.skippedRecords).toEqual({ HKQuantityTypeIdentifierStepCount: 30 })
    expect(r.counts.otherElements).toEqual({ ExportDate: 1, Me: 1, ActivitySummary: 1 })
  })

  it('cuts batches of the given size in file order, the last one shorter', async () => {
    const r = await read(NIGHTS, { batchSize: 100 })
    expect(r.batches.map((b) => b.samples.length)).toEqual([100, 100, 100, 100, 100, 28])
    expect(r.batches.map((b) => b.index)).toEqual([0, 1, 2, 3, 4, 5])
    const lines = r.batches.flatMap((b) => b.lines)
    expect(lines).toEqual([...lines].sort((a, b) => a - b))
    // the records as the file writes them, in its order (the test helper reads them with a regex)
    expect(r.batches.flatMap((b) => b.samples)).toEqual(
      understoodRecords(NIGHTS.toString('utf8')).map((rec) => {
        const { type, sourceName, sourceVersion, device, unit, creationDate, startDate, endDate, value } = rec
        return Object.fromEntries(Object.entries({ type, sourceName, sourceVersion, device, unit, creationDate, startDate, endDate, value }).filter(([, v]) => v !== undefined))
      }),
    )
  })

  it('normalises to the canonical samples the insights worked example is built from (values, offsets, stages)', async () => {
    const got = normalized((await read(NIGHTS)).batches).map((s) => s.sample)
    const want = exportSamples(NIGHTS.toString('utf8'), 'ana')
    expect(got).toHaveLength(528)
    expect(got.map(({ metric, start, end, utcOffsetMinutes, value, stage }) => ({ metric, start, end, utcOffsetMinutes, value, stage }))).toEqual(
      want.map(({ sample: { metric, start, end, utcOffsetMinutes, value, stage } }) => ({ metric, start, end, utcOffsetMinutes, value, stage })),
    )
    // spot checks, worked by hand from the file's first lines
    expect(got[0]).toMatchObject({
      metric: 'sleep_stage',
      stage: 'in_bed',
      start: '2026-03-01T07:10:00.000Z',
      end: '2026-03-01T16:19:00.000Z',
      utcOffsetMinutes: -480,
      source: { name: 'iPhone' },
    })
    expect(got[1]).toMatchObject({ metric: 'sleep_stage', stage: 'core', start: '2026-03-01T07:50:00.000Z', end: '2026-03-01T08:14:00.000Z', utcOffsetMinutes: -480 })
    expect(got[2]).toMatchObject({ metric: 'hrv_sdnn', value: 38.9, start: '2026-03-01T08:00:00.000Z', end: '2026-03-01T08:01:00.000Z', utcOffsetMinutes: -480 })
    expect(got[2]!.source.device).toContain('hardware:Watch6,2')
    expect(got[3]).toMatchObject({ metric: 'sleep_stage', stage: 'rem' })
    const stages = new Set(got.map((s) => s.stage).filter(Boolean))
    expect([...stages].sort()).toEqual(expect.arrayContaining(['awake', 'core', 'deep', 'in_bed', 'rem']))
  })

  it('gives the same batches however the input is chunked', async () => {
    const whole = (await read(NIGHTS, { batchSize: 64 })).batches
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 8 }), async (sizes) => {
        const r = await read(NIGHTS, { batchSize: 64, sizes })
        expect(r.error).toBeUndefined()
        expect(r.batches).toEqual(whole)
      }),
      { numRuns: 15 },
    )
  })

  it('cuts a batch early when its attributes would pass the size cap', async () => {
    const r = await read(NIGHTS, { batchSize: 1000, maxBatchChars: 50_000 })
    expect(r.batches.length).toBeGreaterThan(1)
    expect(r.batches.reduce((n, b) => n + b.samples.length, 0)).toBe(528)
    for (const b of r.batches) expect(JSON.stringify(b.samples).length).toBeLessThan(50_000 + 2_000)
  })
})

describe("a batch's JSON text", () => {
  it('is what JSON.stringify writes of its samples, whatever the attributes hold (quotes, backslashes, tabs, entities, emoji, absent ones)', async () => {
    const odd = [
      '<Record type="HKQuantityTypeIdentifierHeartRate" sourceName="Ana&apos;s &quot;Watch&quot; \\ &amp; &lt;3" unit="count/min" value="61" startDate="2026-03-01 00:00:00 -0800" endDate="2026-03-01 00:00:00 -0800"/>',
      '<Record type="HKQuantityTypeIdentifierHeartRate" sourceName="tab&#9;new&#10;line &#x1F493; Zoë" device="&lt;&lt;HKDevice&gt;&gt;" unit="count/min" value="62" creationDate="2026-03-01 00:00:01 -0800" startDate="2026-03-01 00:00:01 -0800" endDate="2026-03-01 00:00:01 -0800"/>',
      '<Record type="HKCategoryTypeIdentifierSleepAnalysis" value="HKCategoryValueSleepAnalysisAsleepCore" endDate="2026-03-01 01:00:00 -0800" startDate="2026-03-01 00:30:00 -0800" sourceName="x"/>',
    ]
    const xml = Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n<HealthData locale="en_US">\n ${odd.join('\n ')}\n</HealthData>\n`)
    const r = await read(xml)
    expect(r.error).toBeUndefined()
    const [b] = r.batches
    const want = [
      { type: HR, sourceName: 'Ana\'s "Watch" \\ & <3', unit: 'count/min', startDate: '2026-03-01 00:00:00 -0800', endDate: '2026-03-01 00:00:00 -0800', value: '61' },
      {
        type: HR,
        sourceName: 'tab\tnew\nline \u{1F493} Zoë',
        device: '<<HKDevice>>',
        unit: 'count/min',
        creationDate: '2026-03-01 00:00:01 -0800',
        startDate: '2026-03-01 00:00:01 -0800',
        endDate: '2026-03-01 00:00:01 -0800',
        value: '62',
      },
      // the attributes in the order of RECORD_ATTRIBUTES, not the file's
      { type: SLEEP, sourceName: 'x', startDate: '2026-03-01 00:30:00 -0800', endDate: '2026-03-01 01:00:00 -0800', value: 'HKCategoryValueSleepAnalysisAsleepCore' },
    ]
    expect(b!.samples).toEqual(want)
    // the text itself: what JSON.stringify writes of these objects, keys in this order
    expect(arrayJson(b!.texts)).toBe(JSON.stringify(want))
    expect(Object.keys(b!.samples[2]!)).toEqual(['type', 'sourceName', 'startDate', 'endDate', 'value'])
  })

  it('is written by exportSampleWriter as JSON.stringify writes it, record after record, repeated attributes or not', () => {
    // a few values per attribute, so that runs repeat and differ; any text, absent ones undefined as onRecord leaves them
    const value = fc.option(fc.oneof(fc.constantFrom('', 'Apple Watch', '<<HKDevice: 0x1>, name:Apple Watch>'), fc.string({ unit: 'binary' })), { nil: undefined })
    const sample = fc
      .tuple(
        fc.oneof(fc.constantFrom(SDNN, HR), fc.string()),
        ...RECORD_ATTRIBUTES.slice(1).map(() => value),
        fc.option(fc.array(fc.string({ unit: 'binary' })), { nil: undefined }),
      )
      .map(([type, ...rest]) => {
        const beatTimes = rest.pop() as string[] | undefined
        const s: Record<string, unknown> = { type }
        RECORD_ATTRIBUTES.slice(1).forEach((k, i) => (s[k] = rest[i]))
        s.beatTimes = beatTimes
        return s as ExportSample
      })
    fc.assert(
      fc.property(fc.array(sample, { maxLength: 12 }), fc.array(fc.nat(11), { maxLength: 30 }), (pool, picks) => {
        const write = exportSampleWriter()
        for (const k of picks) {
          const s = pool[k % Math.max(1, pool.length)]
          if (s) expect(write(s)).toBe(JSON.stringify(s))
        }
      }),
      { numRuns: 1000 },
    )
  })
})

describe('the counts of what is skipped', () => {
  it('are own properties whatever a type is named, cut at 128 characters, and at most 1000 names (then "(other)")', async () => {
    const rec = (type: string) => `<Record type="${type}" sourceName="x" startDate="2026-03-01 00:00:00 -0800" endDate="2026-03-01 00:00:00 -0800"/>`
    const types = ['__proto__', 'constructor', 'toString', 'X'.repeat(200), ...Array.from({ length: 1100 }, (_, i) => `T${i}`)]
    const xml = Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n<HealthData locale="en_US">\n${types.map(rec).join('\n')}\n${rec('__proto__')}\n<__proto__/>\n</HealthData>\n`)
    const r = await read(xml, { sizes: [4096] })
    expect(r.error).toBeUndefined()
    const skipped = r.counts.skippedRecords
    expect(Object.getPrototypeOf(skipped)).toBe(Object.prototype)
    expect(Object.getOwnPropertyDescriptor(skipped, '__proto__')?.value).toBe(2)
    expect(skipped.constructor).toBe(1)
    expect(skipped[`${'X'.repeat(128)}…`]).toBe(1)
    expect(Object.keys(skipped)).toHaveLength(1001)
    expect(skipped['(other)']).toBe(types.length - 1000)
    expect(Object.values(skipped).reduce((a, b) => a + b, 0)).toBe(types.length + 1)
    expect(Object.getOwnPropertyDescriptor(r.counts.otherElements, '__proto__')?.value).toBe(1)
  })
})

describe('the batches of the 30-nights export', () => {
  it('are the very batches the first version of the import made (their ids are hashes of this text: a re-import must add nothing)', async () => {
    // digests of every batch's JSON, taken with the reader of 39c7837 (the import before the parse thread)
    const digest = async (opts: { batchSize: number; maxBatchChars?: number }) => {
      const h = createHash('sha256')
      for (const b of (await read(NIGHTS, opts)).batches) h.update(arrayJson(b.texts)).update('\n')
      return h.digest('hex')
    }
    expect(await digest({ batchSize: 100 })).toBe('7de7cbfc454688a975291f7140c7e0dd260ce822e61dc42337b27be5191373de')
    expect(await digest({ batchSize: 1000, maxBatchChars: 50_000 })).toBe('f63cefd35e93e0fb4a26395e2e4ca2b1e0572f27220b2486daef1258e97c98e5')
  })
})

describe('a malformed or truncated export', () => {
  it('names the line and byte of a malformed record, after yielding the whole batches before it', async () => {
    const text = NIGHTS.toString('utf8')
    const lines = text.split('\n')
    const bad = 400 // a 1-based line number inside the records
    lines.splice(
      bad - 1,
      0,
      ' <Record type="HKQuantityTypeIdentifierHeartRate" sourceName="Zoë’s Watch" unit="count/min" value=61 startDate="2026-03-01 00:00:00 -0800" endDate="2026-03-01 00:00:00 -0800"/>',
    )
    const broken = Buffer.from(lines.join('\n'))
    const r = await read(broken, { batchSize: 50, sizes: [777] })
    expect(r.error).toBeInstanceOf(ExportFormatError)
    const e = r.error as ExportFormatError
    expect(e.code).toBe('export_malformed')
    expect(e.at.line).toBe(bad)
    const lineStart = Buffer.byteLength(lines.slice(0, bad - 1).join('\n')) + 1
    const valueAt = lineStart + Buffer.byteLength(lines[bad - 1]!.slice(0, lines[bad - 1]!.indexOf('value=61')))
    expect(e.at.byte).toBeGreaterThanOrEqual(valueAt)
    expect(e.at.byte).toBeLessThanOrEqual(valueAt + 'value=6'.length)
    expect(e.message).toMatch(new RegExp(`^export.xml is malformed at byte ${e.at.byte} \\(line ${bad}, column \\d+\\): unquoted attribute value`))
    const before = understoodRecords(lines.slice(0, bad - 1).join('\n')).length
    expect(r.batches.length).toBe(Math.floor(before / 50))
    expect(r.batches.every((b) => b.samples.length === 50)).toBe(true)
  })

  it('says a truncated file ends before the document is complete, with the byte and line, after the whole batches before it', async () => {
    const cut = 150_000
    const head = NIGHTS.subarray(0, cut)
    const r = await read(head, { batchSize: 40 })
    const e = r.error as ExportFormatError
    expect(e).toBeInstanceOf(ExportFormatError)
    expect(e.message).toContain(`ends at byte ${cut}`)
    expect(e.message).toContain('truncated')
    expect(e.at.line).toBe(head.toString('utf8').split('\n').length)
    const complete = understoodRecords(head.toString('utf8')).length
    expect(r.batches.length).toBe(Math.floor(complete / 40))
    expect(r.batches.at(-1)!.samples.length).toBe(40)
  })

  it('refuses a file that is not an Apple Health export, and an empty one', async () => {
    const other = await read(Buffer.from('<?xml version="1.0"?>\n<ClinicalDocument><Record type="x"/></ClinicalDocument>\n'))
    expect((other.error as Error).message).toContain('root element is <ClinicalDocument>')
    const empty = await read(Buffer.alloc(0))
    expect(empty.error).toBeInstanceOf(ExportFormatError)
    expect(empty.batches).toEqual([])
  })

  it('refuses bytes that are not UTF-8', async () => {
    const r = await read(Buffer.concat([SMALL.subarray(0, 500), Buffer.from([0xff, 0xfe, 0xfd]), SMALL.subarray(500)]))
    expect(r.error).toBeInstanceOf(ExportFormatError)
    expect((r.error as Error).message).toContain('not UTF-8')
  })

  it('never throws anything but an ExportFormatError, whatever the bytes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: NIGHTS.length - 1 }), fc.uint8Array({ minLength: 1, maxLength: 8 }), async (at, junk) => {
        const r = await read(Buffer.concat([NIGHTS.subarray(0, at), junk, NIGHTS.subarray(at)]), { batchSize: 100, sizes: [4096] })
        if (r.error !== undefined) expect(r.error).toBeInstanceOf(ExportFormatError)
      }),
      { numRuns: 30 },
    )
  })
})

/** A zip written as a stream by fflate: every entry has a data descriptor (sizes after the data). */
function streamedZip(entries: Array<[string, Uint8Array]>, deflate: boolean): Uint8Array {
  const out: Uint8Array[] = []
  const zip = new Zip((err, data) => {
    if (err) throw err
    out.push(data)
  })
  for (const [name, bytes] of entries) {
    const f = deflate ? new ZipDeflate(name, { level: 6 }) : new ZipPassThrough(name)
    zip.add(f)
    f.push(bytes, true)
  }
  zip.end()
  return Buffer.concat(out)
}

describe('export.zip', () => {
  const cda = Buffer.from('<?xml version="1.0"?>\n<ClinicalDocument>not the export</ClinicalDocument>\n'.repeat(2000))
  const route = Buffer.from('<gpx>route</gpx>\n'.repeat(100))
  const entries: Array<[string, Uint8Array]> = [
    ['apple_health_export/export_cda.xml', cda],
    ['apple_health_export/export.xml', NIGHTS],
    ['apple_health_export/workout-routes/route_1.gpx', route],
  ]
  const expected = read(NIGHTS, { batchSize: 100 })

  const cases: Array<[string, Uint8Array]> = [
    ['stored, sizes in the headers', zipSync(Object.fromEntries(entries), { level: 0 })],
    ['deflated, sizes in the headers', zipSync(Object.fromEntries(entries), { level: 6 })],
    ['stored, with data descriptors', streamedZip(entries, false)],
    ['deflated, with data descriptors', streamedZip(entries, true)],
  ]
  it.each(cases)('reads apple_health_export/export.xml of a zip %s, in small pieces, as the xml itself', async (_name, zip) => {
    const r = await read(zip, { format: 'zip', batchSize: 100, sizes: [1000, 333, 4096] })
    expect(r.error).toBeUndefined()
    const want = await expected
    expect(r.batches).toEqual(want.batches)
    expect(r.counts).toEqual({ ...want.counts, bytesRead: zip.length })
  })

  it('really has data descriptors in the streamed zips (general purpose flag bit 3)', () => {
    for (const deflate of [false, true]) {
      const zip = streamedZip(entries, deflate)
      expect(Buffer.from(zip).readUInt32LE(0)).toBe(0x04034b50)
      expect(Buffer.from(zip).readUInt16LE(6) & 8).toBe(8)
      expect(Buffer.from(zip).readUInt32LE(14)).toBe(0) // no CRC in the local header
    }
  })

  it('refuses a zip without the export, and a truncated one, naming the byte', async () => {
    const none = await read(zipSync({ 'notes.txt': Buffer.from('hello') }), { format: 'zip' })
    expect((none.error as Error).message).toContain('holds no apple_health_export/export.xml')
    const zip = streamedZip(entries, true)
    const cut = Math.floor(zip.length * 0.6)
    const truncated = await read(zip.subarray(0, cut), { format: 'zip', batchSize: 100 })
    expect(truncated.error).toBeInstanceOf(ExportFormatError)
    expect((truncated.error as Error).message).toMatch(/truncated/)
    expect((truncated.error as Error).message).toContain(String(cut))
    const junk = await read(Buffer.from('this is not a zip at all, only text'), { format: 'zip' })
    expect(junk.error).toBeInstanceOf(ExportFormatError)
  })
})
