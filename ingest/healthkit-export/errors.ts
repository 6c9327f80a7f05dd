import { HphError } from '../../errors.ts'

export interface ErrorPosition {
  /** byte offset in export.xml (in the zip itself when `inZip`) */
  byte: number
  line?: number
  column?: number
  inZip?: boolean
}

/** An export that cannot be read to its end: malformed XML, a truncated file, a zip without the export. */
export class ExportFormatError extends HphError {
  constructor(
    message: string,
    readonly at: ErrorPosition,
  ) {
    super('export_malformed', message, [{ path: at.line === undefined ? `byte ${at.byte}` : `line ${at.line}, column ${at.column ?? 0} (byte ${at.byte})`, problem: message }])
  }
}
