#!/usr/bin/env node
// Runs the built CLI (`npm run build` writes dist/) with node alone; from the sources use `npm run hph -- …`.
import { existsSync } from 'node:fs'

const entry = new URL('../dist/cli/hph.js', import.meta.url)
if (!existsSync(entry)) {
  process.stderr.write('hph: dist/ is not built: run `npm run build` (or `npm run hph -- <command>` to run the sources through tsx)\n')
  process.exit(1)
}
await import(entry.href)
