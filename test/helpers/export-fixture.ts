import { readFileSync } from 'node:fs'
import type { IdentifiedSample } from '../../processors/insights/compute.ts'
import type { Sample, SleepStage } from '../../streams/schemas.ts'

// Test-only: the <Record …/> elements of an Apple Health export.xml as canonical samples (HRV SDNN and sleep only).

const SLEEP: ReadonlyMap<string, SleepStage> = new Map([
  ['HKCategoryValueSleepAnalysisInBed', 'in_bed'],
  ['HKCategoryValueSleepAnalysisAsleepUnspecified', 'asleep'],
  ['HKCategoryValueSleepAnalysisAsleep', 'asleep'],
  ['HKCategoryValueSleepAnalysisAwake', 'awake'],
  ['HKCategoryValueSleepAnalysisAsleepCore', 'core'],
  ['HKCategoryValueSleepAnalysisAsleepDeep', 'deep'],
  ['HKCategoryValueSleepAnalysisAsleepREM', 'rem'],
])

/** `2026-03-01 02:14:00 -0800` → the UTC instant (ms) and the offset (minutes). */
export function exportDate(text: string): { ms: number; utcOffsetMinutes: number } {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/.exec(text)
  if (!m) throw new Error(`not an export date: ${text}`)
  const [, y, mo, d, h, mi, s, sign, oh, om] = m.map(String) as [string, ...string[]]
  const utcOffsetMinutes = (sign === '-' ? -1 : 1) * (Number(oh) * 60 + Number(om))
  const local = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s))
  return { ms: local - utcOffsetMinutes * 60_000, utcOffsetMinutes }
}

const unescape = (v: string) =>
  v
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&')

/** Every <Record> element's attributes, in document order. */
export function exportRecords(xml: string): Array<Record<string, string>> {
  const out: Array<Record<string, string>> = []
  for (const m of xml.matchAll(/<Record\s([^>]*?)\/?>/g)) {
    const attrs: Record<string, string> = {}
    for (const a of m[1]!.matchAll(/(\w+)="([^"]*)"/g)) attrs[a[1]!] = unescape(a[2]!)
    out.push(attrs)
  }
  return out
}

/** The HRV SDNN (ms) and sleep records of an export as canonical samples; `id` is the record's index. */
export function exportSamples(xml: string, userId = 'fixture'): IdentifiedSample[] {
  const out: IdentifiedSample[] = []
  exportRecords(xml).forEach((r, index) => {
    const isHrv = r.type === 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN'
    const stage = r.type === 'HKCategoryTypeIdentifierSleepAnalysis' ? SLEEP.get(r.value ?? '') : undefined
    if (!isHrv && stage === undefined) return
    if (isHrv && r.unit !== 'ms') throw new Error(`HRV record ${index} in ${r.unit}`)
    const start = exportDate(r.startDate ?? '')
    const end = exportDate(r.endDate ?? '')
    const sample: Sample = {
      userId,
      metric: isHrv ? 'hrv_sdnn' : 'sleep_stage',
      start: new Date(start.ms).toISOString(),
      end: new Date(end.ms).toISOString(),
      utcOffsetMinutes: start.utcOffsetMinutes,
      ...(isHrv ? { value: Number(r.value) } : { stage }),
      source: { name: r.sourceName ?? '' },
      ingestId: 'fixture',
    }
    out.push({ id: String(index), sample })
  })
  return out
}

export function readExportSamples(path: string): IdentifiedSample[] {
  return exportSamples(readFileSync(path, 'utf8'))
}
