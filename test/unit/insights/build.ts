import type { IdentifiedSample } from '../../../processors/insights/compute.ts'
import type { Sample, SleepStage } from '../../../streams/schemas.ts'

// Test-only builders of canonical samples; times are UTC ISO strings, offsets default to 0.

export function stage(s: SleepStage, start: string, end: string, utcOffsetMinutes = 0, source = 'Apple Watch'): Sample {
  return { userId: 'u', metric: 'sleep_stage', start, end, utcOffsetMinutes, stage: s, source: { name: source }, ingestId: 't' }
}

export function hrv(value: number, start: string, utcOffsetMinutes = 0, metric: 'hrv_sdnn' | 'hrv_rmssd' = 'hrv_sdnn'): Sample {
  const end = new Date(Date.parse(start) + 60_000).toISOString()
  return { userId: 'u', metric, start, end, utcOffsetMinutes, value, source: { name: 'Apple Watch' }, ingestId: 't' }
}

/** Samples with ids by position. */
export const identified = (samples: readonly Sample[]): IdentifiedSample[] => samples.map((sample, i) => ({ id: `s${i}`, sample }))

export const ms = (iso: string): number => Date.parse(iso)
