#!/usr/bin/env -S node --max-semi-space-size=32
// --max-semi-space-size=32 (MiB; Node 20's default is 16): every event decoded and every sample normalised is short-lived,
// and a larger young generation collects them in fewer scavenges (docs/operating.md §"Node's heap"). The Dockerfile sets the same.
// Runs the built CLI (`npm run build` writes dist/) with node alone; from the sources use `npm run hph -- …`.
import { existsSync } from 'node:fs'

const entry = new URL('../dist/cli/hph.js', import.meta.url)
if (!existsSync(entry)) {
  process.stderr.write('hph: dist/ is not built: run `npm run build` (or `npm run hph -- <command>` to run the sources through tsx)\n')
  process.exit(1)
}
await import(entry.href)
