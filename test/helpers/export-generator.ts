import { createWriteStream } from 'node:fs'
import { once } from 'node:events'
import { prng } from '../../cli/demo-data.ts'

// Test and bench helper: a large, realistic Apple Health export.xml, written as a stream (never held whole).
// The shape the Health app writes (declaration, internal DTD, device strings, HRV metadata lists, workouts,
// activity summaries) with its usual mix: far more steps, energy and heart rate than sleep or HRV.
// Deterministic: the same options give the same bytes.

export interface GeneratedExport {
  bytes: number
  /** <Record> elements by type */
  records: Record<string, number>
  /** other elements under <HealthData>, by name */
  otherElements: Record<string, number>
  days: number
}

export interface GenerateOptions {
  /** stop after the day that brings the file past this size */
  targetBytes: number
  /** the first day (local, UTC−08:00 / −07:00 in summer); every date stays in the past */
  firstDay?: string
  seed?: number
  /** beats in each HRV record's list: 4 (the default) writes the short list of the first generator; more write a
   * real one (≈ 1 s apart from the record's start, 12-hour clock, two decimals), which normalize derives RMSSD from */
  beatsPerHrv?: number
}

/** `1:02:03.45 AM` of a local time in ms since midnight. */
function clock(ms: number): string {
  const cs = Math.round(ms / 10)
  const h24 = Math.floor(cs / 360_000) % 24
  const h = h24 % 12 === 0 ? 12 : h24 % 12
  return `${h}:${pad(Math.floor(cs / 6000) % 60)}:${pad(Math.floor(cs / 100) % 60)}.${pad(cs % 100)} ${h24 < 12 ? 'AM' : 'PM'}`
}

const HEADER = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE HealthData [
<!-- HealthKit Export Version: 13 -->
<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary|ClinicalRecord|Audiogram|VisionPrescription)*)>
<!ATTLIST HealthData
  locale CDATA #REQUIRED
>
<!ELEMENT ExportDate EMPTY>
<!ATTLIST ExportDate
  value CDATA #REQUIRED
>
<!ELEMENT Record ((MetadataEntry|HeartRateVariabilityMetadataList)*)>
<!ATTLIST Record
  type          CDATA #REQUIRED
  unit          CDATA #IMPLIED
  value         CDATA #IMPLIED
  sourceName    CDATA #REQUIRED
  sourceVersion CDATA #IMPLIED
  device        CDATA #IMPLIED
  creationDate  CDATA #IMPLIED
  startDate     CDATA #REQUIRED
  endDate       CDATA #REQUIRED
>
]>
<HealthData locale="en_US">
 <ExportDate value="2026-04-01 09:00:00 -0800"/>
 <Me HKCharacteristicTypeIdentifierDateOfBirth="" HKCharacteristicTypeIdentifierBiologicalSex="HKBiologicalSexNotSet" HKCharacteristicTypeIdentifierBloodType="HKBloodTypeNotSet" HKCharacteristicTypeIdentifierFitzpatrickSkinType="HKFitzpatrickSkinTypeNotSet" HKCharacteristicTypeIdentifierCardioFitnessMedicationsUse="None"/>
`
const FOOTER = '</HealthData>\n'

const WATCH =
  'sourceName="Apple Watch de Ana" sourceVersion="10.3" device="&lt;&lt;HKDevice: 0x3030a8d20&gt;, name:Apple Watch, manufacturer:Apple Inc., model:Watch, hardware:Watch6,2, software:10.3&gt;"'
const PHONE =
  'sourceName="iPhone de Ana" sourceVersion="17.3" device="&lt;&lt;HKDevice: 0x3030a8e40&gt;, name:iPhone, manufacturer:Apple Inc., model:iPhone, hardware:iPhone14,2, software:17.3&gt;"'
const STAGES = [
  'HKCategoryValueSleepAnalysisAsleepCore',
  'HKCategoryValueSleepAnalysisAsleepDeep',
  'HKCategoryValueSleepAnalysisAsleepCore',
  'HKCategoryValueSleepAnalysisAsleepREM',
  'HKCategoryValueSleepAnalysisAwake',
]

const pad = (n: number) => String(n).padStart(2, '0')

/** `2026-03-01 02:14:00 -0800` of a local minute since the day's midnight (may run past 24 h). */
function exportDate(dayMs: number, minute: number, offset: string): string {
  const d = new Date(dayMs + Math.round(minute * 60_000))
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} ${offset}`
}

/** The records of one local day, as text; counts added to `g`. */
function day(dayMs: number, random: () => number, g: GeneratedExport, beatsPerHrv = 4): string {
  const month = new Date(dayMs).getUTCMonth()
  const offset = month >= 3 && month <= 9 ? '-0700' : '-0800'
  const at = (minute: number) => exportDate(dayMs, minute, offset)
  const out: string[] = []
  const rec = (type: string, source: string, unit: string | undefined, start: number, end: number, value: string, children = '') => {
    g.records[type] = (g.records[type] ?? 0) + 1
    const attrs = `type="${type}" ${source}${unit ? ` unit="${unit}"` : ''} creationDate="${at(end + 3)}" startDate="${at(start)}" endDate="${at(end)}" value="${value}"`
    out.push(children ? ` <Record ${attrs}>\n${children} </Record>\n` : ` <Record ${attrs}/>\n`)
  }
  // the night that ends this morning: the iPhone's in-bed span, the Watch's stages with gaps
  const bed = -60 - random() * 60
  const wake = 390 + random() * 60
  rec('HKCategoryTypeIdentifierSleepAnalysis', PHONE, undefined, bed, wake, 'HKCategoryValueSleepAnalysisInBed')
  for (let m = bed + 10; m < wake - 10;) {
    const len = 10 + random() * 40
    rec('HKCategoryTypeIdentifierSleepAnalysis', WATCH, undefined, m, Math.min(m + len, wake - 5), STAGES[Math.floor(random() * STAGES.length)]!)
    m += len + (random() < 0.1 ? 5 : 0)
  }
  // HRV SDNN at night, with the beat-to-beat list the Watch writes
  for (let i = 0; i < 4; i++) {
    const m = 60 + i * 80 + random() * 30
    let t = m * 60_000
    const beats =
      beatsPerHrv === 4
        ? Array.from({ length: 4 }, (_, k) => `   <InstantaneousBeatsPerMinute bpm="${55 + Math.floor(random() * 10)}" time="1:0${k}:0${k}.45 AM"/>\n`).join('')
        : Array.from({ length: beatsPerHrv }, (_, k) => {
            const rr = 900 + random() * 200
            if (k > 0) t += rr
            return `   <InstantaneousBeatsPerMinute bpm="${Math.round(60_000 / rr)}" time="${clock(t)}"/>\n`
          }).join('')
    rec(
      'HKQuantityTypeIdentifierHeartRateVariabilitySDNN',
      WATCH,
      'ms',
      m,
      m + 1,
      (25 + random() * 60).toFixed(4),
      `  <HeartRateVariabilityMetadataList>\n${beats}  </HeartRateVariabilityMetadataList>\n`,
    )
  }
  rec('HKQuantityTypeIdentifierRestingHeartRate', WATCH, 'count/min', 420, 1380, String(50 + Math.floor(random() * 12)))
  // the day: heart rate every few minutes, steps, distance and energy in many small records
  for (let m = 420; m < 1380; m += 4 + random() * 4) {
    rec(
      'HKQuantityTypeIdentifierHeartRate',
      WATCH,
      'count/min',
      m,
      m,
      String(60 + Math.floor(random() * 70)),
      '  <MetadataEntry key="HKMetadataKeyHeartRateMotionContext" value="1"/>\n',
    )
  }
  for (let m = 420; m < 1380; m += 6 + random() * 10) {
    const len = 2 + random() * 5
    rec('HKQuantityTypeIdentifierStepCount', random() < 0.5 ? PHONE : WATCH, 'count', m, m + len, String(Math.floor(random() * 400)))
    rec('HKQuantityTypeIdentifierDistanceWalkingRunning', PHONE, 'km', m, m + len, (random() * 0.3).toFixed(6))
    rec('HKQuantityTypeIdentifierActiveEnergyBurned', WATCH, 'kcal', m, m + len, (random() * 20).toFixed(3))
  }
  for (let m = 0; m < 1440; m += 30) rec('HKQuantityTypeIdentifierBasalEnergyBurned', WATCH, 'kcal', m, m + 30, (30 + random() * 5).toFixed(3))
  if (random() < 0.3) {
    g.otherElements.Workout = (g.otherElements.Workout ?? 0) + 1
    out.push(
      ` <Workout workoutActivityType="HKWorkoutActivityTypeRunning" duration="31.5" durationUnit="min" ${WATCH} creationDate="${at(1100)}" startDate="${at(1060)}" endDate="${at(1091)}">\n  <MetadataEntry key="HKTimeZone" value="America/Los_Angeles"/>\n  <WorkoutStatistics type="HKQuantityTypeIdentifierActiveEnergyBurned" startDate="${at(1060)}" endDate="${at(1091)}" sum="312.5" unit="kcal"/>\n </Workout>\n`,
    )
  }
  g.otherElements.ActivitySummary = (g.otherElements.ActivitySummary ?? 0) + 1
  const date = new Date(dayMs).toISOString().slice(0, 10)
  out.push(
    ` <ActivitySummary dateComponents="${date}" activeEnergyBurned="590.252" activeEnergyBurnedGoal="630" activeEnergyBurnedUnit="kcal" appleExerciseTime="68" appleExerciseTimeGoal="30" appleStandHours="13" appleStandHoursGoal="12"/>\n`,
  )
  return out.join('')
}

/** Writes a generated export to `path`; resolves with what it holds. */
export async function writeExport(path: string, opts: GenerateOptions): Promise<GeneratedExport> {
  const random = prng(opts.seed ?? 42)
  const g: GeneratedExport = { bytes: 0, records: {}, otherElements: { ExportDate: 1, Me: 1 }, days: 0 }
  const file = createWriteStream(path)
  const write = async (text: string) => {
    g.bytes += Buffer.byteLength(text)
    if (!file.write(text)) await once(file, 'drain')
  }
  await write(HEADER)
  let dayMs = Date.parse(`${opts.firstDay ?? '2019-01-01'}T00:00:00Z`)
  const lastDayMs = Date.now() - 2 * 86_400_000
  while (g.bytes < opts.targetBytes - FOOTER.length && dayMs < lastDayMs) {
    await write(day(dayMs, random, g, opts.beatsPerHrv))
    g.days++
    dayMs += 86_400_000
  }
  await write(FOOTER)
  file.end()
  await once(file, 'close')
  return g
}
