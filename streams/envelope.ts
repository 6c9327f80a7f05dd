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
 * encodeEnvelope for an event whose `data[field]` the caller already holds as JSON text (an export batch's
 * samples, a sample event's samples), written in place instead of being stringified again. `fieldJson` must
 * be what JSON.stringify writes of that value; the bytes are then encodeEnvelope's.
 */
export function encodeEnvelopeWithField(e: Envelope<Record<string, unknown>>, field: string, fieldJson: string): Uint8Array {
  const text = JSON.stringify({ ...e, data: { ...e.data, [field]: FIELD_MARK } })
  const at = text.indexOf(QUOTED_MARK)
  // the mark anywhere else (a field holding it) and the splice could land there: stringify it all instead
  if (at < 0 || text.includes(QUOTED_MARK, at + 1)) return encodeEnvelope({ ...e, data: { ...e.data, [field]: JSON.parse(fieldJson) as unknown } })
  return encoder.encode(text.slice(0, at) + fieldJson + text.slice(at + QUOTED_MARK.length))
}

/** encodeEnvelopeWithField for a raw batch's `payload`. */
export function encodeEnvelopeWithPayload(e: Envelope<Record<string, unknown>>, payloadJson: string): Uint8Array {
  return encodeEnvelopeWithField(e, 'payload', payloadJson)
}

/** Items cut into parts by count and bytes, each part with its JSON array text made once. */
export interface JsonPart<I> {
  items: I[]
  /** `JSON.stringify(items)` */
  json: string
  bytes: number
}

/**
 * Cuts items, in order, into parts of at most `maxItems` whose JSON array takes at most `maxBytes`; each
 * item is stringified once. An item larger than `maxBytes` alone is a part of its own (the caller decides).
 */
export function jsonParts<I>(items: readonly I[], maxItems: number, maxBytes: number): JsonPart<I>[] {
  const parts: JsonPart<I>[] = []
  let run: I[] = []
  let texts: string[] = []
  let bytes = 2
  const flush = () => {
    parts.push({ items: run, json: `[${texts.join(',')}]`, bytes })
    run = []
    texts = []
    bytes = 2
  }
  for (const item of items) {
    const text = JSON.stringify(item)
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
