import { HphError } from '../../errors.ts'
import { ingestRawBatch, type IngestDeps } from '../../ingest/raw-batch.ts'
import { arrayPieces, hashHexOfPieces } from '../../streams/envelope.ts'
import type { ExportLimits } from './limits.ts'
import { exportBatchSize, type ExportBatch, type ExportCounts, type ExportFormat, type ExportSample } from './reader.ts'
import { readExportInThread, type ExportInput, type ThreadReader } from './reader-thread.ts'

// docs/api.md §4: the reader's batches through the raw-event path of
// POST /samples (ingest/raw-batch.ts), a bounded number of publishes in flight. Used by the HTTP endpoint and
// by `hph import healthkit`.

/** The batchId of an export batch: a hash of its records, so that the same export gives the same event ids. */
export const EXPORT_BATCH_PREFIX = 'healthkit-export:'

export interface ImportDeps {
  ingest: IngestDeps
  /** samples per batch (at most HPH_MAX_SAMPLES: normalize refuses a larger batch) */
  batchSize: number
  /** publishes awaiting their acknowledgement at once */
  inFlight: number
  /** which component publishes: `api`, `cli` */
  source: string
  traceparent?: string | undefined
  /** how far an export may inflate and nest (limits.ts), and the parse thread's heap */
  limits?: ExportLimits
  parserHeapMb?: number
  /** before each batch is published; what it throws stops the import (an erase of the user began meanwhile) */
  beforeBatch?: () => Promise<void>
}

export interface ImportProgress {
  bytesRead: number
  records: number
  batches: number
}

export interface TypeCounts {
  /** records of the type in the file */
  read: number
  /** of those, in batches stored in HPH_INGEST that pass normalize's checks */
  accepted: number
  /** in stored batches, refused by normalize's checks (units, ranges, dates) */
  rejected: number
}

export interface ImportResult {
  stream: string
  /** batches stored in HPH_INGEST (or already there) */
  batches: number
  /** of those, new */
  published: number
  /** of those, recognised by JetStream as already stored (a re-import within the duplicate window) */
  duplicates: number
  firstSeq?: number
  lastSeq?: number
  records: number
  accepted: number
  rejected: number
  /** hrv_rmssd samples the beat lists of HRV records give, besides the records' own samples */
  derived: number
  types: Record<string, TypeCounts>
  skippedRecords: Record<string, number>
  otherElements: Record<string, number>
  /** the first rejections, with the line of their <Record> */
  rejections: Array<{ line: number; type: string; problem: string }>
  bytesRead: number
  xmlBytes: number
  seconds: number
}

const MAX_REJECTIONS_LISTED = 100

/**
 * An import that stopped: the export is malformed or truncated (`export_malformed`), or publishing failed.
 * `partial` says what was stored before: whole batches only, and they stay (a re-import skips them).
 */
export class ImportError extends HphError {
  /** what was stored before the failure, in words */
  readonly kept: string
  constructor(
    override readonly cause: unknown,
    readonly partial: ImportResult,
  ) {
    const why = cause instanceof Error ? cause.message : String(cause)
    const kept = `${partial.batches} whole batch${partial.batches === 1 ? '' : 'es'} (${partial.records} records) before it ${partial.batches === 1 ? 'was' : 'were'} stored in ${partial.stream} and stay${partial.batches === 1 ? 's' : ''} there`
    super(cause instanceof HphError ? cause.code : 'import_failed', `${why}; ${kept}`, cause instanceof HphError ? cause.details : [])
    this.kept = kept
  }
}

/**
 * What is imported: an export's bytes, read here, or a reader started before (the CLI starts its parse before it
 * connects to NATS; its batches cut at exportBatchSize, as importExport would cut them).
 */
export type ImportSource = { format: ExportFormat; input: ExportInput } | { reader: ThreadReader }

/** Reads the export and publishes every batch; resolves once all of them are in HPH_INGEST. */
export async function importExport(deps: ImportDeps, opts: ImportSource & { userId: string; onProgress?: (p: ImportProgress) => void }): Promise<ImportResult> {
  const receivedAt = new Date()
  const reader =
    'reader' in opts
      ? opts.reader
      : readExportInThread(opts.input, {
          format: opts.format,
          batchSize: exportBatchSize(deps.batchSize, deps.ingest.maxSamples),
          ...(deps.limits ? { limits: deps.limits } : {}),
          ...(deps.parserHeapMb ? { parserHeapMb: deps.parserHeapMb } : {}),
        })
  const t0 = reader.startedMs
  const result: ImportResult = {
    stream: '',
    batches: 0,
    published: 0,
    duplicates: 0,
    records: 0,
    accepted: 0,
    rejected: 0,
    derived: 0,
    types: {},
    skippedRecords: {},
    otherElements: {},
    rejections: [],
    bytesRead: 0,
    xmlBytes: 0,
    seconds: 0,
  }
  let read = 0
  let failure: unknown
  const inFlight = new Set<Promise<void>>()

  const publish = async (batch: ExportBatch): Promise<void> => {
    // the batch's text in pieces, never joined (streams/envelope.ts: JsonPieces): its id hashes it, its event holds it
    const text = { pieces: arrayPieces(batch) }
    const batchId = `${EXPORT_BATCH_PREFIX}${hashHexOfPieces(text)}`
    const samples = batch.texts.map((t) => JSON.parse(t) as ExportSample)
    await deps.beforeBatch?.()
    const r = await ingestRawBatch(deps.ingest, {
      userId: opts.userId,
      payload: { batchId, samples },
      payloadJson: { pieces: [`{"batchId":${JSON.stringify(batchId)},"samples":`, ...text.pieces, '}'] },
      bodyHash: () => batchId,
      receivedAt,
      source: deps.source,
      traceparent: deps.traceparent,
    })
    result.stream = r.stream
    result.batches++
    if (r.duplicate) result.duplicates++
    else result.published++
    result.firstSeq = Math.min(result.firstSeq ?? r.seq, r.seq)
    result.lastSeq = Math.max(result.lastSeq ?? r.seq, r.seq)
    result.records += samples.length
    const rejectedAt = new Set(r.rejected.map((x) => x.index))
    samples.forEach((s, i) => {
      const t = (result.types[s.type] ??= { read: 0, accepted: 0, rejected: 0 })
      if (rejectedAt.has(i)) t.rejected++
      else t.accepted++
    })
    result.accepted += samples.length - rejectedAt.size
    result.rejected += rejectedAt.size
    result.derived += r.derived
    for (const x of r.rejected) {
      if (result.rejections.length >= MAX_REJECTIONS_LISTED) break
      result.rejections.push({ line: batch.lines[x.index] ?? 0, type: samples[x.index]?.type ?? '', problem: x.problem })
    }
  }

  const finish = (counts: ExportCounts): ImportResult => {
    for (const [type, n] of Object.entries(counts.records)) (result.types[type] ??= { read: 0, accepted: 0, rejected: 0 }).read = n
    result.skippedRecords = counts.skippedRecords
    result.otherElements = counts.otherElements
    result.bytesRead = counts.bytesRead
    result.xmlBytes = counts.xmlBytes
    result.seconds = (performance.now() - t0) / 1000
    return result
  }

  try {
    for await (const batch of reader.batches) {
      read += batch.size
      const p: Promise<void> = publish(batch).then(
        () => void inFlight.delete(p),
        (err: unknown) => {
          inFlight.delete(p)
          failure ??= err
        },
      )
      inFlight.add(p)
      opts.onProgress?.({ bytesRead: reader.counts.bytesRead, records: read, batches: batch.index + 1 })
      if (inFlight.size >= deps.inFlight) await Promise.race(inFlight)
      if (failure !== undefined) break
    }
  } catch (err) {
    failure ??= err
  }
  // the loop's end, however it came, let the parse go (the reader's batches close it); whatever happened, the batches in flight finish: what the answer says is stored is stored
  await Promise.all(inFlight)
  if (failure !== undefined) {
    if (!result.stream) result.stream = `${deps.ingest.prefix.toUpperCase()}_INGEST`
    throw new ImportError(failure, finish(reader.counts))
  }
  return finish(reader.counts)
}
