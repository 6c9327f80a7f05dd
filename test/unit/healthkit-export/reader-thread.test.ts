import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { zipSync } from 'fflate'
import { describe, expect, it } from 'vitest'
import { ExportFormatError } from '../../../ingest/healthkit-export/errors.ts'
import { readExport, type ExportBatch, type ExportCounts, type ExportFormat } from '../../../ingest/healthkit-export/reader.ts'
import { readExportInThread, warmParseThread } from '../../../ingest/healthkit-export/reader-thread.ts'

// readExportInThread is readExport on a worker thread: the same batches, counts and failures, with the input
// read a few chunks ahead of the parse and never further, whatever the consumer does.

const NIGHTS = readFileSync(new URL('../../fixtures/healthkit-export-30-nights.xml', import.meta.url))

/** The bytes in pieces of `size`; `pulled` counts the pieces taken, `closed` says the reader let go of the input. */
function source(bytes: Uint8Array, size: number, failAt?: { piece: number; error: Error }) {
  const state = { pulled: 0, closed: false }
  async function* pieces(): AsyncGenerator<Uint8Array> {
    try {
      for (let at = 0; at < bytes.length; at += size) {
        if (failAt && state.pulled === failAt.piece) throw failAt.error
        state.pulled++
        yield bytes.subarray(at, at + size)
      }
    } finally {
      state.closed = true
    }
  }
  return { state, input: pieces() }
}

async function drain(reader: { counts: ExportCounts; batches: AsyncGenerator<ExportBatch> }) {
  const batches: ExportBatch[] = []
  try {
    for await (const b of reader.batches) batches.push(b)
  } catch (error) {
    return { batches, counts: reader.counts, error }
  }
  return { batches, counts: reader.counts, error: undefined }
}

const both = async (bytes: Uint8Array, format: ExportFormat, size: number, batchSize = 50) => ({
  inThread: await drain(readExportInThread(source(bytes, size).input, { format, batchSize })),
  inline: await drain(readExport(source(bytes, size).input, { format, batchSize })),
})

describe('readExportInThread', () => {
  it('gives the batches and counts readExport gives, for export.xml and export.zip', async () => {
    for (const [bytes, format] of [
      [NIGHTS, 'xml'],
      [zipSync({ 'apple_health_export/export.xml': NIGHTS }), 'zip'],
    ] as const) {
      const { inThread, inline } = await both(bytes, format, 7_000)
      expect(inThread.error).toBeUndefined()
      expect(inThread.batches.length).toBeGreaterThan(5)
      expect(inThread.batches).toEqual(inline.batches)
      expect(inThread.counts).toEqual(inline.counts)
    }
  })

  it('fails as readExport fails on a malformed file: the same ExportFormatError, after the same whole batches', async () => {
    const text = NIGHTS.toString('utf8').split('\n')
    text.splice(300, 0, ' <Record type="HKQuantityTypeIdentifierHeartRate" value=61/>')
    const { inThread, inline } = await both(Buffer.from(text.join('\n')), 'xml', 5_000)
    expect(inThread.error).toBeInstanceOf(ExportFormatError)
    expect((inThread.error as ExportFormatError).message).toBe((inline.error as ExportFormatError).message)
    expect((inThread.error as ExportFormatError).at).toEqual((inline.error as ExportFormatError).at)
    expect(inThread.batches.length).toBeGreaterThan(0)
    expect(inThread.batches).toEqual(inline.batches)
  })

  it("ends with the input's own error when the input fails, after the whole batches before it", async () => {
    const gone = new Error('the client went away')
    const s = source(NIGHTS, 4_000, { piece: 20, error: gone })
    const r = await drain(readExportInThread(s.input, { format: 'xml', batchSize: 50 }))
    expect(r.error).toBe(gone)
    const before = await drain(readExport(source(NIGHTS.subarray(0, 20 * 4_000), 4_000).input, { format: 'xml', batchSize: 50 }))
    expect(r.batches).toEqual(before.batches)
  })

  it('tells a malformed file as such even when the input fails a little further on (it is read a few chunks ahead)', async () => {
    const text = NIGHTS.toString('utf8').split('\n')
    text.splice(300, 0, ' <Record type="HKQuantityTypeIdentifierHeartRate" value=61/>')
    const bytes = Buffer.from(text.join('\n'))
    const badPiece = Math.floor(Buffer.byteLength(text.slice(0, 300).join('\n')) / 2_000)
    for (const ahead of [1, 2, 3]) {
      const s = source(bytes, 2_000, { piece: badPiece + ahead, error: new Error('over the limit') })
      const r = await drain(readExportInThread(s.input, { format: 'xml', batchSize: 50 }))
      expect(r.error).toBeInstanceOf(ExportFormatError)
      expect((r.error as Error).message).toMatch(/unquoted attribute value/)
    }
  })

  it('says what it has read when the consumer stops early', async () => {
    const reader = readExportInThread(source(NIGHTS, 4_000).input, { format: 'xml', batchSize: 50 })
    let taken = 0
    for await (const b of reader.batches) {
      expect(b.size).toBe(50)
      if (++taken === 2) break
    }
    expect(reader.counts.xmlBytes).toBeGreaterThan(0)
    expect(
      reader.counts.records['HKCategoryTypeIdentifierSleepAnalysis']! + (reader.counts.records['HKQuantityTypeIdentifierHeartRateVariabilitySDNN'] ?? 0),
    ).toBeGreaterThanOrEqual(100)
    expect(reader.counts.otherElements).toMatchObject({ ExportDate: 1, Me: 1 })
  })

  it('reads no further than a few chunks ahead while the consumer does not take batches, and lets the input go when it stops', async () => {
    const s = source(NIGHTS, 2_000)
    const reader = readExportInThread(s.input, { format: 'xml', batchSize: 10 })
    const first = await reader.batches.next()
    expect(first.done).toBe(false)
    await new Promise((r) => setTimeout(r, 1_000))
    const pulled = s.state.pulled
    // the parser holds a few batches (BATCHES_AHEAD) and stops; the input is read at most a few chunks past that
    expect(pulled * 2_000).toBeLessThan(NIGHTS.length / 4)
    await new Promise((r) => setTimeout(r, 300))
    expect(s.state.pulled).toBe(pulled)
    await reader.batches.return()
    await new Promise((r) => setTimeout(r, 100))
    expect(s.state.closed).toBe(true)
  })

  it('begins the parse before the first batch is asked for, and close() lets a reader never read go', async () => {
    const s = source(NIGHTS, 2_000)
    const reader = readExportInThread(s.input, { format: 'xml', batchSize: 10 })
    // nothing has asked for a batch: the parse runs ahead (the CLI connects to NATS meanwhile) up to its few batches
    const t0 = Date.now()
    while (s.state.pulled === 0 && Date.now() - t0 < 4_000) await new Promise((r) => setTimeout(r, 20))
    expect(s.state.pulled).toBeGreaterThan(0)
    await new Promise((r) => setTimeout(r, 500))
    expect(s.state.pulled * 2_000).toBeLessThan(NIGHTS.length / 4)
    await reader.close()
    await new Promise((r) => setTimeout(r, 100))
    expect(s.state.closed).toBe(true)
    // the batches of a closed reader end at once, without one
    const after = await drain(reader)
    expect(after.batches).toEqual([])
    expect(after.error).toBeUndefined()
  })

  it('reads a file itself, giving the batches and counts readExport gives; a file it cannot read is the input failing', async () => {
    const path = fileURLToPath(new URL('../../fixtures/healthkit-export-30-nights.xml', import.meta.url))
    const inThread = await drain(readExportInThread({ path, chunkBytes: 7_000 }, { format: 'xml', batchSize: 50 }))
    const inline = await drain(readExport(source(NIGHTS, 7_000).input, { format: 'xml', batchSize: 50 }))
    expect(inThread.error).toBeUndefined()
    expect(inThread.batches).toEqual(inline.batches)
    expect(inThread.counts).toEqual(inline.counts)
    const missing = await drain(readExportInThread({ path: `${path}.missing`, chunkBytes: 7_000 }, { format: 'xml', batchSize: 50 }))
    expect(missing.batches).toEqual([])
    expect((missing.error as Error).message).toMatch(/ENOENT/)
  })

  it('takes a thread warmed ahead, and a warmed thread never used keeps no process alive', async () => {
    warmParseThread()
    const { inThread, inline } = await both(NIGHTS, 'xml', 64 * 1024)
    expect(inThread.batches).toEqual(inline.batches)
    // warmed with another heap than the read asks for (the CLI warms it before reading HPH_EXPORT_PARSER_HEAP_MB): a new
    // thread of the heap asked for reads it
    warmParseThread(64)
    const otherHeap = await drain(readExportInThread(source(NIGHTS, 64 * 1024).input, { format: 'xml', batchSize: 50, parserHeapMb: 128 }))
    expect(otherHeap.error).toBeUndefined()
    expect(otherHeap.batches).toEqual(inline.batches)
    const child = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', "import { warmParseThread } from './ingest/healthkit-export/reader-thread.ts'; warmParseThread(); console.log('warmed')"],
      { encoding: 'utf8', timeout: 20_000 },
    )
    expect(child.status).toBe(0)
    expect(child.stdout).toBe('warmed\n')
  })
})
