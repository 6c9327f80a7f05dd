import { DeliverPolicy, type Consumer, type JsMsg } from '@nats-io/jetstream'
import type { Nats } from './connect.ts'

// The one stream reader: a stream read in order with an ordered consumer (ephemeral, no acks, nothing
// removed): from a sequence, in pulls, for rebuilds and replays (docs/operating.md §4); or the messages of
// one subject filter, for a user's export and erasure (docs/operating.md §7).

/** a pull of the reader: at most this many bytes of events (and `batchSize` of them) */
const PULL_BYTES = 16 * 1024 * 1024
/** what the reader holds read ahead of the pulls, at most (and a fetch asks for a quarter of it) */
const READ_AHEAD_BYTES = 64 * 1024 * 1024

export interface RawMessage {
  data: Uint8Array
  seq: number
  subject: string
}

/**
 * The `expected` messages of `stream` matching `filter`, oldest first (`headersOnly`: without their bytes).
 * Stops once `expected` were read or the consumer has none pending.
 */
export async function* filteredMessages(nats: Nats, stream: string, filter: string, opts: { headersOnly: boolean; expected: number }): AsyncGenerator<JsMsg> {
  const consumer = await nats.js.consumers.get(stream, { filter_subjects: filter, headers_only: opts.headersOnly })
  let got = 0
  for (;;) {
    let fetched = 0
    let pending = 1
    for await (const m of await consumer.fetch({ max_messages: 1000, expires: 2000 })) {
      fetched++
      got++
      pending = m.info.pending
      yield m
      if (pending === 0) break
    }
    if (fetched === 0 || pending === 0 || got >= opts.expected) return
  }
}

/** The sequence of the first message stored at or after `since` (`fallback` when there is none). */
export async function firstSeqSince(nats: Nats, stream: string, since: Date, fallback: number): Promise<number> {
  // an ordered consumer: ephemeral, the server removes it once it is idle
  const c = await nats.js.consumers.get(stream, { deliver_policy: DeliverPolicy.StartTime, opt_start_time: since.toISOString() })
  for await (const m of await c.fetch({ max_messages: 1, expires: 2000 })) return m.seq
  return fallback
}

/**
 * Reads a stream in order from a sequence with an ordered consumer (no acks), fetching while less than
 * READ_AHEAD_BYTES are queued (a fetch is bounded by messages, sized from the messages seen: a byte-bounded
 * pull can stall on a message larger than what is left of it), cut into pulls.
 */
export class StreamReader {
  position: number
  private queue: JsMsg[] = []
  private head = 0
  private queuedBytes = 0
  private seenBytes = 0
  private seenMessages = 0
  private wake: (() => void) | undefined
  private resume: (() => void) | undefined
  private stopping = false
  private closed = false
  private failure: unknown
  private pumping: Promise<void> = Promise.resolve()

  private constructor(
    private readonly consumer: Consumer,
    private readonly batchSize: number,
    fromSeq: number,
  ) {
    this.position = fromSeq - 1
  }

  /** Reads `stream` from `fromSeq` on, handing out pulls of at most `batchSize` messages. */
  static async open(nats: Nats, stream: string, fromSeq: number, batchSize: number): Promise<StreamReader> {
    const consumer = await nats.js.consumers.get(stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: fromSeq })
    const reader = new StreamReader(consumer, batchSize, fromSeq)
    reader.pumping = reader.pump()
    return reader
  }

  /** Messages a fetch asks for: READ_AHEAD_BYTES / 4 of the sizes seen so far, within 16…2000. */
  private fetchSize(): number {
    const average = this.seenMessages > 0 ? this.seenBytes / this.seenMessages : 64 * 1024
    return Math.max(16, Math.min(2000, Math.floor(READ_AHEAD_BYTES / 4 / Math.max(1, average))))
  }

  private async pump(): Promise<void> {
    try {
      while (!this.stopping) {
        if (this.queuedBytes >= READ_AHEAD_BYTES) {
          await new Promise<void>((resolve) => (this.resume = resolve))
          this.resume = undefined
          continue
        }
        for await (const m of await this.consumer.fetch({ max_messages: this.fetchSize(), expires: 1000 })) {
          this.queue.push(m)
          this.queuedBytes += m.data.length
          this.seenBytes += m.data.length
          this.seenMessages++
          this.wake?.()
        }
      }
    } catch (err) {
      this.failure = err
    } finally {
      this.closed = true
      this.wake?.()
    }
  }

  private async arrival(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const arrived = await new Promise<boolean>((resolve) => {
      this.wake = () => resolve(true)
      timer = setTimeout(() => resolve(false), ms)
    })
    clearTimeout(timer)
    this.wake = undefined
    return arrived
  }

  /** Up to batchSize messages and PULL_BYTES, none beyond `target`; waits for at least one, or for the stream to be read to `target`. */
  async next(target: number): Promise<RawMessage[]> {
    while (this.head >= this.queue.length) {
      if (this.closed) throw new Error(`the stream ended at ${this.position} before ${target}${this.failure ? `: ${(this.failure as Error).message}` : ''}`)
      if (!(await this.arrival(1500))) {
        // nothing came for a while: messages up to `target` may have been removed (a purge, an erase)
        const info = await this.consumer.info(false)
        if (info.num_pending === 0 && this.head >= this.queue.length) {
          this.position = Math.max(this.position, target)
          return []
        }
      }
    }
    const out: RawMessage[] = []
    let bytes = 0
    while (this.head < this.queue.length && out.length < this.batchSize && this.position < target) {
      const m = this.queue[this.head] as JsMsg
      if (out.length > 0 && bytes + m.data.length > PULL_BYTES) break
      this.head++
      bytes += m.data.length
      this.position = m.seq
      out.push({ data: m.data, seq: m.seq, subject: m.subject })
    }
    this.queuedBytes -= bytes
    if (this.queuedBytes < READ_AHEAD_BYTES) this.resume?.()
    if (this.head > 10_000) {
      this.queue = this.queue.slice(this.head)
      this.head = 0
    }
    return out
  }

  async close(): Promise<void> {
    this.stopping = true
    this.resume?.()
    await this.pumping
  }
}
