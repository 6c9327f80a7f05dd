import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { cruise, type ICruiseResult, type IConfiguration } from 'dependency-cruiser'
import { afterAll, describe, expect, it } from 'vitest'

// The house's import rules live in .dependency-cruiser.mjs (also `npm run lint:imports`); these tests run
// them on the repository and prove, on a tree of bad imports, that they catch what they promise to.

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../..')

interface HouseRules {
  default: IConfiguration
  EXCEPTIONS: { from: string; to: string }[]
}
const rules = (await import(pathToFileURL(join(ROOT, '.dependency-cruiser.mjs')).href)) as HouseRules

async function violations(baseDir: string, roots: string[]): Promise<string[]> {
  const { forbidden, options } = rules.default
  const r = await cruise(
    roots.filter((p) => existsSync(join(baseDir, p))),
    { ...options, validate: true, ruleSet: { forbidden: forbidden ?? [] }, baseDir },
  )
  const result = r.output as ICruiseResult
  expect(result.summary.totalCruised, 'cruised nothing').toBeGreaterThan(0)
  return result.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`)
}

const scratch = mkdtempSync(join(tmpdir(), 'hph-house-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

function file(path: string, text: string): void {
  mkdirSync(dirname(join(scratch, path)), { recursive: true })
  writeFileSync(join(scratch, path), text)
}

describe('the import graph', () => {
  it('has no cycle and no upward import in the repository', async () => {
    expect(await violations(ROOT, ['.'])).toEqual([])
  }, 60_000)

  it('names only exceptions that still exist, each an import the file really makes', () => {
    for (const e of rules.EXCEPTIONS) {
      const from = join(ROOT, e.from)
      expect(existsSync(from), `${e.from} is gone: drop its exception`).toBe(true)
      const target = e.to.split('/').at(-1) ?? e.to
      expect(readFileSync(from, 'utf8'), `${e.from} no longer imports ${e.to}: drop its exception`).toContain(target)
    }
  })

  it('reports a cycle, cli and api importing each other, a processor importing a projection, and a low room importing a high one', async () => {
    file('cli/run.ts', "import { serve } from '../api/server.ts'\nexport const run = serve\n")
    file('api/server.ts', "import { show } from '../cli/show.ts'\nexport const serve = show\n")
    file('cli/show.ts', 'export const show = 1\n')
    file('processors/stage.ts', "import { write } from '../projections/writer.ts'\nexport const stage = write\n")
    file('projections/writer.ts', 'export const write = 1\n')
    file('streams/reader.ts', "import { stage } from '../processors/stage.ts'\nexport const read = stage\n")
    file('schema/a.ts', "import { b } from './b.ts'\nexport const a = () => b\n")
    file('schema/b.ts', "import { a } from './a.ts'\nexport const b = () => a\n")
    const found = await violations(scratch, ['cli', 'api', 'processors', 'projections', 'streams', 'schema'])
    expect(found).toEqual(
      expect.arrayContaining([
        'cli-not-api: cli/run.ts → api/server.ts',
        'upward-from-api: api/server.ts → cli/show.ts',
        'processor-not-projection: processors/stage.ts → projections/writer.ts',
        'upward-from-streams: streams/reader.ts → processors/stage.ts',
        'no-circular: schema/a.ts → schema/b.ts',
      ]),
    )
  }, 60_000)
})
