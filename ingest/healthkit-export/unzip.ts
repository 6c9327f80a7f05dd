import { Unzip, UnzipInflate } from 'fflate'
import { ExportFormatError } from './errors.ts'

// docs/api.md §4: the Health app writes export.zip with the export in
// `apple_health_export/export.xml`. The zip is read as a stream (an HTTP body cannot seek), so entries come
// from their local headers, sizes from data descriptors when the writer streamed them (fflate's Unzip).

/** The entry the Health app writes; a bare `export.xml` (an export zipped again by hand) is taken too. */
export const EXPORT_ENTRIES: readonly string[] = ['apple_health_export/export.xml', 'export.xml']

export interface ZipProgress {
  /** bytes of the zip read so far */
  bytesRead: number
}

/**
 * The bytes of export.xml inside a zip stream, as they inflate. Every other entry is inflated and dropped
 * (fflate buffers an entry nobody started); once export.xml is whole, the rest of the input is read
 * without being parsed, so an HTTP body is always consumed to its end.
 */
export async function* exportXmlOfZip(input: AsyncIterable<Uint8Array>, progress: ZipProgress): AsyncGenerator<Uint8Array> {
  let out: Uint8Array[] = []
  let found = false
  let whole = false
  let failure: Error | undefined
  const unzip = new Unzip((file) => {
    if (!found && EXPORT_ENTRIES.includes(file.name)) {
      found = true
      file.ondata = (err, data, final) => {
        if (err) failure ??= err
        else {
          if (data.length > 0) out.push(data)
          if (final) whole = true
        }
      }
    } else {
      file.ondata = (err) => {
        if (err) failure ??= err
      }
    }
    file.start()
  })
  unzip.register(UnzipInflate)
  const zipError = (err: unknown) =>
    new ExportFormatError(`export.zip is not a readable zip near byte ${progress.bytesRead}: ${err instanceof Error ? err.message : String(err)}`, { byte: progress.bytesRead, inZip: true })

  for await (const chunk of input) {
    progress.bytesRead += chunk.length
    if (whole) continue
    try {
      unzip.push(chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk))
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
  if (!whole) {
    try {
      unzip.push(new Uint8Array(0), true)
    } catch (err) {
      // fflate: "unexpected EOF" when the input ends inside an entry
      if (found) throw new ExportFormatError(`export.zip ends after ${progress.bytesRead} bytes, inside ${EXPORT_ENTRIES[0]}: the file is truncated`, { byte: progress.bytesRead, inZip: true })
      throw zipError(err)
    }
    if (failure) throw zipError(failure)
    yield* out
    if (!found) throw new ExportFormatError(`export.zip holds no ${EXPORT_ENTRIES[0]} (is it the file the Health app wrote?)`, { byte: progress.bytesRead, inZip: true })
    if (!whole) throw new ExportFormatError(`export.zip ends after ${progress.bytesRead} bytes, inside ${EXPORT_ENTRIES[0]}: the file is truncated`, { byte: progress.bytesRead, inZip: true })
  }
}
