import { digits as checkedDigits } from './plain.ts'

// Calendar days and the canonical instants of samples (`YYYY-MM-DDTHH:MM:SS.mmmZ`, what toISOString writes), in
// integer arithmetic: normalize writes two instants a sample, the samples-writer and the insights read them back,
// and Date objects (toISOString, Date.parse) were a large part of that work. Days are counted from 1970-01-01
// with H. Hinnant's civil-date algorithms.

const DAY_MS = 86_400_000

/** The day number (days since 1970-01-01) of a proleptic Gregorian date; month 1–12 (no range checks). */
export function civilDayNumber(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146_097 + doe - 719_468
}

/** Days in a month of a proleptic Gregorian year; month 1–12. */
export function daysInMonth(year: number, month: number): number {
  if (month !== 2) return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28
}

const two = (n: number) => (n < 10 ? `0${n}` : String(n))
const three = (n: number) => (n < 10 ? `00${n}` : n < 100 ? `0${n}` : String(n))

/** docs/insights.md §0: the local day number of a UTC instant (epoch ms) seen at an offset. */
export function localDay(ms: number, utcOffsetMinutes: number): number {
  return Math.floor((ms + utcOffsetMinutes * 60_000) / DAY_MS)
}

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

export type DateAndTime = readonly [year: number, month: number, day: number, hour: number, minute: number, second: number]

/** `YYYY-MM-DD?HH:MM:SS` at the start of `s` with `sep` as `?` (its six numbers, unchecked ranges), or undefined. */
export function dateAndTime(s: string, sep: number): DateAndTime | undefined {
  if (s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || s.charCodeAt(10) !== sep || s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) return undefined
  const year = checkedDigits(s, 0, 4)
  const month = checkedDigits(s, 5, 2)
  const day = checkedDigits(s, 8, 2)
  const hour = checkedDigits(s, 11, 2)
  const minute = checkedDigits(s, 14, 2)
  const second = checkedDigits(s, 17, 2)
  return (year | month | day | hour | minute | second) < 0 ? undefined : [year, month, day, hour, minute, second]
}

/**
 * Epoch ms of a sample's instant, exactly as `Date.parse` gives it. The canonical form is read digit by digit;
 * anything else — another shape, or a date or time out of its plain range (Feb 30, 24:00, which `Date.parse`
 * reads its own way) — is left to `Date.parse`.
 */
export function instantMs(s: string): number {
  if (s.length !== 24 || s.charCodeAt(19) !== 46 || s.charCodeAt(23) !== 90) return Date.parse(s)
  const dt = dateAndTime(s, 84)
  const millis = checkedDigits(s, 20, 3)
  if (!dt || millis < 0) return Date.parse(s)
  const [year, month, day, hour, minute, second] = dt
  if (!(month >= 1 && month <= 12) || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) return Date.parse(s)
  return civilDayNumber(year, month, day) * DAY_MS + ((hour * 60 + minute) * 60 + second) * 1000 + millis
}

/** The first and last millisecond of years 0–9999, the instants `isoInstant` writes without a Date. */
const FIRST_MS = civilDayNumber(0, 1, 1) * DAY_MS
const LAST_MS = civilDayNumber(10_000, 1, 1) * DAY_MS - 1

/** `new Date(ms).toISOString()`, written from the day number for a whole millisecond of years 0–9999. */
export function isoInstant(ms: number): string {
  if (!(Number.isInteger(ms) && ms >= FIRST_MS && ms <= LAST_MS)) return new Date(ms).toISOString()
  const day = Math.floor(ms / DAY_MS)
  const t = ms - day * DAY_MS
  const frac = t % 1000
  const s = (t - frac) / 1000
  return `${dayString(day)}T${two(Math.floor(s / 3600))}:${two(Math.floor(s / 60) % 60)}:${two(s % 60)}.${three(frac)}Z`
}
