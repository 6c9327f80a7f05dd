import { createHash } from 'node:crypto'
import { z } from 'zod'

// docs/architecture.md §4: one envelope for every event; field names follow CloudEvents 1.0.
export const Envelope = z.object({
  specversion: z.literal('1.0'),
  id: z.string().min(1).max(200),
  type: z.string().regex(/^hph\.[a-z_.]+\.v\d+$/),
  source: z.string().min(1),
  subject: z.string().min(1),
  time: z.string().datetime({ offset: true }),
  data: z.unknown(),
})
export type Envelope<T = unknown> = Omit<z.infer<typeof Envelope>, 'data'> & { data: T }

export function envelope<T>(e: { id: string; type: string; source: string; subject: string; data: T; time?: string }): Envelope<T> {
  return { specversion: '1.0', id: e.id, type: e.type, source: e.source, subject: e.subject, time: e.time ?? new Date().toISOString(), data: e.data }
}

/** An envelope schema whose `data` is checked by the event type's own schema. */
export function typedEnvelope<S extends z.ZodTypeAny>(type: string, data: S) {
  return Envelope.extend({ type: z.literal(type), data })
}

const encoder = new TextEncoder()

export function encodeEnvelope(e: Envelope): Uint8Array {
  return encoder.encode(JSON.stringify(e))
}

/** Stands for a field's value while the rest of the event is stringified; JSON writes it as `"\u0000field\u0000"`. */
const FIELD_MARK = '\u0000field\u0000'
const QUOTED_MARK = JSON.stringify(FIELD_MARK)

/**
 * The UTF-8 of the texts one after the other, written into one buffer without joining them first: a string
 * above 128 KiB lives in V8's large-object space, whose every allocation costs fresh pages (≈1 ms for 200 KB
 * on the machine of docs/benchmarks.md §2), and an event of 1000 samples is such a string.
 */
function encodePieces(pieces: readonly string[]): Uint8Array {
  let bytes = 0
  for (const p of pieces) bytes += Buffer.byteLength(p)
  const out = Buffer.allocUnsafeSlow(bytes)
  let at = 0
  for (const p of pieces) at += out.write(p, at)
  return new Uint8Array(out.buffer, out.byteOffset, at)
}

/** A JSON array given as the JSON of each item (a JsonPart). */
export interface JsonArrayText {
  texts: readonly string[]
}

/** `[`, the texts with commas, `]`: the array's JSON as one string (a large object past 128 KiB: see arrayPieces). */
export const arrayJson = (texts: readonly string[]): string => `[${texts.join(',')}]`

/** `[`, the texts with commas, `]`, in pieces of about 32K characters (each well below the large-object size). */
export function arrayPieces(a: JsonArrayText): string[] {
  const pieces: string[] = []
  let run = '['
  a.texts.forEach((t, i) => {
    run += i === 0 ? t : `,${t}`
    if (run.length >= 32 * 1024) {
      pieces.push(run)
      run = ''
    }
  })
  pieces.push(`${run}]`)
  return pieces
}

/**
 * encodeEnvelope for an event whose `data[field]` the caller already holds as JSON text (an export batch's
 * samples, a sample event's samples), written in place instead of being stringified again. `fieldJson` must
 * be what JSON.stringify writes of that value, whole or in pieces (JsonPieces), or the JSON of each item of that
 * array; the bytes are then encodeEnvelope's.
 */
export function encodeEnvelopeWithField(e: Envelope<Record<string, unknown>>, field: string, fieldJson: string | JsonPieces | JsonArrayText): Uint8Array {
  const text = JSON.stringify({ ...e, data: { ...e.data, [field]: FIELD_MARK } })
  const at = text.indexOf(QUOTED_MARK)
  const middle = typeof fieldJson === 'string' ? [fieldJson] : 'pieces' in fieldJson ? fieldJson.pieces : arrayPieces(fieldJson)
  // the mark anywhere else (a field holding it) and the splice could land there: stringify it all instead
  if (at < 0 || text.includes(QUOTED_MARK, at + 1)) return encodeEnvelope({ ...e, data: { ...e.data, [field]: JSON.parse(middle.join('')) as unknown } })
  return encodePieces([text.slice(0, at), ...middle, text.slice(at + QUOTED_MARK.length)])
}

/**
 * JSON text in pieces, each below the large-object size, never joined: their concatenation is the text (a raw
 * batch of an export, whose text is a few hundred KB: encodePieces says what joining it would cost).
 */
export interface JsonPieces {
  pieces: readonly string[]
}

/** encodeEnvelopeWithField for a raw batch's `payload`. */
export function encodeEnvelopeWithPayload(e: Envelope<Record<string, unknown>>, payloadJson: string | JsonPieces): Uint8Array {
  return encodeEnvelopeWithField(e, 'payload', payloadJson)
}

/** hashHex(text) (streams/ids.ts) of a text given in pieces, without joining them. */
export function hashHexOfPieces(text: JsonPieces): string {
  const h = createHash('sha256')
  for (const piece of text.pieces) h.update(piece)
  return h.update('\0').digest('hex')
}

/** hashHex(...parts, JSON of the array) (streams/ids.ts), without joining the array into one string. */
export function hashHexWithArray(parts: ReadonlyArray<string | number>, a: JsonArrayText): string {
  return hashHexOfPieces({ pieces: [`${parts.join('\0')}\0`, ...arrayPieces(a)] })
}

/** Items cut into parts by count and bytes, each item's JSON made once (`arrayJson(texts)` is `JSON.stringify(items)`). */
export interface JsonPart<I> extends JsonArrayText {
  items: I[]
  bytes: number
}

/**
 * Cuts items, in order, into parts of at most `maxItems` whose JSON array takes at most `maxBytes`; each
 * item is stringified once (by `stringify`, which must write what JSON.stringify writes). An item larger than
 * `maxBytes` alone is a part of its own (the caller decides).
 */
export function jsonParts<I>(items: readonly I[], maxItems: number, maxBytes: number, stringify: (item: I) => string = JSON.stringify): JsonPart<I>[] {
  const parts: JsonPart<I>[] = []
  let run: I[] = []
  let texts: string[] = []
  let bytes = 2
  const flush = () => {
    parts.push({ items: run, texts, bytes })
    run = []
    texts = []
    bytes = 2
  }
  for (const item of items) {
    const text = stringify(item)
    const size = Buffer.byteLength(text) + 1
    if (run.length > 0 && (run.length >= maxItems || bytes + size > maxBytes)) flush()
    run.push(item)
    texts.push(text)
    bytes += size
  }
  if (run.length > 0) flush()
  return parts
}

export function decodeJson(bytes: Uint8Array): unknown {
  // Buffer's UTF-8 decoding is markedly faster than TextDecoder's on the hot path
  return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
}
