import { open, stat } from 'node:fs/promises'
import { stderrBar } from './progress.ts'
import { exportLimitsOf } from '../ingest/healthkit-export/limits.ts'
import type { ImportResult } from '../ingest/healthkit-export/import.ts'
import { exportBatchSize, formatOf } from '../ingest/healthkit-export/reader.ts'
import { readExportInThread, type ThreadReader } from '../ingest/healthkit-export/reader-thread.ts'
import type { Nats } from '../streams/connect.ts'
import { UserId } from '../streams/schemas.ts'
import { streamName } from '../streams/subjects.ts'
import { jetStreamWait, type CommandContext } from './context.ts'
import { table } from './table.ts'

// `hph import healthkit <file> --user <id>` (docs/operating.md §6): an Apple Health export.xml or export.zip straight
// into HPH_INGEST through the raw-event path of POST /samples, with a progress bar on stderr and a summary.

const USAGE = 'usage: hph import healthkit <export.xml|export.zip> --user <userId> [--json] [--quiet]'
const MB = 1024 * 1024
/**
 * Read size: large enough that the parser, not the file system, sets the pace, and under V8's 128 KiB
 * large-object limit once decoded (an ASCII export's text): the attribute strings the parser cuts from a chunk
 * keep it alive until their batch is written, and a large object waits for a full collection to be freed
 * (256 KiB chunks cost the import ≈ 25 MB more peak RSS, measured on the 200 MB generated export).
 */
const READ_CHUNK = 120 * 1024

function progressBar(enabled: boolean, totalBytes: number) {
  if (!enabled) return { update: (_bytes: number, _records: number) => undefined, stop: () => undefined }
  const bar = stderrBar('import |{bar}| {percentage}% {mb}/{totalMb} MB | {records} records | {mbps} MB/s {rps} records/s | ETA {eta_formatted}')
  const t0 = performance.now()
  const totalMb = (totalBytes / MB).toFixed(1)
  bar.start(Math.max(1, totalBytes), 0, { mb: '0.0', totalMb, records: 0, mbps: '0.0', rps: 0 })
  return {
    update(bytes: number, records: number) {
      const s = Math.max(0.001, (performance.now() - t0) / 1000)
      bar.update(bytes, { mb: (bytes / MB).toFixed(1), totalMb, records, mbps: (bytes / MB / s).toFixed(1), rps: Math.round(records / s) })
    },
    stop: () => bar.stop(),
  }
}

export function renderImport(r: ImportResult): string {
  const rows: Array<Record<string, string | number>> = [
    ...Object.entries(r.types).map(([type, c]) => ({ type, read: c.read, imported: c.accepted, rejected: c.rejected, skipped: 0 })),
    ...Object.entries(r.skippedRecords).map(([type, n]) => ({ type, read: n, imported: 0, rejected: 0, skipped: n })),
    ...Object.entries(r.otherElements).map(([name, n]) => ({ type: `<${name}>`, read: n, imported: 0, rejected: 0, skipped: n })),
  ]
  const mb = r.bytesRead / MB
  const out = [
    table(rows).trimEnd(),
    '',
    `${r.records} records in ${r.batches} batches to ${r.stream}${r.batches ? ` (seq ${r.firstSeq}..${r.lastSeq})` : ''}: ${r.published} new, ${r.duplicates} already there`,
    r.derived > 0 ? `${r.derived} RMSSD samples derived from the HRV records' beat lists` : undefined,
    `${mb.toFixed(1)} MB${r.xmlBytes !== r.bytesRead ? ` (export.xml ${(r.xmlBytes / MB).toFixed(1)} MB)` : ''} in ${r.seconds.toFixed(1)} s: ${(mb / Math.max(r.seconds, 0.001)).toFixed(1)} MB/s, ${Math.round(r.records / Math.max(r.seconds, 0.001))} records/s`,
    ...r.rejections.slice(0, 10).map((x) => `rejected: line ${x.line} ${x.type}: ${x.problem}`),
    r.rejected > 10 ? `… ${r.rejected - 10} more rejected (--json lists the first ${r.rejections.length})` : undefined,
  ]
  return `${out.filter((l) => l !== undefined).join('\n')}\n`
}

/**
 * The export's batches, from a reader already begun, into HPH_INGEST once its stream is there; the summary (or the
 * failure) on stdout and stderr. The exit code.
 */
async function publishExport(
  { ImportError, importExport }: typeof import('../ingest/healthkit-export/import.ts'),
  nats: Nats,
  reader: ThreadReader,
  { config, userId, json, progress, size }: { config: CommandContext['config']; userId: string; json: boolean; progress: boolean; size: number },
): Promise<number> {
  const stream = streamName(config.HPH_PREFIX, 'INGEST')
  try {
    await nats.jsm.streams.info(stream)
  } catch (err) {
    process.stderr.write(`hph import: stream ${stream} is not there (${(err as Error).message}): run \`hph streams apply\` (or \`hph up\`) first\n`)
    return 1
  }
  const bar = progressBar(progress, size)
  try {
    const r = await importExport(
      {
        ingest: { js: nats.js, nc: nats.nc, prefix: config.HPH_PREFIX, maxSamples: config.HPH_MAX_SAMPLES },
        batchSize: config.HPH_IMPORT_BATCH_SIZE,
        inFlight: config.HPH_IMPORT_IN_FLIGHT,
        source: 'cli',
      },
      { userId, reader, onProgress: (p) => bar.update(p.bytesRead, p.records) },
    )
    bar.update(r.bytesRead, r.records)
    bar.stop()
    const peakRssBytes = process.resourceUsage().maxRSS * 1024
    process.stdout.write(json ? `${JSON.stringify({ ...r, peakRssBytes }, null, 2)}\n` : renderImport(r))
    return 0
  } catch (err) {
    bar.stop()
    if (!(err instanceof ImportError)) throw err
    process.stderr.write(`hph import: ${err.message}\n`)
    if (json) process.stdout.write(`${JSON.stringify({ error: err.code, message: err.message, details: err.details, ...err.partial }, null, 2)}\n`)
    return 1
  }
}

export async function runImport({ config, args, flags }: Pick<CommandContext, 'config' | 'args' | 'flags'>): Promise<number> {
  const [kind, file, ...extra] = args
  const user = UserId.safeParse(flags.user)
  if (kind !== 'healthkit' || !file || extra.length > 0 || !user.success) {
    process.stderr.write(`${USAGE}${flags.user !== undefined && !user.success ? '\n--user: 1–64 characters of [A-Za-z0-9_-]' : ''}\n`)
    return 2
  }
  let size: number
  let head: Uint8Array
  try {
    size = (await stat(file)).size
    const fh = await open(file)
    try {
      head = (await fh.read(new Uint8Array(4), 0, 4, 0)).buffer
    } finally {
      await fh.close()
    }
  } catch (err) {
    process.stderr.write(`hph import: cannot read ${file}: ${(err as Error).message}\n`)
    return 1
  }
  const json = Boolean(flags.json)
  // the parse begins now, on the thread cli/hph.ts started first; the NATS client loads and connects meanwhile (the
  // modules of the publishing side are loaded only after it has begun)
  const reader = readExportInThread(
    // the parse thread reads the file itself (reader-thread.ts: ExportFile)
    { path: file, chunkBytes: READ_CHUNK },
    {
      format: formatOf(head),
      batchSize: exportBatchSize(config.HPH_IMPORT_BATCH_SIZE, config.HPH_MAX_SAMPLES),
      limits: exportLimitsOf(config),
      parserHeapMb: config.HPH_EXPORT_PARSER_HEAP_MB,
    },
  )
  try {
    const [{ connectNats }, imports] = await Promise.all([import('../streams/connect.ts'), import('../ingest/healthkit-export/import.ts')])
    const nats = await connectNats(config, 'hph:import', {}, jetStreamWait('import'))
    try {
      return await publishExport(imports, nats, reader, { config, userId: user.data, json, progress: !json && !flags.quiet, size })
    } finally {
      await nats.nc.close()
    }
  } finally {
    // a reader never read (NATS could not be reached, the stream is missing) keeps the process alive until let go
    await reader.close()
  }
}
