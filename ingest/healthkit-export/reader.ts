import { StringDecoder } from 'node:string_decoder'
import { SaxesParser } from 'saxes'
import { ExportFormatError } from './errors.ts'
import { checkParser, DEFAULT_EXPORT_LIMITS, watchText, ExportLimitError, overLimit, PARSE_SLICE_BYTES, type ExportLimits } from './limits.ts'
import type { JsonArrayText } from '../../streams/envelope.ts'
import { exportXmlOfZip } from './unzip.ts'

// docs/api.md §4: the <Record> elements of the understood types, read
// from a stream (never the whole file in memory) and cut into batches of the shape POST /samples takes.
// Batches are cut by record count and size alone, never by how the input happened to be chunked, so the
// same file always gives the same batches (and so the same batch ids).

/** The types POST /samples understands (docs/api.md §3); every other <Record> is skipped. */
export const UNDERSTOOD_TYPES: ReadonlySet<string> = new Set([
  'HKQuantityTypeIdentifierHeartRateVariabilitySDNN',
  'HKQuantityTypeIdentifierRestingHeartRate',
  'HKQuantityTypeIdentifierHeartRate',
  'HKCategoryTypeIdentifierSleepAnalysis',
  'HPHQuantityTypeIdentifierHeartRateVariabilityRMSSD',
])

/** The attributes of a <Record> kept in the raw batch, as the file writes them. */
export const RECORD_ATTRIBUTES = ['type', 'sourceName', 'sourceVersion', 'device', 'unit', 'creationDate', 'startDate', 'endDate', 'value'] as const
export type RecordAttribute = (typeof RECORD_ATTRIBUTES)[number]
const ATTRIBUTES_AFTER_TYPE = RECORD_ATTRIBUTES.slice(1)

/**
 * A HealthKit-shaped sample as POST /samples takes it: the record's attributes, absent ones left out, and an HRV
 * record's beat list (`beatTimes`: each InstantaneousBeatsPerMinute `time` as written) when it has at least
 * MIN_BEAT_LIST beats: normalize derives an RMSSD sample from it, and the raw list stays in HPH_INGEST.
 */
export type ExportSample = { type: string } & Partial<Record<RecordAttribute, string>> & { beatTimes?: string[] }

const HRV_TYPE = 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN'
const BEAT_ELEMENT = 'InstantaneousBeatsPerMinute'
/**
 * Fewer beats give no successive difference under any method (the 2-beat lists of older exports): such lists are
 * left out of the batch, which keeps those records' text, and so their batch ids, what they always were.
 */
export const MIN_BEAT_LIST = 3
/** a longer list is no heartbeat series (normalize's bound): it is not held, however long the file makes it */
const MAX_BEAT_LIST = 10_000

export interface ExportBatch extends JsonArrayText {
  /** 0, 1, 2… in file order */
  index: number
  /**
   * the JSON text of each sample (ExportSample), in order: `arrayJson(texts)` is the samples' JSON, what the batch id
   * hashes and what the raw event carries (the import never joins it: a text of a few hundred KB is a large object,
   * streams/envelope.ts)
   */
  texts: string[]
  /** samples in it */
  size: number
  /** the line of each sample's <Record> in export.xml (for rejections) */
  lines: number[]
}

/** One attribute's `,"key":value` text (`lead` for the comma), made again only when the value differs from the last one written. */
function memoField(key: string, lead = ',') {
  let last: string | undefined
  let text = ''
  return (value: string | undefined): string => {
    if (value === undefined) return ''
    if (value !== last) {
      last = value
      text = `${lead}"${key}":${JSON.stringify(value)}`
    }
    return text
  }
}

/**
 * JSON.stringify(sample) of the samples onRecord makes (every key of RECORD_ATTRIBUTES and beatTimes, in that order, an
 * absent one undefined), written field by field: the attributes one record repeats from the one before (its source,
 * its device, a text of a hundred characters or more, its unit) are escaped once for the run. The batches' text, and so
 * their ids, are unchanged: test/unit/healthkit-export/reader.test.ts holds it to JSON.stringify.
 */
export function exportSampleWriter(): (sample: ExportSample) => string {
  const type = memoField('type', '{')
  const sourceName = memoField('sourceName')
  const sourceVersion = memoField('sourceVersion')
  const device = memoField('device')
  const unit = memoField('unit')
  const dated = (key: string, value: string | undefined) => (value === undefined ? '' : `,"${key}":${JSON.stringify(value)}`)
  return (s) =>
    `${type(s.type)}${sourceName(s.sourceName)}${sourceVersion(s.sourceVersion)}${device(s.device)}${unit(s.unit)}` +
    `${dated('creationDate', s.creationDate)}${dated('startDate', s.startDate)}${dated('endDate', s.endDate)}${dated('value', s.value)}` +
    `${s.beatTimes === undefined ? '' : `,"beatTimes":${JSON.stringify(s.beatTimes)}`}}`
}

/** A batch of the samples' JSON texts (and the line of each). */
export function exportBatch(index: number, texts: string[], lines: number[]): ExportBatch {
  return { index, texts, size: texts.length, lines }
}

export interface ExportCounts {
  /** bytes of the input read (of the zip, for a zip) */
  bytesRead: number
  /** bytes of export.xml parsed */
  xmlBytes: number
  /** <Record> elements of understood types, by type (each becomes a sample of a batch) */
  records: Record<string, number>
  /** <Record> elements of other types, by type: skipped */
  skippedRecords: Record<string, number>
  /** other elements under <HealthData> (Workout, ActivitySummary, Correlation, ExportDate, Me…), by name: skipped with what they hold */
  otherElements: Record<string, number>
}

export type ExportFormat = 'xml' | 'zip'

/** export.zip starts with a local file header (`PK\x03\x04`); anything else is read as export.xml. */
export function formatOf(head: Uint8Array): ExportFormat {
  return head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04 ? 'zip' : 'xml'
}

/** The samples of an import's batch: as configured, and never more than normalize takes in one (HPH_MAX_SAMPLES). */
export const exportBatchSize = (configured: number, maxSamples: number): number => Math.min(configured, maxSamples)

export interface ReadOptions {
  format: ExportFormat
  /** samples a batch (≤ HPH_MAX_SAMPLES) */
  batchSize: number
  /** a batch is also cut before its samples' attributes exceed this many characters (NATS max_payload) */
  maxBatchChars?: number
  /** how far the export may inflate and nest (limits.ts); the defaults when left out */
  limits?: ExportLimits
}

export interface ExportReader {
  /** updated as the input is read; final once `batches` is done */
  counts: ExportCounts
  batches: AsyncGenerator<ExportBatch, void, undefined>
}

const DEFAULT_MAX_BATCH_CHARS = 512 * 1024
/** per-type counts stay bounded whatever a file names its types */
const MAX_KEYS = 1000
const MAX_KEY_CHARS = 128
const OTHER_KEY = '(other)'
const ROOT = 'HealthData'
const REPLACEMENT = '\uFFFD'
const REPLACEMENT_UTF8 = Buffer.from(REPLACEMENT)

/**
 * Counts by name, written into `into` by `settle`. An export lists its records type by type, so the name is
 * nearly always the last one's: a run is counted in a variable, and the Map (which hashes the name, a new
 * string each time) is touched once a run.
 */
function tally(into: Record<string, number>) {
  const m = new Map<string, number>()
  let run: string | undefined
  let runCount = 0
  const flush = () => {
    if (run === undefined) return
    let k = run.length > MAX_KEY_CHARS ? `${run.slice(0, MAX_KEY_CHARS)}…` : run
    if (!m.has(k) && m.size >= MAX_KEYS) k = OTHER_KEY
    m.set(k, (m.get(k) ?? 0) + runCount)
    run = undefined
    runCount = 0
  }
  return {
    bump(key: string): void {
      if (key !== run) {
        flush()
        run = key
      }
      runCount++
    },
    /** own properties even for a name like `__proto__` */
    settle(): void {
      flush()
      for (const [k, n] of m) Object.defineProperty(into, k, { value: n, writable: true, enumerable: true, configurable: true })
    },
  }
}

/**
 * A chunk of export.xml as the parser is fed it (limits.ts): decoded a piece of PARSE_SLICE_BYTES at a time, each
 * piece a slice for the parser (a slice cut from the decoded chunk instead is a sliced string, which the parser
 * reads more slowly).
 */
export function parseSlices(decoder: StringDecoder, chunk: Uint8Array): string[] {
  const texts: string[] = []
  for (let at = 0; at < chunk.length; at += PARSE_SLICE_BYTES) texts.push(decoder.write(chunk.subarray(at, at + PARSE_SLICE_BYTES)))
  return texts
}

/** saxes prefixes its messages with `line:column: `; the error we raise says where in words. */
const SAXES_POSITION = /^(?:[^:]*:)?\d+:\d+: /

/**
 * Reads an Apple Health export (export.xml, or export.zip holding it) from a stream of bytes and yields
 * batches of the understood records in file order. A malformed or truncated file ends the batches with an
 * ExportFormatError naming the byte offset and line; the whole batches before it have been yielded.
 */
export function readExport(input: AsyncIterable<Uint8Array>, opts: ReadOptions): ExportReader {
  const counts: ExportCounts = { bytesRead: 0, xmlBytes: 0, records: {}, skippedRecords: {}, otherElements: {} }
  const maxChars = opts.maxBatchChars ?? DEFAULT_MAX_BATCH_CHARS
  const batchSize = Math.max(1, opts.batchSize)
  const limits = opts.limits ?? DEFAULT_EXPORT_LIMITS

  const records = tally(counts.records)
  const skippedRecords = tally(counts.skippedRecords)
  const otherElements = tally(counts.otherElements)
  const ready: ExportBatch[] = []
  /**
   * the JSON text of each sample of the batch being made, written as soon as the sample is whole: the attribute
   * values the parser gives are slices of the text it was fed, and a sample object held until its batch is cut
   * would keep that text alive through the collections of the young generation, each of which copies it
   */
  let texts: string[] = []
  let lines: number[] = []
  let chars = 0
  let index = 0
  const cut = () => {
    // each sample's text apart (what JSON.stringify writes of the array is `[`, these joined by commas, `]`):
    // the batch crosses to the main thread and into its event without ever being one large string
    ready.push(exportBatch(index++, texts, lines))
    texts = []
    lines = []
    chars = 0
  }

  const parser = new SaxesParser<{ position: true; xmlns: false }>({ position: true, xmlns: false })
  const textRun = watchText(parser)
  let depth = 0
  let rootSeen = false
  parser.on('opentag', (tag) => {
    if (depth === 0) {
      if (tag.name !== ROOT)
        throw new ExportFormatError(`not an Apple Health export: the root element is <${tag.name}>, not <${ROOT}>`, {
          byte: 0,
          line: parser.line,
          column: parser.column,
          inZip: opts.format === 'zip',
        })
      rootSeen = true
    } else if (depth === 1) {
      // by design: only <Record> directly under <HealthData>; a Correlation's own Records are part of it
      if (tag.name === 'Record') onRecord(tag.attributes)
      else otherElements.bump(tag.name)
    } else if (pending !== undefined && tag.name === BEAT_ELEMENT && beatTimes.length <= MAX_BEAT_LIST) beatTimes.push(tag.attributes.time ?? '')
    depth++
  })
  parser.on('closetag', () => {
    depth--
    if (depth === 1 && pending !== undefined) {
      const p = pending
      pending = undefined
      if (beatTimes.length >= MIN_BEAT_LIST && beatTimes.length <= MAX_BEAT_LIST) {
        p.sample.beatTimes = beatTimes
        p.size += 15
        for (const t of beatTimes) p.size += t.length + 3
      }
      beatTimes = []
      add(p.sample, p.size, p.line)
    }
  })
  /** an HRV record waiting for its closing tag: its beat list comes in its children */
  let pending: { sample: ExportSample; size: number; line: number } | undefined
  let beatTimes: string[] = []
  const sampleJson = exportSampleWriter()
  const add = (sample: ExportSample, size: number, line: number) => {
    if (texts.length > 0 && chars + size > maxChars) cut()
    texts.push(sampleJson(sample))
    lines.push(line)
    chars += size
    if (texts.length >= batchSize) cut()
  }
  // the last type looked up, as tally's runs: the same type record after record
  let lastType: string | undefined
  let lastUnderstood = false
  const onRecord = (attributes: Record<string, string>) => {
    const type = attributes.type ?? ''
    if (type !== lastType) {
      lastType = type
      lastUnderstood = UNDERSTOOD_TYPES.has(type)
    }
    if (!lastUnderstood) {
      skippedRecords.bump(type || '(no type)')
      return
    }
    records.bump(type)
    const a = attributes
    // the size a batch is cut by: the same formula since the first import, so a file always gives the same batches
    let size = type.length + 10
    for (const key of ATTRIBUTES_AFTER_TYPE) {
      const v = a[key]
      if (v !== undefined) size += key.length + v.length + 6
    }
    // one object shape for every sample (an absent attribute is undefined, which JSON leaves out): set key by
    // key they were dictionaries, the slowest to make and to stringify; written as text, slower still
    const sample: ExportSample = {
      type,
      sourceName: a.sourceName,
      sourceVersion: a.sourceVersion,
      device: a.device,
      unit: a.unit,
      creationDate: a.creationDate,
      startDate: a.startDate,
      endDate: a.endDate,
      value: a.value,
      beatTimes: undefined,
    }
    // an HRV record is batched at its closing tag, once its beat list is read; the others at once
    if (type === HRV_TYPE) pending = { sample, size, line: parser.line }
    else add(sample, size, parser.line)
  }

  // StringDecoder (not a fatal TextDecoder, 5× slower here): bytes that are not UTF-8 come out as U+FFFD,
  // which a chunk holds as text only where its bytes say so (EF BF BD)
  const decoder = new StringDecoder('utf8')
  /** UTF-16 units and UTF-8 bytes of export.xml given to the parser before the current piece */
  let charsBefore = 0
  let bytesBefore = 0
  let piece = ''

  const positionError = (err: unknown): ExportFormatError | ExportLimitError => {
    if (err instanceof ExportFormatError || err instanceof ExportLimitError) return err
    const message = err instanceof Error ? err.message.replace(SAXES_POSITION, '') : String(err)
    const within = Math.max(0, Math.min(piece.length, parser.position - charsBefore))
    const byte = bytesBefore + Buffer.byteLength(piece.slice(0, within))
    const where = `byte ${byte} (line ${parser.line}, column ${parser.column})${opts.format === 'zip' ? ' of export.xml' : ''}`
    return new ExportFormatError(`export.xml is malformed at ${where}: ${message}`, { byte, line: parser.line, column: parser.column, inZip: opts.format === 'zip' })
  }

  /** Feeds one slice of text to the parser; records it completed are kept even when it fails further on. */
  const feedSlice = (text: string): void => {
    piece = text
    try {
      parser.write(text)
      checkParser(parser, limits, { run: textRun, fed: charsBefore + text.length })
    } catch (err) {
      throw positionError(err)
    } finally {
      records.settle()
      skippedRecords.settle()
      otherElements.settle()
    }
    charsBefore += text.length
    bytesBefore += Buffer.byteLength(text)
    piece = ''
  }

  async function* batches(): AsyncGenerator<ExportBatch, void, undefined> {
    const xml = opts.format === 'zip' ? exportXmlOfZip(input, counts, limits.xmlBytes) : countBytes(input)
    let failure: unknown
    try {
      for await (const chunk of xml) {
        counts.xmlBytes += chunk.length
        if (counts.xmlBytes > limits.xmlBytes) throw overLimit('xmlBytes', limits, `export.xml (${counts.xmlBytes}+ bytes)`)
        const texts = parseSlices(decoder, chunk)
        if (texts.some((t) => t.includes(REPLACEMENT)) && !Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).includes(REPLACEMENT_UTF8)) {
          throw new ExportFormatError(`export.xml is not UTF-8 within bytes ${bytesBefore}..${counts.xmlBytes}`, {
            byte: bytesBefore,
            line: parser.line,
            inZip: opts.format === 'zip',
          })
        }
        for (const text of texts) feedSlice(text)
        if (ready.length > 0) yield* ready.splice(0)
      }
      // what the decoder held back: at most 3 bytes' worth, well within a slice
      feedSlice(decoder.end())
      try {
        parser.close()
      } catch (err) {
        if (err instanceof ExportFormatError) throw err
        const problem = err instanceof Error ? err.message.replace(SAXES_POSITION, '') : String(err)
        const at = { byte: bytesBefore, line: parser.line, column: parser.column, inZip: opts.format === 'zip' }
        throw new ExportFormatError(`export.xml ends at byte ${at.byte} (line ${at.line}, column ${at.column}) before the document is complete (truncated?): ${problem}`, at)
      }
      if (!rootSeen) throw new ExportFormatError(`export.xml is empty: no <${ROOT}> element in ${counts.xmlBytes} bytes`, { byte: counts.xmlBytes, inZip: opts.format === 'zip' })
    } catch (err) {
      failure = err
    }
    // the whole batches completed before a failure are given out first; the samples after the last one are not
    if (ready.length > 0) yield* ready.splice(0)
    if (failure !== undefined) throw failure
    if (texts.length > 0) {
      cut()
      yield* ready.splice(0)
    }
  }

  async function* countBytes(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const chunk of source) {
      counts.bytesRead += chunk.length
      yield chunk
    }
  }

  return { counts, batches: batches() }
}
