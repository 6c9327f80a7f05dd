import { createReadStream } from 'node:fs'
import { parentPort } from 'node:worker_threads'
import { ExportFormatError } from './errors.ts'
import { ExportLimitError } from './limits.ts'
import { readExport } from './reader.ts'
import type { ExportFile, FromParser, ToParser } from './reader-thread.ts'

// The worker side of reader-thread.ts: the bytes the main thread sends (or the file it names, read here) go
// through readExport, and each batch goes back as it is: the JSON text of its samples crosses threads as one copy.

/** The input's own failure, as the main thread reports it. */
class InputFailed extends Error {}

/** batches handed over and not yet taken by the consumer: at this many the parse waits */
const BATCHES_AHEAD = 4

const port = parentPort
if (!port) throw new Error('parse-thread.ts runs as a worker thread (reader-thread.ts starts it)')
const post = (m: FromParser) => port.postMessage(m)

const queue: Array<Exclude<ToParser, { kind: 'took' }>> = []
let wake: (() => void) | undefined
/** batches posted and not yet taken by the main thread's consumer */
let unclaimed = 0
let claimed: (() => void) | undefined
port.on('message', (m: ToParser) => {
  if (m.kind === 'took') {
    unclaimed--
    claimed?.()
    return
  }
  queue.push(m)
  wake?.()
})

async function next(): Promise<Exclude<ToParser, { kind: 'took' }>> {
  while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve))
  return queue.shift()!
}

/** The input as the main thread sends it; each chunk taken is reported so that the next may be sent. */
async function* input(): AsyncGenerator<Uint8Array> {
  for (;;) {
    const m = await next()
    if (m.kind === 'start') throw new Error('the parse thread was started twice')
    if (m.kind === 'end') return
    if (m.kind === 'fail') throw new InputFailed(m.message)
    post({ kind: 'took' })
    yield m.bytes
  }
}

/** A file's bytes, read here (reader-thread.ts: ExportFile); what fails reading it is the input's failure. */
async function* fileInput(file: ExportFile): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of createReadStream(file.path, { highWaterMark: file.chunkBytes }) as AsyncIterable<Buffer>) yield chunk
  } catch (err) {
    throw new InputFailed(err instanceof Error ? err.message : String(err))
  }
}

/** Reads the export the `start` message names, handing each batch over; says how it ended. */
async function run(): Promise<void> {
  const start = await next()
  if (start.kind !== 'start') throw new Error(`the parse thread got '${start.kind}' before 'start'`)
  const reader = readExport(start.file ? fileInput(start.file) : input(), start.opts)
  try {
    for await (const b of reader.batches) {
      post({ kind: 'batch', counts: reader.counts, index: b.index, texts: b.texts, lines: b.lines })
      // no more parsing while BATCHES_AHEAD wait on the other side: what waits is bounded however fast JetStream is
      // (one input chunk's worth of export.xml is held whole, as readExport holds it)
      unclaimed++
      while (unclaimed >= BATCHES_AHEAD) await new Promise<void>((resolve) => (claimed = resolve))
    }
    post({ kind: 'done', counts: reader.counts })
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err))
    post({
      kind: 'failed',
      counts: reader.counts,
      inputFailed: e instanceof InputFailed,
      error: {
        name: e.name,
        message: e.message,
        stack: e.stack,
        at: e instanceof ExportFormatError ? e.at : undefined,
        limit: e instanceof ExportLimitError ? e.limit : undefined,
      },
    })
  }
}

void run()
