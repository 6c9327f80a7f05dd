import { headers as natsHeaders } from '@nats-io/transport-node'
import type { JetStreamClient, PubAck } from '@nats-io/jetstream'
import { encodeEnvelope, type Envelope } from './envelope.ts'

export interface Outgoing {
  subject: string
  event: Envelope
  /** W3C trace context carried from the HTTP request through every stage (DESIGN.md §4) */
  traceparent?: string | undefined
}

/** Publishes one event with its id as `Nats-Msg-Id`; resolves once JetStream has stored it. */
export function publishEvent(js: JetStreamClient, out: Outgoing): Promise<PubAck> {
  const h = out.traceparent ? natsHeaders() : undefined
  if (h && out.traceparent) h.set('traceparent', out.traceparent)
  return js.publish(out.subject, encodeEnvelope(out.event), { msgID: out.event.id, ...(h ? { headers: h } : {}) })
}

/** Publishes all, concurrently (the client pipelines them), and waits for every acknowledgement. */
export function publishAll(js: JetStreamClient, events: readonly Outgoing[]): Promise<PubAck[]> {
  return Promise.all(events.map((e) => publishEvent(js, e)))
}
