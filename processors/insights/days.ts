// Local dates ('YYYY-MM-DD') and instants (epoch ms) of the insight modules; no clock anywhere.

const MINUTE_MS = 60_000
const DAY_MS = 86_400_000

/** spec/insights.md: a local date is the date of the UTC instant plus the sample's own offset. */
export function localDate(ms: number, utcOffsetMinutes: number): string {
  return new Date(ms + utcOffsetMinutes * MINUTE_MS).toISOString().slice(0, 10)
}

export function addDays(day: string, n: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS).toISOString().slice(0, 10)
}

/** Every day from `from` to `to`, both included (empty when `to` is before `from`). */
export function daysBetween(from: string, to: string): string[] {
  const out: string[] = []
  for (let d = from; d <= to; d = addDays(d, 1)) out.push(d)
  return out
}

/** An instant as the rows write it: ISO UTC with `+00:00`, seconds always, fractions only when present (Python's isoformat). */
export function isoUtc(ms: number): string {
  const iso = new Date(ms).toISOString()
  const frac = iso.slice(20, 23)
  return `${iso.slice(0, 19)}${frac === '000' ? '' : `.${frac}000`}+00:00`
}

export const minutes = (ms: number): number => ms / MINUTE_MS
