import type { Metric } from './schemas.ts'

// docs/architecture.md §2, §3: the userId is the last token of every subject. Nobody writes a subject by hand.

export type StreamKey = 'INGEST' | 'SAMPLES' | 'CHANGES' | 'INSIGHTS' | 'DLQ' | 'AUDIT'
export const STREAM_KEYS: readonly StreamKey[] = ['INGEST', 'SAMPLES', 'CHANGES', 'INSIGHTS', 'DLQ', 'AUDIT']

/** `HPH_INGEST` for prefix `hph`; `T1_INGEST` for prefix `t1`. */
export function streamName(prefix: string, key: StreamKey): string {
  return `${prefix.toUpperCase()}_${key}`
}

/** The subject filter a stream owns: `<prefix>.ingest.>` … */
export function streamSubjects(prefix: string, key: StreamKey): string {
  return `${prefix}.${key.toLowerCase()}.>`
}

export const subjects = {
  ingest: (prefix: string, source: string, userId: string) => `${prefix}.ingest.v1.${source}.${userId}`,
  sample: (prefix: string, metric: Metric, userId: string) => `${prefix}.samples.v2.${metric}.${userId}`,
  changes: (prefix: string, userId: string) => `${prefix}.changes.v1.days.${userId}`,
  /** `group`: daily, baseline or cpt (an `hph.insight.v2` event) */
  insight: (prefix: string, group: string, userId: string) => `${prefix}.insights.v2.${group}.${userId}`,
  /** Where the code before `.v2` published (fixtures that write a stream as it used to be written). */
  legacy: {
    sample: (prefix: string, metric: Metric, userId: string) => `${prefix}.samples.v1.${metric}.${userId}`,
    insight: (prefix: string, kind: string, userId: string) => `${prefix}.insights.v1.${kind}.${userId}`,
  },
  dlq: (prefix: string, stage: string, userId: string) => `${prefix}.dlq.${stage}.${userId}`,
  /** `<prefix>.audit.v1.<action>.<userId>`: the user whose data was touched is the last token, like everywhere */
  audit: (prefix: string, action: string, userToken: string) => `${prefix}.audit.v1.${action}.${userToken}`,
  /** Every subject of one user in the four-level streams (ingest, samples, changes, insights, audit). */
  ofUser: (prefix: string, userId: string) => `${prefix}.*.*.*.${userId}`,
  /** Every subject of one user in one stream (per-user export and erasure): the DLQ has a level fewer. */
  ofUserIn: (prefix: string, key: StreamKey, userId: string) => (key === 'DLQ' ? `${prefix}.dlq.*.${userId}` : `${prefix}.${key.toLowerCase()}.*.*.${userId}`),
}

/** The last token of a subject: the userId by construction. */
export function userOfSubject(subject: string): string {
  return subject.slice(subject.lastIndexOf('.') + 1)
}

/** Subject tokens must not contain `.`, `*`, `>` or whitespace; unknown users in the DLQ use `_`. */
export function safeToken(s: string | undefined): string {
  return s && /^[A-Za-z0-9_-]{1,64}$/.test(s) ? s : '_'
}
