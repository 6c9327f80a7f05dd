import type { z } from 'zod'
import { decodeEvent, type BatchHandler, type Delivered } from './consumer.ts'
import type { Envelope } from './envelope.ts'
import type { RawMessage, StreamReader } from './reader.ts'

// A stream read again through a stage's own handler (`hph rebuild`, `hph replay`): the handler decodes with
// its schema and writes in its own transactions, with its concurrency in flight, as the live consumer runs
// it; nothing is acked (the reader's consumer is ordered) and nothing is dead-lettered again.

/**
 * Decodes and validates a pull as the live stage does. What does not decode is skipped and counted:
 * it reached the DLQ when the live stage first saw it.
 */
export function decodeBatch<T>(schema: z.ZodType<Envelope<T>>, msgs: readonly RawMessage[]): { items: Delivered<T>[]; skipped: number } {
  const items: Delivered<T>[] = []
  let skipped = 0
  for (const m of msgs) {
    let event: Envelope<T> | Error
    try {
      event = decodeEvent(schema, m.data)
    } catch (err) {
      event = err instanceof Error ? err : new Error(String(err)) // not JSON
    }
    if (event instanceof Error) skipped++
    else items.push({ event, data: event.data, subject: m.subject, seq: m.seq, deliveries: 1, traceparent: undefined })
  }
  return { items, skipped }
}

export interface Replay {
  /** Hands the stream up to `target` (inclusive) to the handler; `onPull` after each pull is handed over. */
  to(target: number, onPull?: () => void | Promise<void>): Promise<void>
  /** Waits for the pulls in flight (after a failure: so nothing writes once the caller cleans up). */
  settle(): Promise<void>
  /** messages read */
  readonly messages: number
  /** messages that did not decode, or that the handler named poison: the live stage dead-lettered them */
  readonly skipped: number
}

/** Replays what `reader` reads through `handler`, at most `handler.concurrency` pulls in flight. */
export function replayThrough<T>(handler: BatchHandler<T>, reader: StreamReader): Replay {
  const inflight = new Set<Promise<void>>()
  let failure: unknown
  let messages = 0
  let skipped = 0
  const apply = async (raw: RawMessage[]) => {
    const { items, skipped: bad } = decodeBatch(handler.schema, raw)
    skipped += bad
    if (items.length === 0) return
    const r = await handler.handle(items)
    if (r) skipped += r.poison.length
  }
  return {
    get messages() {
      return messages
    },
    get skipped() {
      return skipped
    },
    async to(target, onPull) {
      while (reader.position < target) {
        const batch = await reader.next(target)
        if (batch.length === 0) continue
        messages += batch.length
        const p = apply(batch)
          .catch((err: unknown) => void (failure ??= err))
          .finally(() => inflight.delete(p))
        inflight.add(p)
        if (inflight.size >= (handler.concurrency ?? 1)) await Promise.race(inflight)
        if (failure) throw failure
        await onPull?.()
      }
      await Promise.all(inflight)
      if (failure) throw failure
    },
    async settle() {
      await Promise.allSettled(inflight)
    },
  }
}
