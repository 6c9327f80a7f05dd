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

export function decodeJson(bytes: Uint8Array): unknown {
  // Buffer's UTF-8 decoding is markedly faster than TextDecoder's on the hot path
  return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
}
