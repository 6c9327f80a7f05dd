import { describe, expect, it } from 'vitest'
import { monthOf, partitionName, partitionSql } from '../../../schema/partitions.ts'
import { samplesStorageSql } from '../../../schema/timescale.ts'

describe('samplesStorageSql', () => {
  it('makes samples a 7-day-chunk hypertable on start_ts when TimescaleDB is there', () => {
    const all = samplesStorageSql({ schema: 'hph', timescale: true }).join(';\n')
    expect(all).toContain(`create_hypertable('hph.samples', 'start_ts', chunk_time_interval => interval '7 days', if_not_exists => true)`)
    expect(all).toContain('PRIMARY KEY (sample_id, start_ts)'.toLowerCase())
    expect(all).not.toContain('PARTITION BY')
  })

  it('range-partitions samples by start_ts on plain PostgreSQL', () => {
    const [create, ...rest] = samplesStorageSql({ schema: 'hph', timescale: false })
    expect(create).toMatch(/^CREATE TABLE "hph"\.samples \(/)
    expect(create).toContain('primary key (sample_id, start_ts)')
    expect(create).toMatch(/\) PARTITION BY RANGE \(start_ts\)$/)
    expect(rest.join('\n')).not.toContain('create_hypertable')
  })

  it('indexes one user over time in both branches', () => {
    for (const timescale of [true, false]) {
      expect(samplesStorageSql({ schema: 'x1', timescale })).toContain('CREATE INDEX IF NOT EXISTS samples_user_start_idx ON "x1".samples (user_id, start_ts)')
    }
  })

  it('takes a chunk interval but nothing that is not one', () => {
    expect(samplesStorageSql({ schema: 'hph', timescale: true, chunkInterval: '1 day' }).join()).toContain(`interval '1 day'`)
    expect(() => samplesStorageSql({ schema: 'hph', timescale: true, chunkInterval: "1 day'); drop table x; --" })).toThrow()
  })

  it('refuses a schema that is not a plain identifier', () => {
    expect(() => samplesStorageSql({ schema: 'hph"; drop', timescale: false })).toThrow(/identifier/)
    expect(() => samplesStorageSql({ schema: 'Hph', timescale: false })).toThrow(/identifier/)
  })
})

describe('monthly partitions', () => {
  it('finds the UTC month of an instant, whatever its offset', () => {
    expect(monthOf('2026-03-31T23:30:00-02:00').toISOString()).toBe('2026-04-01T00:00:00.000Z')
    expect(monthOf('2026-04-01T00:30:00+02:00').toISOString()).toBe('2026-03-01T00:00:00.000Z')
    expect(monthOf(new Date('2026-02-28T12:00:00Z')).toISOString()).toBe('2026-02-01T00:00:00.000Z')
    expect(() => monthOf('yesterday')).toThrow(RangeError)
  })

  it('names a partition samples_pYYYYMM', () => {
    expect(partitionName('2019-03-15T08:00:00Z')).toBe('samples_p201903')
    expect(partitionName('2026-12-31T23:59:59.999Z')).toBe('samples_p202612')
  })

  it('bounds a month from its first instant to the next month, across a year end', () => {
    expect(partitionSql('hph', new Date('2026-12-01T00:00:00Z'))).toBe(
      `CREATE TABLE IF NOT EXISTS "hph".samples_p202612 PARTITION OF "hph".samples FOR VALUES FROM ('2026-12-01T00:00:00Z') TO ('2027-01-01T00:00:00Z')`,
    )
    expect(partitionSql('hph', '2027-01-17T10:00:00Z')).toContain(`samples_p202701 PARTITION OF "hph".samples FOR VALUES FROM ('2027-01-01T00:00:00Z') TO ('2027-02-01T00:00:00Z')`)
    expect(partitionSql('hph', '2024-02-10T00:00:00Z')).toContain(`FROM ('2024-02-01T00:00:00Z') TO ('2024-03-01T00:00:00Z')`)
  })
})
