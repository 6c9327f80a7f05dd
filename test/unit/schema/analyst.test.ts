import { describe, expect, it } from 'vitest'
import { ANALYST_VIEWS, analystViewsSql } from '../../../schema/migrations/0004_analyst_views.ts'
import { bucketFunctionSql } from '../../../schema/timescale.ts'

describe('bucketFunctionSql', () => {
  it('uses time_bucket from Monday 2000-01-03 when TimescaleDB is there', () => {
    const all = bucketFunctionSql({ schema: 'hph', role: 'hph_analyst', timescale: true }).join(';\n')
    expect(all).toContain(
      `CREATE OR REPLACE FUNCTION "hph".bucket(width interval, ts timestamptz) RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ select time_bucket(width, ts, timestamptz '2000-01-03 00:00:00+00') $$`,
    )
    expect(all).toContain(`RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ select time_bucket(width, day, date '2000-01-03') $$`)
    expect(all).not.toContain('date_bin')
  })

  it('uses date_bin from the same origin on plain PostgreSQL', () => {
    const all = bucketFunctionSql({ schema: 'hph', role: 'hph_analyst', timescale: false }).join(';\n')
    expect(all).toContain(`AS $$ select date_bin(width, ts, timestamptz '2000-01-03 00:00:00+00') $$`)
    expect(all).toContain(`AS $$ select date_bin(width, day::timestamp, timestamp '2000-01-03 00:00:00')::date $$`)
    expect(all).not.toContain('time_bucket')
  })

  it('lets the analyst role execute both, in the configured schema', () => {
    for (const timescale of [true, false]) {
      expect(bucketFunctionSql({ schema: 'x1', role: 'ro', timescale }).at(-1)).toBe(
        'GRANT EXECUTE ON FUNCTION "x1".bucket(interval, timestamptz), "x1".bucket(interval, date) TO "ro"',
      )
    }
  })

  it('refuses names that are not plain identifiers', () => {
    expect(() => bucketFunctionSql({ schema: 'hph"; drop', role: 'r', timescale: false })).toThrow(/identifier/)
    expect(() => bucketFunctionSql({ schema: 'hph', role: 'R', timescale: true })).toThrow(/identifier/)
  })
})

describe('analystViewsSql', () => {
  const statements = analystViewsSql({ schema: 'hph', role: 'hph_analyst' })

  it('creates, comments and grants each documented view', () => {
    for (const v of ANALYST_VIEWS) {
      expect(statements).toContain(`GRANT SELECT ON "hph".${v.name} TO "hph_analyst"`)
      expect(statements.filter((s) => s.startsWith(`COMMENT ON VIEW "hph".${v.name} IS`))).toHaveLength(1)
      const create = statements.find((s) => s.startsWith(`CREATE OR REPLACE VIEW "hph".${v.name} AS`))
      expect(create).toBeDefined()
      const sources = create!.match(/\b(from|join) \S+/g) ?? []
      expect(sources.length).toBeGreaterThan(0)
      // every table qualified by the schema (a subquery's own tables are matched as sources too)
      for (const source of sources) expect(source).toMatch(/^(from|join) ("hph"\.|\(select$)/)
    }
    expect(ANALYST_VIEWS.map((v) => v.name)).toEqual(['v_readiness', 'v_hrv_trend', 'v_sleep'])
  })

  it('quotes a comment holding an apostrophe', () => {
    expect(statements).toContain(`COMMENT ON COLUMN "hph".v_readiness.hrv_metric IS 'sdnn or rmssd: the metric the user''s baselines and readiness use'`)
  })

  it('puts the HRV bands where docs/insights.md §4 puts the thresholds', () => {
    const hrv = statements.find((s) => s.startsWith('CREATE OR REPLACE VIEW "hph".v_hrv_trend'))!
    expect(hrv).toContain('exp(b.hrv_ln_mean - 0.5 * b.hrv_ln_sd) as good_threshold_ms')
    expect(hrv).toContain('exp(b.hrv_ln_mean - 1.5 * b.hrv_ln_sd) as medium_threshold_ms')
    expect(hrv).toContain(`range between interval '6 days' preceding and current row`)
    // the rolling mean of each metric apart (ln SDNN and ln RMSSD are never averaged together)
    expect(hrv).toContain('partition by d.user_id, d.metric order by d.day')
  })
})
