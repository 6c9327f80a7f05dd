import type { NatsConnection } from '@nats-io/transport-node'

// docs/architecture.md §6: every publisher sizes its events from the connected server's
// max_payload, never from a constant; an event is cut into parts below it.

/** Room kept in a message for its headers (Nats-Msg-Id, traceparent) and the envelope's own fields. */
export const HEADROOM_BYTES = 2048
/** What NATS servers take by default when the connection has not said (before the first INFO). */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024

/** The largest message the connected server takes (its `max_payload`). */
export function serverMaxPayload(nc: Pick<NatsConnection, 'info'>): number {
  return nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD
}

/** The most bytes one event's body may take: the configured bound, and never above the server's max_payload. */
export function eventByteLimit(nc: Pick<NatsConnection, 'info'>, configured: number): number {
  return Math.max(1024, Math.min(configured, serverMaxPayload(nc) - HEADROOM_BYTES))
}

/** What a batch event's own fields (envelope, user, ingest id, part) take at most, beside its samples or rows. */
export const EVENT_FIELDS_BYTES = 1024
