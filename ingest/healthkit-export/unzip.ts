import { Unzip, UnzipInflate } from 'fflate'
import { ExportFormatError } from './errors.ts'
import { ExportLimitError } from './limits.ts'

// docs/api.md §4: the Health app writes export.zip with the export in
// `apple_health_export/export.xml`. The zip is read as a stream (an HTTP body cannot seek), so entries come
// from their local headers, sizes from data descriptors when the writer streamed them (fflate's Unzip).

/** The entry the Health app writes; a bare `export.xml` (an export zipped again by hand) is taken too. */
export const EXPORT_ENTRIES: readonly string[] = ['apple_health_export/export.xml', 'export.xml']

/** compressed bytes given to the inflater at once (limits.ts: what one push can inflate to is bounded by this) */
const PUSH_BYTES = 4 * 1024

export interface ZipProgress {
  /** bytes of the zip read so far */
  bytesRead: number
}

/**
 * The bytes of export.xml inside a zip stream, as they inflate. Every other entry is inflated and dropped
 * (fflate buffers an entry nobody started); once export.xml is whole, the rest of the input is read
 * without being parsed, so an HTTP body is always consumed to its end.
 */
export async function* exportXmlOfZip(input: AsyncIterable<Uint8Array>, progress: ZipProgress, maxInflatedBytes = Infinity): AsyncGenerator<Uint8Array> {
  let out: Uint8Array[] = []
  let found = false
  let whole = false
  let failure: Error | undefined
  /** bytes every entry inflated to so far, export.xml and the others together */
  let inflated = 0
  const count = (n: number) => {
    inflated += n
    if (inflated > maxInflatedBytes)
      failure ??= new ExportLimitError('HPH_EXPORT_MAX_XML_BYTES', `export.zip inflates to more than ${maxInflatedBytes} bytes (HPH_EXPORT_MAX_XML_BYTES)`)
  }
  const unzip = new Unzip((file) => {
    if (!found && EXPORT_ENTRIES.includes(file.name)) {
      found = true
      file.ondata = (err, data, final) => {
        if (err) failure ??= err
        else {
          count(data.length)
          if (data.length > 0) out.push(data)
          if (final) whole = true
        }
      }
    } else {
      file.ondata = (err, data) => {
        if (err) failure ??= err
        else count(data.length)
      }
    }
    file.start()
  })
  unzip.register(UnzipInflate)
  const zipError = (err: unknown) =>
    err instanceof ExportLimitError
      ? err
      : new ExportFormatError(`export.zip is not a readable zip near byte ${progress.bytesRead}: ${err instanceof Error ? err.message : String(err)}`, {
          byte: progress.bytesRead,
          inZip: true,
        })

  for await (const chunk of input) {
    progress.bytesRead += chunk.length
    if (whole) continue
    const bytes = chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk)
    // a piece at a time: deflate inflates up to ~1000×, so what one push makes (and is held at once) stays a few MB
    for (let at = 0; at < bytes.length && !whole; at += PUSH_BYTES) {
      try {
        unzip.push(bytes.subarray(at, at + PUSH_BYTES))
      } catch (err) {
        throw zipError(err)
      }
      if (failure) throw zipError(failure)
      if (out.length > 0) {
        const ready = out
        out = []
        yield* ready
      }
    }
  }
  if (!whole) {
    try {
      unzip.push(new Uint8Array(0), true)
    } catch (err) {
      // fflate: "unexpected EOF" when the input ends inside an entry
      if (found)
        throw new ExportFormatError(`export.zip ends after ${progress.bytesRead} bytes, inside ${EXPORT_ENTRIES[0]}: the file is truncated`, {
          byte: progress.bytesRead,
          inZip: true,
        })
      throw zipError(err)
    }
    if (failure) throw zipError(failure)
    yield* out
    if (!found) throw new ExportFormatError(`export.zip holds no ${EXPORT_ENTRIES[0]} (is it the file the Health app wrote?)`, { byte: progress.bytesRead, inZip: true })
    if (!whole)
      throw new ExportFormatError(`export.zip ends after ${progress.bytesRead} bytes, inside ${EXPORT_ENTRIES[0]}: the file is truncated`, {
        byte: progress.bytesRead,
        inZip: true,
      })
  }
}
