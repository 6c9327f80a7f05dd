import { DEFAULT_PARSER_HEAP_MB, takeThread } from './parse-worker.ts'
import { ExportFormatError, type ErrorPosition } from './errors.ts'
import { ExportLimitError } from './limits.ts'
export { DEFAULT_PARSER_HEAP_MB, warmParseThread } from './parse-worker.ts'
import { exportBatch, type ExportBatch, type ExportCounts, type ReadOptions } from './reader.ts'

// readExport (reader.ts) on a worker thread. The XML parse is the import's slowest step and it runs alone on
// one core: on its own thread it overlaps the main thread's work on the batches before (their checks, their
// ids, publishing them). A file (the CLI's export) is read by the parse thread itself; a stream (an HTTP body)
// is read by the main thread and handed over at most CHUNKS_AHEAD chunks ahead of the parser. The parser waits
// while 4 of its batches are not yet taken (parse-thread.ts), so memory stays bounded whatever the size of the
// export and however slow JetStream is.

/**
 * An export file, read by the parse thread itself: its bytes never wait for the main thread, whose event loop is
 * busy with the batches before (handed over by the main thread, the parse waited for its input before nearly
 * every chunk, a quarter of its time: docs/benchmarks.md §2).
 */
export interface ExportFile {
  path: string
  /** bytes a read */
  chunkBytes: number
}

/** What an export is read from: a stream of its bytes, or a file */
export type ExportInput = AsyncIterable<Uint8Array> | ExportFile

const isStream = (input: ExportInput): input is AsyncIterable<Uint8Array> => Symbol.asyncIterator in input

/** main thread → parser: `start` first, once */
export type ToParser =
  | { kind: 'start'; opts: ReadOptions; file?: ExportFile | undefined }
  | { kind: 'chunk'; bytes: Uint8Array }
  | { kind: 'end' }
  | { kind: 'fail'; message: string }
  /** a batch was taken by the consumer */
  | { kind: 'took' }

/** parser → main thread */
export type FromParser =
  /** a chunk was taken by the parser */
  | { kind: 'took' }
  /** a batch (reader.ts: exportBatch) with the counts as they stand, so that an import stopped early still says what it read */
  | { kind: 'batch'; counts: ExportCounts; index: number; texts: string[]; lines: number[] }
  | { kind: 'done'; counts: ExportCounts }
  /** `inputFailed`: the error is the input's own (the `fail` message, a file that cannot be read), not one of the parse */
  | {
      kind: 'failed'
      counts: ExportCounts
      inputFailed: boolean
      error: { name: string; message: string; stack?: string | undefined; at?: ErrorPosition | undefined; limit?: string | undefined }
    }

export interface ThreadReader {
  /** bytesRead is updated as the input is read; the rest with every batch, final once `batches` is done */
  counts: ExportCounts
  batches: AsyncGenerator<ExportBatch, void, undefined>
  /** when the parse began (performance.now()) */
  startedMs: number
  /**
   * Stops the parse and lets its thread go. The end of `batches` does it; a caller that may never take them (it failed
   * to connect meanwhile) must call it, or the thread keeps the process alive.
   */
  close(): Promise<void>
}

/**
 * chunks sent ahead of the parser: enough that it seldom waits while the main thread works on a batch (with 4, the
 * CLI's parse waited before nearly every chunk); 16 HTTP chunks are at most 1 MiB
 */
const CHUNKS_AHEAD = 16

/** The parser's error, rebuilt on this side: an ExportFormatError stays one, with its position. */
function rebuild(error: Extract<FromParser, { kind: 'failed' }>['error']): Error {
  if (error.name === 'ExportFormatError' && error.at) return new ExportFormatError(error.message, error.at)
  if (error.name === 'ExportLimitError' && error.limit) return new ExportLimitError(error.limit, error.message)
  const e = new Error(`the export's parser thread failed: ${error.message}`)
  if (error.stack) e.stack = error.stack
  return e
}

/**
 * Reads an Apple Health export like readExport, the parse on a worker thread. The batches and the failure (a
 * malformed or truncated file: ExportFormatError; an input that fails: its own error) are readExport's: the
 * whole batches before a failure are given out first. The parse begins at once, not when the first batch is asked
 * for, so that what the caller does before it takes them (the CLI loads its NATS client and connects) overlaps it;
 * it holds at most BATCHES_AHEAD batches (parse-thread.ts) until they are taken.
 */
export function readExportInThread(input: ExportInput, opts: ReadOptions & { parserHeapMb?: number }): ThreadReader {
  const { parserHeapMb = DEFAULT_PARSER_HEAP_MB, ...readOpts } = opts
  const counts: ExportCounts = { bytesRead: 0, xmlBytes: 0, records: {}, skippedRecords: {}, otherElements: {} }
  const startedMs = performance.now()
  const worker = takeThread(parserHeapMb)
  worker.postMessage({ kind: 'start', opts: readOpts, file: isStream(input) ? undefined : input } satisfies ToParser)
  const inbox: Array<Exclude<FromParser, { kind: 'took' }>> = []
  let crashed: Error | undefined
  let wake: (() => void) | undefined
  const signal = () => {
    const w = wake
    wake = undefined
    w?.()
  }
  const waitForSignal = () => new Promise<void>((resolve) => (wake = resolve))
  let ahead = 0
  let stopped = false
  let inputFailure: { error: unknown } | undefined
  let pumpWake: (() => void) | undefined
  const letPumpOn = () => {
    const w = pumpWake
    pumpWake = undefined
    w?.()
  }

  worker.on('message', (m: FromParser) => {
    if (m.kind === 'took') {
      ahead--
      letPumpOn()
    } else {
      inbox.push(m)
      signal()
    }
  })
  worker.on('error', (err) => {
    crashed ??=
      (err as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? new ExportLimitError('HPH_EXPORT_PARSER_HEAP_MB', `parsing the export needs more than the parser's ${parserHeapMb} MB (HPH_EXPORT_PARSER_HEAP_MB)`)
        : err
    signal()
  })
  worker.on('exit', (code) => {
    crashed ??= new Error(`the export's parser thread exited (code ${code}) before it was done`)
    signal()
  })

  // a stream's bytes, at most CHUNKS_AHEAD chunks ahead of the parser (runs beside the batches' loop)
  const pump = async (input: AsyncIterable<Uint8Array>) => {
    try {
      for await (const chunk of input) {
        while (!stopped && ahead >= CHUNKS_AHEAD) await new Promise<void>((resolve) => (pumpWake = resolve))
        if (stopped) return
        counts.bytesRead += chunk.length
        // a copy: the chunk may be a view of a buffer that other chunks share, and the copy's memory moves
        const bytes = new Uint8Array(chunk)
        ahead++
        worker.postMessage({ kind: 'chunk', bytes } satisfies ToParser, [bytes.buffer])
      }
      if (!stopped) worker.postMessage({ kind: 'end' } satisfies ToParser)
    } catch (error) {
      inputFailure = { error }
      if (!stopped) worker.postMessage({ kind: 'fail', message: error instanceof Error ? error.message : String(error) } satisfies ToParser)
    }
  }
  if (isStream(input)) void pump(input)

  let closing: Promise<void> | undefined
  const close = () =>
    (closing ??= (async () => {
      stopped = true
      letPumpOn()
      signal()
      // the input is let go by the pump at its next chunk (not awaited here: a stalled HTTP body would hold us)
      worker.removeAllListeners('exit')
      await worker.terminate()
    })())

  async function* batches(): AsyncGenerator<ExportBatch, void, undefined> {
    try {
      for (;;) {
        // closed: what the parse had handed over is dropped with it
        if (stopped) return
        const m = inbox.shift()
        if (!m) {
          if (crashed) throw crashed
          await waitForSignal()
          continue
        }
        // bytesRead is the pump's, a few chunks ahead of the parser's
        Object.assign(counts, m.counts, { bytesRead: Math.max(counts.bytesRead, m.counts.bytesRead) })
        if (m.kind === 'batch') {
          worker.postMessage({ kind: 'took' } satisfies ToParser)
          yield exportBatch(m.index, m.texts, m.lines)
          continue
        }
        if (m.kind === 'done') return
        // the input's own error (an HTTP body over its limit, a client gone) when the parse stopped at it; a
        // malformed file found before the input failed is told as such
        if (m.inputFailed) throw inputFailure ? inputFailure.error : new Error(m.error.message)
        throw rebuild(m.error)
      }
    } finally {
      await close()
    }
  }

  return { counts, batches: batches(), startedMs, close }
}
