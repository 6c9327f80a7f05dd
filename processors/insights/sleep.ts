import type { InsightRow, SampleFacts, SleepStage } from '../../streams/schemas.ts'
import { instantMs, isoUtc, localDate, minutes } from './days.ts'
import { ASLEEP, DEFAULT_CONFIG, type InsightConfig } from './defaults.ts'

// docs/insights.md §1: stage samples → flattened segments → episodes → one night a local date.

export type SleepDailyRow = InsightRow<'sleep_daily'>

/** A piece of the time line with one stage; instants in epoch ms, `end` excluded. */
export interface Segment {
  start: number
  end: number
  stage: SleepStage
}

export interface EpisodeSpan {
  start: number
  end: number
  segments: Segment[]
}

export interface Episode extends EpisodeSpan {
  /** the offset of the sample that ends last inside it (ties: the larger) */
  utcOffsetMinutes: number
}

export interface Night {
  day: string
  main: Episode
  row: SleepDailyRow
}

interface Interval {
  start: number
  end: number
  stage: SleepStage
  utcOffsetMinutes: number
}

/** The sleep-stage samples as intervals; samples without a positive duration cover no time and are left out. */
function stageIntervals(samples: readonly SampleFacts[]): Interval[] {
  const out: Interval[] = []
  for (const s of samples) {
    if (s.metric !== 'sleep_stage' || s.stage === undefined) continue
    const start = instantMs(s.start)
    const end = instantMs(s.end)
    if (end > start) out.push({ start, end, stage: s.stage, utcOffsetMinutes: s.utcOffsetMinutes })
  }
  return out
}

/**
 * §1.1: cut the time line at every start and end; each covered piece takes the highest-ranked stage
 * covering it, whatever the source. Adjacent pieces of one stage come back as one segment.
 */
export function flattenStages(samples: readonly SampleFacts[], rank: InsightConfig['stageRank'] = DEFAULT_CONFIG.stageRank): Segment[] {
  return flattenIntervals(stageIntervals(samples), rank)
}

function flattenIntervals(intervals: readonly Interval[], rank: InsightConfig['stageRank']): Segment[] {
  const stages = (Object.keys(rank) as SleepStage[]).sort((a, b) => rank[b] - rank[a])
  const events: Array<{ t: number; stage: SleepStage; delta: 1 | -1 }> = []
  for (const i of intervals) events.push({ t: i.start, stage: i.stage, delta: 1 }, { t: i.end, stage: i.stage, delta: -1 })
  events.sort((a, b) => a.t - b.t)
  const covering = new Map<SleepStage, number>(stages.map((s) => [s, 0]))
  const out: Segment[] = []
  for (let k = 0; k < events.length;) {
    const t = events[k]!.t
    for (; k < events.length && events[k]!.t === t; k++) covering.set(events[k]!.stage, covering.get(events[k]!.stage)! + events[k]!.delta)
    const next = events[k]?.t
    const stage = stages.find((s) => covering.get(s)! > 0)
    if (next === undefined || stage === undefined) continue
    const last = out[out.length - 1]
    if (last && last.end === t && last.stage === stage) last.end = next
    else out.push({ start: t, end: next, stage })
  }
  return out
}

/** §1.2: a segment joins the current episode when it starts at most `gapMin` minutes after the episode's end. */
export function groupEpisodes(segments: readonly Segment[], gapMin: number = DEFAULT_CONFIG.episodeGapMin): EpisodeSpan[] {
  const gapMs = gapMin * 60_000
  const out: EpisodeSpan[] = []
  for (const seg of segments) {
    const current = out[out.length - 1]
    if (current && seg.start - current.end <= gapMs) {
      current.segments.push({ ...seg })
      current.end = Math.max(current.end, seg.end)
    } else out.push({ start: seg.start, end: seg.end, segments: [{ ...seg }] })
  }
  return out
}

/** §1.1–1.2: the user's sleep episodes in time order, each with its offset. */
export function sleepEpisodes(samples: readonly SampleFacts[], config: InsightConfig = DEFAULT_CONFIG): Episode[] {
  // a sample covers contiguous time, so it lies inside one episode; the one ending last ends at the episode's end
  const intervals = stageIntervals(samples)
  const offsetAtEnd = new Map<number, number>()
  for (const i of intervals) offsetAtEnd.set(i.end, Math.max(offsetAtEnd.get(i.end) ?? -Infinity, i.utcOffsetMinutes))
  return groupEpisodes(flattenIntervals(intervals, config.stageRank), config.episodeGapMin).map((e) => ({ ...e, utcOffsetMinutes: offsetAtEnd.get(e.end)! }))
}

/** §1.3: an episode belongs to the local date of its end, in its offset. */
export function nightDate(e: Episode): string {
  return localDate(e.end, e.utcOffsetMinutes)
}

/** Time (ms) in each stage of an episode. */
export function stageTimes(e: EpisodeSpan): Record<SleepStage, number> {
  const t: Record<SleepStage, number> = { in_bed: 0, awake: 0, asleep: 0, core: 0, deep: 0, rem: 0 }
  for (const s of e.segments) t[s.stage] += s.end - s.start
  return t
}

/** Asleep time (ms) of an episode. */
export function asleepTime(e: EpisodeSpan): number {
  const t = stageTimes(e)
  return t.deep + t.rem + t.core + t.asleep
}

/** §1.5: the figures of a main episode, with the asleep time of the date's other episodes as `nap_min`. */
export function sleepDailyRow(day: string, main: Episode, napMs: number, config: InsightConfig = DEFAULT_CONFIG): SleepDailyRow {
  const t = stageTimes(main)
  const asleep = main.segments.filter((s) => ASLEEP.has(s.stage))
  const inBed = main.segments.reduce((sum, s) => sum + (s.end - s.start), 0)
  const total = minutes(t.deep + t.rem + t.core + t.asleep)
  return {
    day,
    total_sleep_min: total,
    in_bed_min: minutes(inBed),
    deep_min: minutes(t.deep),
    rem_min: minutes(t.rem),
    core_min: minutes(t.core),
    asleep_unspecified_min: minutes(t.asleep),
    awake_min: minutes(t.awake),
    nap_min: minutes(napMs),
    efficiency: total / minutes(inBed),
    episode_start: isoUtc(main.start),
    episode_end: isoUtc(main.end),
    sleep_onset: isoUtc(asleep[0]!.start),
    wake_time: isoUtc(asleep[asleep.length - 1]!.end),
    valid: total >= config.validSleepMin,
  }
}

/**
 * §1.3–1.5: one night a local date whose episodes hold asleep time, in date order. The main episode
 * has the most asleep time (ties: the one that ends later); the others are naps.
 */
export function nightsOf(episodes: readonly Episode[], config: InsightConfig = DEFAULT_CONFIG): Night[] {
  const byDate = new Map<string, Episode[]>()
  // each episode's asleep time summed once, not at every comparison
  const asleep = new Map<Episode, number>()
  for (const e of episodes) {
    const day = nightDate(e)
    const list = byDate.get(day)
    if (list) list.push(e)
    else byDate.set(day, [e])
    asleep.set(e, asleepTime(e))
  }
  const out: Night[] = []
  for (const [day, list] of byDate) {
    let main = list[0]!
    for (const e of list) {
      const a = asleep.get(e)!
      const m = asleep.get(main)!
      if (a > m || (a === m && e.end > main.end)) main = e
    }
    if (asleep.get(main) === 0) continue
    const napMs = list.filter((e) => e !== main).reduce((sum, e) => sum + asleep.get(e)!, 0)
    out.push({ day, main, row: sleepDailyRow(day, main, napMs, config) })
  }
  return out.sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : 0))
}

/** §1: the user's nights from their samples (other metrics are ignored). */
export function sleepNights(samples: readonly SampleFacts[], config: InsightConfig = DEFAULT_CONFIG): Night[] {
  return nightsOf(sleepEpisodes(samples, config), config)
}
