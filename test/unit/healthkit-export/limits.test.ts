import { readFileSync } from 'node:fs'
import { zipSync } from 'fflate'
import { describe, expect, it } from 'vitest'
import { DEFAULT_EXPORT_LIMITS, ExportLimitError, PARSE_SLICE_CHARS, type ExportLimits } from '../../../ingest/healthkit-export/limits.ts'
import { readExport, type ExportFormat } from '../../../ingest/healthkit-export/reader.ts'

// docs/architecture.md §6: whatever an export makes the parser gather, it is refused once over its
// limit, naming the setting, and no gathering outgrows its limit by more than a slice.

const NIGHTS = readFileSync(new URL('../../fixtures/healthkit-export-30-nights.xml', import.meta.url))
const HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
const LIMITS: ExportLimits = { xmlBytes: 1024 * 1024, depth: 8, nameChars: 64, valueChars: 1000, textChars: 2000, doctypeChars: 3000 }

async function* chunks(bytes: Uint8Array, size = 64 * 1024): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size)
}

/** Reads the export to its end; the error it ended with (undefined when none), and the batches' samples. */
async function readAll(text: string | Uint8Array, limits: ExportLimits = LIMITS, format: ExportFormat = 'xml'): Promise<{ error: unknown; samples: number }> {
  const bytes = typeof text === 'string' ? Buffer.from(text) : text
  const r = readExport(chunks(bytes), { format, batchSize: 1000, limits })
  let samples = 0
  try {
    for await (const b of r.batches) samples += b.size
  } catch (error) {
    return { error, samples }
  }
  return { error: undefined, samples }
}

function expectLimit(error: unknown, setting: string): void {
  expect(error).toBeInstanceOf(ExportLimitError)
  const e = error as ExportLimitError
  expect(e.code).toBe('export_limit_exceeded')
  expect(e.limit).toBe(setting)
  expect(e.message).toContain(setting)
}

describe('export limits', () => {
  it('reads a real export whole under the default limits', async () => {
    const r = await readAll(NIGHTS, DEFAULT_EXPORT_LIMITS)
    expect(r.error).toBeUndefined()
    expect(r.samples).toBeGreaterThan(0)
  }, 60_000)

  it('refuses elements nested deeper than HPH_EXPORT_MAX_DEPTH', async () => {
    const ok = await readAll(`${HEAD}<HealthData>${'<a>'.repeat(7)}${'</a>'.repeat(7)}</HealthData>`)
    expect(ok.error).toBeUndefined()
    const r = await readAll(`${HEAD}<HealthData>${'<a>'.repeat(100_000)}${'</a>'.repeat(100_000)}</HealthData>`)
    expectLimit(r.error, 'HPH_EXPORT_MAX_DEPTH')
  })

  it('refuses an attribute value longer than HPH_EXPORT_MAX_VALUE_CHARS, after at most a slice more of it', async () => {
    const ok = await readAll(`${HEAD}<HealthData><Record type="x" value="${'v'.repeat(999)}"/></HealthData>`)
    expect(ok.error).toBeUndefined()
    const r = await readAll(`${HEAD}<HealthData><Record type="x" value="${'v'.repeat(5 * PARSE_SLICE_CHARS)}"/></HealthData>`)
    expectLimit(r.error, 'HPH_EXPORT_MAX_VALUE_CHARS')
    // the number it saw: the limit plus less than a slice
    const seen = Number(/\((\d+)\+ characters\)/.exec((r.error as Error).message)?.[1])
    expect(seen).toBeGreaterThan(LIMITS.valueChars)
    expect(seen).toBeLessThanOrEqual(LIMITS.valueChars + PARSE_SLICE_CHARS + 200)
  })

  it('refuses an element or attribute name longer than HPH_EXPORT_MAX_NAME_CHARS', async () => {
    expectLimit((await readAll(`${HEAD}<HealthData><${'n'.repeat(200_000)}/></HealthData>`)).error, 'HPH_EXPORT_MAX_NAME_CHARS')
    expectLimit((await readAll(`${HEAD}<HealthData><Record ${'n'.repeat(200_000)}="1"/></HealthData>`)).error, 'HPH_EXPORT_MAX_NAME_CHARS')
  })

  it('refuses text, a comment or a CDATA section longer than HPH_EXPORT_MAX_TEXT_CHARS', async () => {
    expectLimit((await readAll(`${HEAD}<HealthData>${'t'.repeat(200_000)}</HealthData>`)).error, 'HPH_EXPORT_MAX_TEXT_CHARS')
    expectLimit((await readAll(`${HEAD}<HealthData><!--${'c'.repeat(200_000)}--></HealthData>`)).error, 'HPH_EXPORT_MAX_TEXT_CHARS')
    expectLimit((await readAll(`${HEAD}<HealthData><![CDATA[${'c'.repeat(200_000)}]]></HealthData>`)).error, 'HPH_EXPORT_MAX_TEXT_CHARS')
  })

  it('refuses a DOCTYPE longer than HPH_EXPORT_MAX_DOCTYPE_CHARS', async () => {
    const subset = `<!ATTLIST HealthData locale CDATA #REQUIRED>\n`.repeat(5_000)
    expectLimit((await readAll(`${HEAD}<!DOCTYPE HealthData [\n${subset}]>\n<HealthData/>`)).error, 'HPH_EXPORT_MAX_DOCTYPE_CHARS')
  })

  it('refuses export.xml over HPH_EXPORT_MAX_XML_BYTES, plain or inflating from a zip (any entry counts)', async () => {
    const big = `${HEAD}<HealthData>${'<ExportDate value="x"/>\n'.repeat(60_000)}</HealthData>`
    expectLimit((await readAll(big)).error, 'HPH_EXPORT_MAX_XML_BYTES')
    const zipped = zipSync({ 'apple_health_export/export.xml': Buffer.from(big) }, { level: 9 })
    expect(zipped.length).toBeLessThan(LIMITS.xmlBytes / 10)
    expectLimit((await readAll(zipped, LIMITS, 'zip')).error, 'HPH_EXPORT_MAX_XML_BYTES')
    const beside = zipSync(
      { 'apple_health_export/export_cda.xml': new Uint8Array(2 * 1024 * 1024), 'apple_health_export/export.xml': Buffer.from(`${HEAD}<HealthData/>`) },
      { level: 9 },
    )
    expectLimit((await readAll(beside, LIMITS, 'zip')).error, 'HPH_EXPORT_MAX_XML_BYTES')
  }, 60_000)
})
