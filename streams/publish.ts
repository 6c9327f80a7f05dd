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

/**
 * At most this many publishes await their acknowledgement at once: enough to keep the connection busy, few
 * enough that the last of a large batch (normalize turns a pull of raw batches into up to 200k samples) is
 * acknowledged within the publish timeout instead of timing out behind all the others.
 */
export const PUBLISH_WINDOW = 1000

/** Publishes all, pipelined through a window of `window` unacknowledged publishes; resolves with every acknowledgement. */
export async function publishAll(js: JetStreamClient, events: readonly Outgoing[], window = PUBLISH_WINDOW): Promise<PubAck[]> {
  const acks = new Array<PubAck>(events.length)
  let next = 0
  let failed = false
  const lane = async () => {
    while (!failed && next < events.length) {
      const i = next++
      try {
        acks[i] = await publishEvent(js, events[i] as Outgoing)
      } catch (err) {
        failed = true // the other lanes stop taking events; the caller retries the whole batch (ids make it idempotent)
        throw err
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(window, events.length) }, lane))
  return acks
}
