import { describe, expect, it } from 'vitest'
import { flattenStages, groupEpisodes, nightDate, sleepEpisodes, sleepNights } from '../../../processors/insights/sleep.ts'
import { ms, stage } from './build.ts'

const T = (hm: string, day = '2026-03-01') => `${day}T${hm}:00Z`

describe('flattenStages (docs/insights.md §1.1)', () => {
  it('gives each piece of an overlap of three samples the stage of highest rank', () => {
    // core 01:00–03:00, rem 01:30–02:30, deep 02:00–02:15 (deep 6 > rem 5 > core 4):
    // 01:00–01:30 core | 01:30–02:00 rem | 02:00–02:15 deep | 02:15–02:30 rem | 02:30–03:00 core
    const segs = flattenStages([stage('core', T('01:00'), T('03:00')), stage('rem', T('01:30'), T('02:30')), stage('deep', T('02:00'), T('02:15'))])
    expect(segs).toEqual([
      { start: ms(T('01:00')), end: ms(T('01:30')), stage: 'core' },
      { start: ms(T('01:30')), end: ms(T('02:00')), stage: 'rem' },
      { start: ms(T('02:00')), end: ms(T('02:15')), stage: 'deep' },
      { start: ms(T('02:15')), end: ms(T('02:30')), stage: 'rem' },
      { start: ms(T('02:30')), end: ms(T('03:00')), stage: 'core' },
    ])
  })

  it('lets any source win: an iPhone in_bed under Apple Watch stages only shows where the watch says nothing', () => {
    // in_bed 00:00–04:00 (iPhone), awake 01:00–01:10, asleep 01:10–02:00: in_bed 60 + awake 10 + asleep 50 + in_bed 120
    const segs = flattenStages([stage('in_bed', T('00:00'), T('04:00'), 0, 'iPhone'), stage('awake', T('01:00'), T('01:10')), stage('asleep', T('01:10'), T('02:00'))])
    expect(segs.map((s) => [s.stage, (s.end - s.start) / 60_000])).toEqual([
      ['in_bed', 60],
      ['awake', 10],
      ['asleep', 50],
      ['in_bed', 120],
    ])
  })

  it('leaves uncovered time out and ignores samples of no duration', () => {
    const segs = flattenStages([stage('core', T('01:00'), T('02:00')), stage('deep', T('01:30'), T('01:30')), stage('rem', T('03:00'), T('03:30'))])
    expect(segs.map((s) => s.stage)).toEqual(['core', 'rem'])
  })
})

describe('episodes (§1.2)', () => {
  it('joins a segment that starts 60 minutes after the episode ends', () => {
    // core 00:00–02:00, core 03:00–05:00: the gap is 60 min → one episode 00:00–05:00
    const eps = groupEpisodes(flattenStages([stage('core', T('00:00'), T('02:00')), stage('core', T('03:00'), T('05:00'))]))
    expect(eps.map((e) => [e.start, e.end])).toEqual([[ms(T('00:00')), ms(T('05:00'))]])
  })

  it('splits at a gap of 61 minutes', () => {
    const eps = groupEpisodes(flattenStages([stage('core', T('00:00'), T('02:00')), stage('core', T('03:01'), T('05:00'))]))
    expect(eps.map((e) => [e.start, e.end])).toEqual([
      [ms(T('00:00')), ms(T('02:00'))],
      [ms(T('03:01')), ms(T('05:00'))],
    ])
  })

  it('takes the offset of the sample that ends last, the larger on a tie', () => {
    // both end at 07:30Z: −480 → 23:30 on 02-28, −420 → 00:30 on 03-01; the tie goes to −420
    const [e] = sleepEpisodes([stage('core', T('06:00'), T('07:30'), -480), stage('in_bed', T('05:00'), T('07:30'), -420), stage('rem', T('04:00'), T('07:00'), -300)])
    expect(e?.utcOffsetMinutes).toBe(-420)
    expect(nightDate(e!)).toBe('2026-03-01')
  })

  it('dates a night by the local date of its end', () => {
    // 2026-03-01 07:30Z at −480 is 23:30 on 02-28
    const [e] = sleepEpisodes([stage('core', T('01:00'), T('07:30'), -480)])
    expect(nightDate(e!)).toBe('2026-02-28')
  })
})

describe('nights (§1.3–1.5)', () => {
  it('adds up the figures of the main episode, not counting gaps as in bed', () => {
    // in_bed 22:00–22:30 | core 22:30–00:30 (120) | gap 30 min | deep 01:00–02:00 (60) | rem 02:00–02:45 (45)
    // | awake 02:45–03:00 (15) | asleep 03:00–03:30 (30) | in_bed 03:30–04:00
    const night = sleepNights([
      stage('in_bed', T('22:00', '2026-02-28'), T('22:30', '2026-02-28')),
      stage('core', T('22:30', '2026-02-28'), T('00:30')),
      stage('deep', T('01:00'), T('02:00')),
      stage('rem', T('02:00'), T('02:45')),
      stage('awake', T('02:45'), T('03:00')),
      stage('asleep', T('03:00'), T('03:30')),
      stage('in_bed', T('03:30'), T('04:00')),
    ])
    // asleep 120 + 60 + 45 + 30 = 255; in bed 30 + 120 + 60 + 45 + 15 + 30 + 30 = 330 (the 30-min gap is not counted)
    expect(night).toHaveLength(1)
    expect(night[0]?.row).toEqual({
      day: '2026-03-01',
      total_sleep_min: 255,
      in_bed_min: 330,
      deep_min: 60,
      rem_min: 45,
      core_min: 120,
      asleep_unspecified_min: 30,
      awake_min: 15,
      nap_min: 0,
      efficiency: 255 / 330,
      episode_start: '2026-02-28T22:00:00+00:00',
      episode_end: '2026-03-01T04:00:00+00:00',
      sleep_onset: '2026-02-28T22:30:00+00:00',
      wake_time: '2026-03-01T03:30:00+00:00',
      valid: true,
    })
  })

  it('makes the episode with more asleep time the main one and the other a nap (61-minute gap)', () => {
    // core 00:00–02:00 (120) | gap 61 | core 03:01–05:00 (119): main 00:00–02:00, nap 119
    const [n] = sleepNights([stage('core', T('00:00'), T('02:00')), stage('core', T('03:01'), T('05:00'))])
    expect([n?.row.total_sleep_min, n?.row.nap_min, n?.row.episode_end]).toEqual([120, 119, '2026-03-01T02:00:00+00:00'])
  })

  it('counts an afternoon nap of the same date in nap_min', () => {
    // night core 00:00–07:00 (420), nap core 14:00–14:20 + awake 14:20–14:30 (20 asleep)
    const [n] = sleepNights([stage('core', T('00:00'), T('07:00')), stage('core', T('14:00'), T('14:20')), stage('awake', T('14:20'), T('14:30'))])
    expect([n?.row.total_sleep_min, n?.row.nap_min, n?.row.awake_min]).toEqual([420, 20, 0])
  })

  it('breaks a tie of asleep time towards the episode that ends later', () => {
    const [n] = sleepNights([stage('core', T('00:00'), T('03:00')), stage('deep', T('10:00'), T('13:00'))])
    expect([n?.row.deep_min, n?.row.nap_min]).toEqual([180, 180])
  })

  it('writes no row for a date whose episodes hold no asleep time', () => {
    expect(sleepNights([stage('in_bed', T('00:00'), T('07:00')), stage('awake', T('03:00'), T('03:10'))])).toEqual([])
  })

  it('calls a night valid from 180 minutes of sleep', () => {
    expect(sleepNights([stage('core', T('00:00'), T('03:00'))])[0]?.row.valid).toBe(true)
    // 00:00–02:59:30 is 179.5 minutes
    expect(sleepNights([stage('core', T('00:00'), '2026-03-01T02:59:30Z')])[0]?.row).toMatchObject({
      total_sleep_min: 179.5,
      valid: false,
      wake_time: '2026-03-01T02:59:30+00:00',
    })
  })
})
