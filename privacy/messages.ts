import { RetentionPolicy } from '@nats-io/jetstream'
import type { Nats } from '../streams/connect.ts'
import { filteredMessages } from '../streams/reader.ts'

// The messages of one stream matching a user's subject filter, oldest first: what export and erasure read.

export interface FoundMessage {
  seq: number
  subject: string
  /** ISO time the stream stored it */
  time: string
  /** the bytes (empty when only sequences were asked for) */
  data: Uint8Array
}

/** Whether a subject matches a NATS filter (literal tokens, `*` for one token, a final `>` for one or more). */
export function subjectMatches(filter: string, subject: string): boolean {
  const f = filter.split('.')
  const s = subject.split('.')
  if (f.at(-1) === '>') return s.length >= f.length && f.slice(0, -1).every((t, i) => t === '*' || t === s[i])
  return f.length === s.length && f.every((t, i) => t === '*' || t === s[i])
}

const SCAN_CONCURRENCY = 64

/**
 * A work-queue stream refuses a second consumer overlapping its durable one (and an ordered consumer has no
 * acks), so its messages are read one sequence at a time between its first and last: such a stream only
 * holds the work not yet done (HPH_CHANGES), small by design.
 */
async function* scanWorkQueue(nats: Nats, stream: string, filter: string, first: number, last: number): AsyncGenerator<FoundMessage> {
  for (let from = first; from <= last; from += SCAN_CONCURRENCY) {
    const seqs = Array.from({ length: Math.min(SCAN_CONCURRENCY, last - from + 1) }, (_, i) => from + i)
    const got = await Promise.all(seqs.map((seq) => nats.jsm.streams.getMessage(stream, { seq })))
    for (const m of got) if (m && subjectMatches(filter, m.subject)) yield { seq: m.seq, subject: m.subject, time: m.timestamp, data: m.data }
  }
}

/** Every message of `stream` matching `filter`, through the stream reader (or a scan of a work queue). */
export async function* userMessages(nats: Nats, stream: string, filter: string, opts: { withData: boolean }): AsyncGenerator<FoundMessage> {
  // how many there are (nats-server 2.9 answers subjects_filter), so the read knows when it is done
  const info = await nats.jsm.streams.info(stream, { subjects_filter: filter })
  const expected = Object.values(info.state.subjects ?? {}).reduce((a, n) => a + n, 0)
  if (expected === 0) return
  if (info.config.retention === RetentionPolicy.Workqueue) {
    yield* scanWorkQueue(nats, stream, filter, info.state.first_seq, info.state.last_seq)
    return
  }
  for await (const m of filteredMessages(nats, stream, filter, { headersOnly: !opts.withData, expected })) {
    yield { seq: m.seq, subject: m.subject, time: m.timestamp, data: opts.withData ? m.data : new Uint8Array() }
  }
}
