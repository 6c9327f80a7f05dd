import { Worker } from 'node:worker_threads'

// The parse thread's Worker (reader-thread.ts), and one started ahead of its use. Apart from the reader so that the
// CLI can start it before anything else loads (cli/hph.ts: `hph import` warms it first): this module loads nothing
// but node:worker_threads.

// from the sources (tsx) the thread must register tsx itself first; from the build (dist/) it is plain JavaScript
const ENTRY = new URL(import.meta.url.endsWith('.ts') ? './parse-thread-tsx.js' : './parse-thread.js', import.meta.url)
/** the parse thread's own heap, by default (docs/architecture.md §6: HPH_EXPORT_PARSER_HEAP_MB) */
export const DEFAULT_PARSER_HEAP_MB = 256

/** A worker for the parse: its heap bounded, so no export can make it take the process's memory. */
function parseWorker(heapMb: number): Worker {
  return new Worker(ENTRY, { resourceLimits: { maxOldGenerationSizeMb: heapMb, stackSizeMb: 4 } })
}
/** A parse thread started ahead (warmParseThread), and what went wrong with it before it was taken. */
interface Spare {
  worker: Worker
  heapMb: number
  failed?: Error
}
let spare: Spare | undefined

/** The spare is fit to read with this heap: alive, and of that heap. */
const fits = (s: Spare | undefined, heapMb: number): boolean => s !== undefined && !s.failed && s.heapMb === heapMb

/**
 * Starts the parse thread of the next readExportInThread now: loading it (~0.3 s from the sources through tsx) then
 * overlaps what the caller does meanwhile (the CLI connects to NATS). It keeps no process alive on its own. A thread
 * warmed before with another heap (the CLI warms one before it reads its configuration) is replaced.
 */
export function warmParseThread(heapMb = DEFAULT_PARSER_HEAP_MB): void {
  if (fits(spare, heapMb)) return
  if (spare) void spare.worker.terminate()
  const s: Spare = { worker: parseWorker(heapMb), heapMb }
  s.worker.unref()
  s.worker.once('error', (err) => (s.failed = err))
  s.worker.once('exit', () => (s.failed ??= new Error('the parse thread exited before it was used')))
  spare = s
}

/** The thread warmed ahead when it is fit for use, else a new one. */
export function takeThread(heapMb: number): Worker {
  const s = spare
  spare = undefined
  if (s && fits(s, heapMb)) {
    s.worker.removeAllListeners()
    s.worker.ref()
    return s.worker
  }
  if (s) void s.worker.terminate()
  return parseWorker(heapMb)
}
