import { z } from 'zod'

// DESIGN.md §4: one envelope for every event; field names follow CloudEvents 1.0.
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

/** Stands for the payload while the rest of the event is stringified; JSON writes it as `"\u0000payload\u0000"`. */
const PAYLOAD_MARK = '\u0000payload\u0000'
const QUOTED_MARK = JSON.stringify(PAYLOAD_MARK)

/**
 * encodeEnvelope for an event whose `data.payload` the caller already holds as JSON text (an export batch: a
 * few hundred kB of samples), written in place instead of being parsed and stringified again. `payloadJson`
 * must be what JSON.stringify writes of the payload; the bytes are then encodeEnvelope's.
 */
export function encodeEnvelopeWithPayload(e: Envelope<Record<string, unknown>>, payloadJson: string): Uint8Array {
  const text = JSON.stringify({ ...e, data: { ...e.data, payload: PAYLOAD_MARK } })
  const at = text.indexOf(QUOTED_MARK)
  // the mark anywhere else (a field holding it) and the splice could land there: stringify it all instead
  if (at < 0 || text.includes(QUOTED_MARK, at + 1)) return encodeEnvelope({ ...e, data: { ...e.data, payload: JSON.parse(payloadJson) as unknown } })
  return encoder.encode(text.slice(0, at) + payloadJson + text.slice(at + QUOTED_MARK.length))
}

export function decodeJson(bytes: Uint8Array): unknown {
  // Buffer's UTF-8 decoding is markedly faster than TextDecoder's on the hot path
  return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
}
