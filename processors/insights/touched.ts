import type { SampleFacts } from '../../streams/schemas.ts'
import { addDays, instantMs, localDate } from './days.ts'
import { DEFAULT_CONFIG } from './defaults.ts'

// docs/insights.md §6: what a change touches.

export { addDays }

/** §6: a sample touches the local dates of its start and end (in its own offset). */
export function touchedDays(s: SampleFacts): string[] {
  const start = localDate(instantMs(s.start), s.utcOffsetMinutes)
  const end = localDate(instantMs(s.end), s.utcOffsetMinutes)
  return start === end ? [start] : [start, end]
}

export interface AffectedRange {
  /** the earliest touched day */
  first: string
  /** days whose sleep_daily and hrv_daily rows may change: D−1 … D+1 for each touched D */
  daily: Set<string>
  /** baseline_history and readiness may change on derivedFrom … derivedTo (a superset of D−1 … D+W+1 for each D) */
  derivedFrom: string
  derivedTo: string
}

/** §6: the daily rows a touched date can change: an episode may start the evening before and end the day after. */
export function dailyRange(day: string): { from: string; to: string } {
  return { from: addDays(day, -1), to: addDays(day, 1) }
}

/**
 * §6: the baselines and readiness a touched date can change: D … D+W+1 (a night of D+1 is in the window
 * of D+W+1), and D−1 too: the night of D−1 can move to D (an episode that now ends after midnight), which
 * takes away D−1's sleep evidence and may take away its baseline_history row. §6 allows recomputing more.
 */
export function derivedRange(day: string, windowDays: number = DEFAULT_CONFIG.windowDays): { from: string; to: string } {
  return { from: addDays(day, -1), to: addDays(day, windowDays + 1) }
}

/** §6: the range to recompute for a non-empty set of touched dates. */
export function affectedRange(days: readonly string[], windowDays: number = DEFAULT_CONFIG.windowDays): AffectedRange {
  if (days.length === 0) throw new RangeError('affectedRange needs at least one touched day')
  const sorted = [...new Set(days)].sort()
  const first = sorted[0]!
  const last = sorted[sorted.length - 1]!
  const daily = new Set<string>()
  for (const d of sorted) for (let i = -1; i <= 1; i++) daily.add(addDays(d, i))
  return { first, daily, derivedFrom: derivedRange(first, windowDays).from, derivedTo: derivedRange(last, windowDays).to }
}
