// A deterministic, realistic HealthKit-shaped data set: nights of Apple Watch sleep stages over
// iPhone in-bed samples, HRV SDNN readings at night and a daily resting heart rate; optionally a ring, and the
// watch's beat-to-beat series (HealthKit's HKHeartbeatSeriesSample, from which normalize derives RMSSD).

export interface DemoSample {
  uuid?: string
  type: string
  /** every type but a heartbeat series has one */
  value?: number | string
  unit?: string
  /** a heartbeat series' beats: seconds since startDate */
  beats?: Array<{ t: number; precededByGap?: boolean }>
  startDate: string
  endDate: string
  sourceName?: string
  sourceBundleId?: string
  device?: string
}

export interface DemoBatch {
  batchId: string
  source: { name: string; bundleId: string; device: string }
  samples: DemoSample[]
}

/** mulberry32: a tiny seeded PRNG, so the demo data is the same on every machine. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const pad = (n: number) => String(Math.abs(n)).padStart(2, '0')

/** ISO 8601 local time with its offset, as HealthKit clients send it: 2026-03-01T02:14:00-08:00 */
export function isoAt(utcMs: number, offsetMin: number): string {
  const local = new Date(utcMs + offsetMin * 60_000).toISOString().slice(0, 19)
  const sign = offsetMin < 0 ? '-' : '+'
  return `${local}${sign}${pad(Math.trunc(offsetMin / 60))}:${pad(offsetMin % 60)}`
}

const WATCH = { name: 'Apple Watch', bundleId: 'com.apple.health.5C8D', device: 'Watch6,2' }
const PHONE = { sourceName: 'iPhone', sourceBundleId: 'com.apple.health.1A2B' }
const STAGE_CYCLE = [
  'HKCategoryValueSleepAnalysisAsleepCore',
  'HKCategoryValueSleepAnalysisAsleepDeep',
  'HKCategoryValueSleepAnalysisAsleepCore',
  'HKCategoryValueSleepAnalysisAsleepREM',
]

export interface DemoOptions {
  userId: string
  nights: number
  /** the first night's local date, YYYY-MM-DD */
  firstNight: string
  offsetMin?: number
  seed?: number
  /** samples per posted batch */
  batchSize?: number
  /** a second wearable (a ring: its own sleep stages and RMSSD readings) on two nights of three */
  ring?: boolean
  /** the watch also sends a one-minute heartbeat series each night (≈ 60 beats) */
  beats?: boolean
}

/**
 * About a minute of beats around `meanRr` ms whose successive differences have an RMS of about `rmssd` ms (each
 * interval the mean plus uniform noise of half-width a: differences have a variance of 2·a²/3), with one
 * premature beat and its compensatory pause, which the derivation drops; times to the ms, as HealthKit gives them.
 */
export function demoBeats(rnd: () => number, meanRr: number, rmssd: number): Array<{ t: number }> {
  const a = rmssd * Math.sqrt(3 / 2)
  const beats = [{ t: 0 }]
  let at = 0
  const ectopic = 20 + Math.floor(rnd() * 30)
  for (let i = 1; at < 60_000; i++) {
    const rr = i === ectopic ? meanRr * 0.6 : i === ectopic + 1 ? meanRr * 1.4 : meanRr + (rnd() * 2 - 1) * a
    at += rr
    beats.push({ t: Math.round(at) / 1000 })
  }
  return beats
}

const RING = { sourceName: 'Oura Ring', sourceBundleId: 'com.ouraring.oura', device: 'Oura Ring Gen3' }
const RING_STAGES = ['HKCategoryValueSleepAnalysisAsleepCore', 'HKCategoryValueSleepAnalysisAsleepREM', 'HKCategoryValueSleepAnalysisAsleepDeep']

/** One user's nights as posted batches (≈ 30 samples a night). */
export function demoBatches(o: DemoOptions): DemoBatch[] {
  const rnd = prng(o.seed ?? 42)
  const offset = o.offsetMin ?? -480
  const samples: DemoSample[] = []
  const day0 = Date.parse(`${o.firstNight}T00:00:00Z`)
  const baseHrv = 40 + rnd() * 30
  for (let n = 0; n < o.nights; n++) {
    // bed time 22:00–23:30 local on night n, 6–8.5 h of sleep
    const bedLocal = day0 + n * 86_400_000 + (22 * 60 + Math.floor(rnd() * 90)) * 60_000
    const bed = bedLocal - offset * 60_000
    const sleepMin = 360 + Math.floor(rnd() * 150)
    const wake = bed + (sleepMin + 20) * 60_000
    samples.push({
      ...PHONE,
      type: 'HKCategoryTypeIdentifierSleepAnalysis',
      value: 'HKCategoryValueSleepAnalysisInBed',
      startDate: isoAt(bed, offset),
      endDate: isoAt(wake, offset),
    })
    let t = bed + (10 + Math.floor(rnd() * 15)) * 60_000
    let i = 0
    while (t < wake - 20 * 60_000) {
      const len = Math.min((20 + Math.floor(rnd() * 40)) * 60_000, wake - t)
      const stage = rnd() < 0.08 ? 'HKCategoryValueSleepAnalysisAwake' : (STAGE_CYCLE[i++ % STAGE_CYCLE.length] as string)
      samples.push({ type: 'HKCategoryTypeIdentifierSleepAnalysis', value: stage, startDate: isoAt(t, offset), endDate: isoAt(t + len, offset) })
      t += len
    }
    const hrvToday = baseHrv * Math.exp((rnd() - 0.5) * 0.5)
    for (let k = 0; k < 4; k++) {
      const at = bed + (60 + k * 90) * 60_000
      samples.push({
        type: 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN',
        value: Math.round(hrvToday * (0.85 + rnd() * 0.3) * 10) / 10,
        unit: 'ms',
        startDate: isoAt(at, offset),
        endDate: isoAt(at + 60_000, offset),
      })
    }
    if (o.beats) {
      // the watch's series at the first reading of the night: RMSSD a little above that night's SDNN
      const at = bed + 60 * 60_000
      const beats = demoBeats(rnd, 900 + rnd() * 200, hrvToday * 1.15)
      const end = at + Math.ceil(beats[beats.length - 1]!.t) * 1000
      samples.push({ type: 'HKDataTypeIdentifierHeartbeatSeries', beats, startDate: isoAt(at, offset), endDate: isoAt(end, offset) })
    }
    if (o.ring && n % 3 !== 2) {
      // the ring sees the same night a little differently: its stages overlap the watch's (the higher rank wins)
      for (let r = bed + 5 * 60_000; r < wake - 30 * 60_000; r += 45 * 60_000) {
        samples.push({
          ...RING,
          type: 'HKCategoryTypeIdentifierSleepAnalysis',
          value: RING_STAGES[Math.floor(rnd() * 3)] as string,
          startDate: isoAt(r, offset),
          endDate: isoAt(r + 40 * 60_000, offset),
        })
      }
      for (let k = 0; k < 3; k++) {
        const at = bed + (45 + k * 120) * 60_000
        samples.push({
          ...RING,
          type: 'HPHQuantityTypeIdentifierHeartRateVariabilityRMSSD',
          value: Math.round(hrvToday * 1.3 * (0.85 + rnd() * 0.3) * 10) / 10,
          unit: 'ms',
          startDate: isoAt(at, offset),
          endDate: isoAt(at + 60_000, offset),
        })
      }
    }
    samples.push({
      type: 'HKQuantityTypeIdentifierRestingHeartRate',
      value: Math.round(50 + rnd() * 15),
      unit: 'count/min',
      startDate: isoAt(wake + 3_600_000, offset),
      endDate: isoAt(wake + 3_600_000, offset),
    })
  }
  const size = o.batchSize ?? 100
  const batches: DemoBatch[] = []
  for (let i = 0; i < samples.length; i += size) {
    batches.push({ batchId: `demo-${o.userId}-${o.seed ?? 42}-${i / size}`, source: WATCH, samples: samples.slice(i, i + size) })
  }
  return batches
}
