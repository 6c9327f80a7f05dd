import type { Config } from '../../config.ts'
import { HphError } from '../../errors.ts'

// docs/architecture.md §6: an export is bounded however it inflates. The parser (saxes) gathers a
// name, an attribute value, a run of text, a comment or the DOCTYPE whole before it hands it over, and keeps every
// open element on a stack; it is fed a slice at a time and its gathering is looked at after each slice, so no
// gathering outgrows its limit by more than a slice.

export interface ExportLimits {
  /** bytes of export.xml (of every entry of a zip together) once inflated: HPH_EXPORT_MAX_XML_BYTES */
  xmlBytes: number
  /** open elements at once: HPH_EXPORT_MAX_DEPTH */
  depth: number
  /** characters of an element or attribute name (and an entity, a processing instruction's target): HPH_EXPORT_MAX_NAME_CHARS */
  nameChars: number
  /** characters of one attribute value: HPH_EXPORT_MAX_VALUE_CHARS */
  valueChars: number
  /** characters of a run of text, a comment, a CDATA section or a processing instruction: HPH_EXPORT_MAX_TEXT_CHARS */
  textChars: number
  /** characters of the DOCTYPE declaration with its internal subset: HPH_EXPORT_MAX_DOCTYPE_CHARS */
  doctypeChars: number
}

/** The defaults: an Apple Health export nests 5 deep, names are short, its DOCTYPE is ~10 KB. */
export const DEFAULT_EXPORT_LIMITS: ExportLimits = {
  xmlBytes: 16 * 1024 ** 3,
  depth: 32,
  nameChars: 256,
  valueChars: 64 * 1024,
  textChars: 1024 * 1024,
  doctypeChars: 1024 * 1024,
}

/** The limits as the settings give them. */
export function exportLimitsOf(
  c: Pick<
    Config,
    'HPH_EXPORT_MAX_XML_BYTES' | 'HPH_EXPORT_MAX_DEPTH' | 'HPH_EXPORT_MAX_NAME_CHARS' | 'HPH_EXPORT_MAX_VALUE_CHARS' | 'HPH_EXPORT_MAX_TEXT_CHARS' | 'HPH_EXPORT_MAX_DOCTYPE_CHARS'
  >,
): ExportLimits {
  return {
    xmlBytes: c.HPH_EXPORT_MAX_XML_BYTES,
    depth: c.HPH_EXPORT_MAX_DEPTH,
    nameChars: c.HPH_EXPORT_MAX_NAME_CHARS,
    valueChars: c.HPH_EXPORT_MAX_VALUE_CHARS,
    textChars: c.HPH_EXPORT_MAX_TEXT_CHARS,
    doctypeChars: c.HPH_EXPORT_MAX_DOCTYPE_CHARS,
  }
}

/** attributes of one element, at most (an export's Record has ten) */
export const MAX_ATTRIBUTES = 1024
/** the parser is given at most this many characters at once: what a gathering may outgrow its limit by */
export const PARSE_SLICE_CHARS = 64 * 1024
/**
 * bytes of export.xml decoded at once for one slice: UTF-8 gives at most a character a byte, and the decoder may
 * add what it held back from the piece before (at most 3 bytes, 3 characters when they are not UTF-8)
 */
export const PARSE_SLICE_BYTES = PARSE_SLICE_CHARS - 3

export const LIMIT_SETTINGS: Record<keyof ExportLimits, string> = {
  xmlBytes: 'HPH_EXPORT_MAX_XML_BYTES',
  depth: 'HPH_EXPORT_MAX_DEPTH',
  nameChars: 'HPH_EXPORT_MAX_NAME_CHARS',
  valueChars: 'HPH_EXPORT_MAX_VALUE_CHARS',
  textChars: 'HPH_EXPORT_MAX_TEXT_CHARS',
  doctypeChars: 'HPH_EXPORT_MAX_DOCTYPE_CHARS',
}

/** An export over one of its limits: refused (413) with the limit and its setting named. */
export class ExportLimitError extends HphError {
  constructor(
    readonly limit: string,
    message: string,
  ) {
    super('export_limit_exceeded', message, [{ path: limit, problem: message }])
  }
}

export function overLimit(key: keyof ExportLimits, limits: ExportLimits, what: string): ExportLimitError {
  return new ExportLimitError(LIMIT_SETTINGS[key], `${what} is over the limit of ${limits[key]} (${LIMIT_SETTINGS[key]})`)
}

/** What of saxes' state is read (its fields, public in its JavaScript, not in its types): saxes 6. */
interface SaxesState {
  state: number
  text: string
  name: string
  entity: string
  piTarget: string
  openWakaBang: string
  tags: unknown[]
  attribList: unknown[]
}

// saxes 6's states (saxes.js): where `text` holds the DOCTYPE, and where an attribute value
const DOCTYPE_STATES = new Set([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
const ATTRIBUTE_VALUE_STATES = new Set([39, 40, 41, 42])

const S_TEXT = 13

/**
 * Text between elements is not gathered (no text handler), but a run of it is still bounded: its length is
 * told by where the parser is since the last tag started (watched through `opentagstart`, which the reader
 * does not use), an overcount by at most the element before it.
 */
export function watchText(parser: { on(event: 'opentagstart', handler: () => void): void; position: number }): TextRun {
  let tagAt = 0
  parser.on('opentagstart', () => (tagAt = parser.position))
  // saxes' `position` is right inside a handler only: between writes, the caller counts what it fed
  return { sinceTag: (fed) => fed - tagAt }
}

export interface TextRun {
  /** characters since the last tag started, given how many were fed to the parser */
  sinceTag(fed: number): number
}

/** Throws when the parser holds more than the limits allow; called after each slice it was given. */
export function checkParser(parser: unknown, limits: ExportLimits, text?: { run: TextRun; fed: number }): void {
  const p = parser as SaxesState
  const run = text ? text.run.sinceTag(text.fed) : 0
  if (p.state === S_TEXT && run > limits.textChars) throw overLimit('textChars', limits, `a run of text (${run}+ characters)`)
  if (p.tags.length > limits.depth) throw overLimit('depth', limits, `elements nest ${p.tags.length} deep, which`)
  if (p.name.length > limits.nameChars || p.entity.length > limits.nameChars || p.piTarget.length > limits.nameChars || p.openWakaBang.length > limits.nameChars) {
    throw overLimit('nameChars', limits, 'a name')
  }
  if (p.attribList.length > MAX_ATTRIBUTES) throw new ExportLimitError('attributes', `an element has more than ${MAX_ATTRIBUTES} attributes`)
  const n = p.text.length
  if (DOCTYPE_STATES.has(p.state)) {
    if (n > limits.doctypeChars) throw overLimit('doctypeChars', limits, `the DOCTYPE declaration (${n}+ characters)`)
  } else if (ATTRIBUTE_VALUE_STATES.has(p.state)) {
    if (n > limits.valueChars) throw overLimit('valueChars', limits, `an attribute value (${n}+ characters)`)
  } else if (n > limits.textChars) {
    throw overLimit('textChars', limits, `a run of text, a comment or a CDATA section (${n}+ characters)`)
  }
}
