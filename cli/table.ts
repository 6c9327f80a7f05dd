// Plain-text tables for the CLI's summaries (status, dlq, import).

/** Columns padded to their widest cell, numbers right-aligned. */
export function table(rows: ReadonlyArray<Record<string, string | number>>): string {
  if (rows.length === 0) return '(none)\n'
  const cols = Object.keys(rows[0]!)
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)))
  const cell = (v: string | number, i: number) => (typeof v === 'number' ? String(v).padStart(width[i]!) : v.padEnd(width[i]!))
  const line = (vals: Array<string | number>) => vals.map(cell).join('  ').trimEnd()
  return `${[line(cols), line(width.map((w) => '-'.repeat(w))), ...rows.map((r) => line(cols.map((c) => r[c]!)))].join('\n')}\n`
}
