import { demoBatches } from '../../cli/demo-data.ts'
import { normalizeBatch, parseBatchEnvelope, type NormalizedSample } from '../../processors/normalize/healthkit.ts'
import type { Nats } from '../../streams/connect.ts'
import { envelope } from '../../streams/envelope.ts'
import { publishAll, type Outgoing } from '../../streams/publish.ts'
import { SAMPLE_TYPE } from '../../streams/schemas.ts'
import { subjects } from '../../streams/subjects.ts'
import { hashUuid } from '../../streams/ids.ts'

/** Canonical samples of `users` demo users with `nights` nights each (≈ 17 samples a night). */
export function canonicalSamples(users: number, nights: number, firstNight = '2026-01-01'): NormalizedSample[] {
  const out: NormalizedSample[] = []
  const now = new Date('2027-01-01T00:00:00Z')
  for (let u = 0; u < users; u++) {
    const userId = `u${u}`
    for (const b of demoBatches({ userId, nights, firstNight, seed: u + 1, batchSize: 1000 })) {
      out.push(...normalizeBatch(parseBatchEnvelope(b, { maxSamples: 10_000 }), { userId, ingestId: b.batchId, now }).samples)
    }
  }
  return out
}

/** At least `n` canonical samples (users of 60 nights each), cut to exactly `n`. */
export function manySamples(n: number): NormalizedSample[] {
  const out: NormalizedSample[] = []
  for (let u = 0; out.length < n; u += 10) out.push(...canonicalSamples(10, 60, '2026-01-01').map((s) => withUser(s, u)))
  return out.slice(0, n)
}

function withUser(s: NormalizedSample, offset: number): NormalizedSample {
  if (offset === 0) return s
  const userId = `u${Number(s.sample.userId.slice(1)) + offset}`
  return { id: hashUuid(s.id, userId), sample: { ...s.sample, userId } }
}

export function sampleEvents(prefix: string, samples: readonly NormalizedSample[]): Outgoing[] {
  return samples.map((s) => ({
    subject: subjects.sample(prefix, s.sample.metric, s.sample.userId),
    event: envelope({ id: s.id, type: SAMPLE_TYPE, source: 'test', subject: s.sample.userId, data: s.sample }),
  }))
}

/** Publishes straight into HPH_SAMPLES, in chunks (what normalize would have done). */
export async function fillSamples(nats: Nats, prefix: string, samples: readonly NormalizedSample[], chunk = 5000): Promise<void> {
  const events = sampleEvents(prefix, samples)
  for (let i = 0; i < events.length; i += chunk) await publishAll(nats.js, events.slice(i, i + chunk))
}
