import { parentPort, workerData } from 'node:worker_threads'
import { ExportFormatError } from './errors.ts'
import { readExport, type ReadOptions } from './reader.ts'
import type { FromParser, ToParser } from './reader-thread.ts'

// The worker side of reader-thread.ts: the bytes the main thread sends go through readExport, and each batch
// goes back as it is: the JSON text of its samples crosses threads as one copy.

const port = parentPort
if (!port) throw new Error('parse-thread.ts runs as a worker thread (reader-thread.ts starts it)')
const post = (m: FromParser) => port.postMessage(m)

const queue: ToParser[] = []
let wake: (() => void) | undefined
port.on('message', (m: ToParser) => {
  queue.push(m)
  wake?.()
})

/** The input as the main thread sends it; each chunk taken is reported so that the next may be sent. */
async function* input(): AsyncGenerator<Uint8Array> {
  for (;;) {
    while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve))
    const m = queue.shift()!
    if (m.kind === 'end') return
    if (m.kind === 'fail') throw new Error(m.message)
    post({ kind: 'took' })
    yield m.bytes
  }
}

const reader = readExport(input(), workerData as ReadOptions)
try {
  for await (const b of reader.batches) post({ kind: 'batch', ...b })
  post({ kind: 'done', counts: reader.counts })
} catch (err) {
  const e = err instanceof Error ? err : new Error(String(err))
  post({ kind: 'failed', counts: reader.counts, error: { name: e.name, message: e.message, stack: e.stack, at: e instanceof ExportFormatError ? e.at : undefined } })
}
