// Local dates ('YYYY-MM-DD') and instants (epoch ms) of the insight modules; no clock anywhere.

const MINUTE_MS = 60_000
const DAY_MS = 86_400_000

// Days are counted from 1970-01-01 with integer arithmetic (H. Hinnant's civil-date algorithms): the
// insights handle a few hundred thousand day strings a second, and Date objects were most of that cost.

/** The day number (days since 1970-01-01) of 'YYYY-MM-DD'. */
export function dayNumber(day: string): number {
  const y0 = (day.charCodeAt(0) - 48) * 1000 + (day.charCodeAt(1) - 48) * 100 + (day.charCodeAt(2) - 48) * 10 + (day.charCodeAt(3) - 48)
  const m = (day.charCodeAt(5) - 48) * 10 + (day.charCodeAt(6) - 48)
  const d = (day.charCodeAt(8) - 48) * 10 + (day.charCodeAt(9) - 48)
  const y = m <= 2 ? y0 - 1 : y0
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146_097 + doe - 719_468
}

const two = (n: number) => (n < 10 ? `0${n}` : String(n))

/** 'YYYY-MM-DD' of a day number (years 0–9999). */
export function dayString(n: number): string {
  const z = n + 719_468
  const era = Math.floor(z / 146_097)
  const doe = z - era * 146_097
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365)
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100))
  const mp = Math.floor((5 * doy + 2) / 153)
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1
  const m = mp < 10 ? mp + 3 : mp - 9
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0)
  return `${String(y).padStart(4, '0')}-${two(m)}-${two(d)}`
}

/** spec/insights.md: a local date is the date of the UTC instant plus the sample's own offset. */
export function localDate(ms: number, utcOffsetMinutes: number): string {
  return dayString(Math.floor((ms + utcOffsetMinutes * MINUTE_MS) / DAY_MS))
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
  const iso = new Date(ms).toISOString()
  const frac = iso.slice(20, 23)
  return `${iso.slice(0, 19)}${frac === '000' ? '' : `.${frac}000`}+00:00`
}

export const minutes = (ms: number): number => ms / MINUTE_MS
