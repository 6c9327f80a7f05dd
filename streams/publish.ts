import { headers as natsHeaders } from '@nats-io/transport-node'
import type { JetStreamClient, PubAck } from '@nats-io/jetstream'
import { encodeEnvelope, type Envelope } from './envelope.ts'

export interface Outgoing {
  subject: string
  event: Envelope
  /** W3C trace context carried from the HTTP request through every stage (docs/architecture.md §4) */
  traceparent?: string | undefined
  /** the event's bytes when the caller has written them (encodeEnvelopeWithPayload); else encodeEnvelope(event) */
  encoded?: Uint8Array | undefined
}

/** Publishes one event with its id as `Nats-Msg-Id`; resolves once JetStream has stored it. */
export function publishEvent(js: JetStreamClient, out: Outgoing): Promise<PubAck> {
  const h = out.traceparent ? natsHeaders() : undefined
  if (h && out.traceparent) h.set('traceparent', out.traceparent)
  return js.publish(out.subject, out.encoded ?? encodeEnvelope(out.event), { msgID: out.event.id, ...(h ? { headers: h } : {}) })
}

/**
 * At most this many publishes await their acknowledgement at once: few enough that the last of a large batch
 * (normalize turns a pull of export batches into up to 200k samples) is acknowledged within the publish
 * timeout instead of timing out behind all the others; many enough that the client writes them to the socket
 * in large bursts (a sliding window of single publishes cost the end-to-end run a quarter of its rate).
 */
export const PUBLISH_WINDOW = 5000

/** Publishes all, `window` at a time (each burst pipelined, then its acknowledgements awaited); resolves with every acknowledgement. */
export async function publishAll(js: JetStreamClient, events: readonly Outgoing[], window = PUBLISH_WINDOW): Promise<PubAck[]> {
  const acks: PubAck[] = []
  for (let i = 0; i < events.length; i += window) {
    acks.push(...(await Promise.all(events.slice(i, i + window).map((e) => publishEvent(js, e)))))
  }
  return acks
}
