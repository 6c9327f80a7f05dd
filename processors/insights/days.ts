import { civilDayNumber, dayString, daysInMonth, instantMs, isoInstant, localDay } from '../../streams/instants.ts'

// Local dates ('YYYY-MM-DD') and instants (epoch ms) of the insight modules; no clock anywhere.

const MINUTE_MS = 60_000

// The calendar arithmetic and the canonical instants are streams/instants.ts's (normalize and the samples-writer
// use them too); re-exported here for the insight modules.
export { civilDayNumber, dayString, daysInMonth, instantMs }

const digits = (s: string, from: number, n: number) => {
  let v = 0
  for (let i = from; i < from + n; i++) v = v * 10 + (s.charCodeAt(i) - 48)
  return v
}

/** The day number (days since 1970-01-01) of 'YYYY-MM-DD'. */
export function dayNumber(day: string): number {
  return civilDayNumber(digits(day, 0, 4), digits(day, 5, 2), digits(day, 8, 2))
}

/** docs/insights.md §0: a local date is the date of the UTC instant plus the sample's own offset. */
export function localDate(ms: number, utcOffsetMinutes: number): string {
  return dayString(localDay(ms, utcOffsetMinutes))
}

export function addDays(day: string, n: number): string {
  return dayString(dayNumber(day) + n)
}

/** Every day from `from` to `to`, both included (empty when `to` is before `from`). */
export function daysBetween(from: string, to: string): string[] {
  const out: string[] = []
  for (let d = from; d <= to; d = addDays(d, 1)) out.push(d)
  return out
}

/** An instant as the rows write it: ISO UTC with `+00:00`, seconds always, fractions only when present (Python's isoformat). */
export function isoUtc(ms: number): string {
  const iso = isoInstant(ms)
  const frac = iso.slice(20, 23)
  return `${iso.slice(0, 19)}${frac === '000' ? '' : `.${frac}000`}+00:00`
}

export const minutes = (ms: number): number => ms / MINUTE_MS
