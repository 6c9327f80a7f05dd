import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ConfigSchema } from '../../config.ts'

// The repository stands on its own: it names no file outside it, cites its own docs/ by section, and
// documents every setting (docs/operating.md §9).

const ROOT = new URL('../../', import.meta.url)

/** Every file of the repository (tracked, or new and not ignored), as the repository sees it. */
function repositoryFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: ROOT, encoding: 'utf8' })
  return [...new Set(out.split('\0').filter(Boolean))]
}

const SKIP = new Set(['package-lock.json'])

/** The text files, read once; binary files (a NUL byte) and the lock file are left out. */
const texts: ReadonlyMap<string, string> = new Map(
  repositoryFiles()
    .filter((f) => !SKIP.has(f))
    .flatMap((f): Array<[string, string]> => {
      let text: string
      try {
        text = readFileSync(new URL(f, ROOT), 'utf8')
      } catch (err) {
        // listed but deleted in the working tree
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
        throw err
      }
      return text.includes('\0') ? [] : [[f, text]]
    }),
)

interface Hit {
  file: string
  line: number
  text: string
}

function hits(pattern: RegExp, files: Iterable<[string, string]> = texts): Hit[] {
  const found: Hit[] = []
  for (const [file, text] of files) {
    text.split('\n').forEach((line, i) => {
      pattern.lastIndex = 0
      if (pattern.test(line)) found.push({ file, line: i + 1, text: line.trim().slice(0, 160) })
    })
  }
  return found
}

const where = (h: Hit[]) => h.map((x) => `${x.file}:${x.line}: ${x.text}`)

// the patterns are assembled from pieces, so this file does not name what it looks for
const OUTSIDE = {
  designCard: new RegExp(['(DESIGN|STYLE)', '\\.md'].join('')),
  sharedFolder: new RegExp(['(\\.\\./|/work/)', 'shared\\b'].join('')),
  referenceSpec: new RegExp(['\\bspec/', '[\\w-]+\\.md'].join('')),
  issueWord: new RegExp(['\\bissues?', '\\s*#?\\d+'].join(''), 'i'),
  // `#12` in prose; a colour (`#556` in CSS, `'#888'` in a string) and an HTML entity (`&#9;`) are not issue numbers
  issueHash: new RegExp(['(^|[\\s(\\[,;])', '#\\d+(?![\\w-])'].join('')),
}

/** `docs/x.md §N` (in code and the README) and `[x.md](x.md) §N` (between docs), with runs like `§3, §4`. */
const CITATION = /(?:docs\/([\w-]+\.md)|\]\(([\w-]+\.md)\))((?:(?:\s*,\s*|\s+and\s+|\s+)?§\d+[a-z]?(?:\.\d+)?(?:[–-]§?\d+)?)+)/g
const SECTION = /§(\d+[a-z]?(?:\.\d+)?)/g
const HEADING = /^#{2,4} (\d+[a-z]?(?:\.\d+)?)\.? /gm

function sectionsOf(doc: string): Set<string> | undefined {
  const text = texts.get(`docs/${doc}`)
  return text === undefined ? undefined : new Set([...text.matchAll(HEADING)].map((m) => m[1]!))
}

describe('the repository stands on its own', () => {
  it('names no design card outside it', () => {
    expect(where(hits(OUTSIDE.designCard))).toEqual([])
  })

  it('names no shared reference folder outside it', () => {
    expect(where(hits(OUTSIDE.sharedFolder))).toEqual([])
  })

  it('names no reference spec outside it (its own docs/ are cited instead)', () => {
    expect(where(hits(OUTSIDE.referenceSpec))).toEqual([])
  })

  it('cites no issue numbers in code, tests, scripts or docs', () => {
    expect(where(hits(OUTSIDE.issueWord))).toEqual([])
    const notCss = [...texts].filter(([f]) => !f.endsWith('.css'))
    expect(where(hits(OUTSIDE.issueHash, notCss))).toEqual([])
  })

  it('finds what it forbids (the checks are not blind)', () => {
    const probe = (p: RegExp, s: string) => hits(p, [['probe', s]]).length
    expect(probe(OUTSIDE.designCard, ['see ', 'DESIGN', '.md §7'].join(''))).toBe(1)
    expect(probe(OUTSIDE.sharedFolder, ['../', 'shared/fixtures/x.xml'].join(''))).toBe(1)
    expect(probe(OUTSIDE.referenceSpec, ['spec/', 'insights.md §3'].join(''))).toBe(1)
    expect(probe(OUTSIDE.issueWord, ['// Iss', 'ue 5', "'s figures"].join(''))).toBe(1)
    expect(probe(OUTSIDE.issueHash, ['fixed in ', '#12'].join(''))).toBe(1)
    expect(probe(OUTSIDE.issueHash, "color: '#888'; key#2 &#9;")).toBe(0)
  })
})

/** The `x.md §N` a line of `file` cites. */
function citationsIn(file: string, line: string): string[] {
  const keys: string[] = []
  for (const m of line.matchAll(CITATION)) {
    // `](x.md)` only counts between the docs themselves
    if (m[2] !== undefined && !file.startsWith('docs/')) continue
    for (const s of m[3]!.matchAll(SECTION)) keys.push(`${m[1] ?? m[2]} §${s[1]}`)
  }
  return keys
}

describe('docs/ sections cited exist', () => {
  const cited = new Map<string, Hit[]>()
  for (const [file, text] of texts) {
    text.split('\n').forEach((line, i) => {
      for (const key of citationsIn(file, line)) cited.set(key, [...(cited.get(key) ?? []), { file, line: i + 1, text: line.trim().slice(0, 160) }])
    })
  }

  it('reads a citation with its run of sections', () => {
    expect(citationsIn('x.ts', '// docs/insights.md §3, §4 and docs/architecture.md §9.5: why')).toEqual(['insights.md §3', 'insights.md §4', 'architecture.md §9.5'])
    expect(citationsIn('x.ts', '(docs/insights.md §2a) docs/insights.md §1–5')).toEqual(['insights.md §2a', 'insights.md §1'])
    expect(citationsIn('docs/a.md', 'see [tables.md](tables.md) §3.4')).toEqual(['tables.md §3.4'])
    expect(citationsIn('README.md', 'see [tables.md](tables.md) §3.4')).toEqual([])
  })

  it('finds citations to check', () => {
    expect(cited.size).toBeGreaterThan(30)
  })

  it('every docs/x.md §N cited is a numbered section of that doc', () => {
    const missing = [...cited].filter(([key]) => {
      const [doc, section] = key.split(' §') as [string, string]
      return !sectionsOf(doc)?.has(section)
    })
    expect(missing.map(([key, h]) => `${key} (${where(h).join('; ')})`)).toEqual([])
  })

  it('every doc a doc links to exists', () => {
    const links = [...texts].filter(([f]) => f.startsWith('docs/')).flatMap(([, t]) => [...t.matchAll(/\]\(([\w-]+\.md)\)/g)].map((m) => `docs/${m[1]}`))
    expect(links.length).toBeGreaterThan(0)
    expect(links.filter((f) => !texts.has(f))).toEqual([])
  })

  it('every docs/… file linked from the README exists', () => {
    const linked = [...(texts.get('README.md') ?? '').matchAll(/\]\((docs\/[\w-]+\.md)/g)].map((m) => m[1]!)
    expect(linked.length).toBeGreaterThan(0)
    expect(linked.filter((f) => !texts.has(f))).toEqual([])
  })
})

describe('docs/operating.md §9', () => {
  it('documents every setting of config.ts', () => {
    const operating = texts.get('docs/operating.md') ?? ''
    const keys = Object.keys(ConfigSchema.shape)
    expect(keys.length).toBeGreaterThan(10)
    expect(keys.filter((k) => !operating.includes(`\`${k}\``))).toEqual([])
  })
})
