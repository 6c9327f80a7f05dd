import { readFileSync } from 'node:fs'
import { Zip, ZipDeflate } from 'fflate'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { eventually, testEnv, type TestEnv } from '../helpers/env.ts'
import { alive, killAll, showOnFailure, spawnHph, type Child } from '../helpers/processes.ts'
import { freePort } from '../helpers/proxy.ts'

// docs/architecture.md §6: export uploads that inflate without bound are refused with a 413 naming the
// limit, and the pipeline process (`hph up`: api, parse thread and stages in one) keeps its peak RSS under 700 MB.
// The peak is the kernel's (VmHWM of /proc/<pid>/status), of a process that did nothing else.

const ADMIN = 'bombs-admin-key-0123456789abcdefghijklmnop'
const MB = 1024 * 1024
const PEAK_LIMIT_MB = 700

/** export.zip holding `apple_health_export/export.xml` made of `parts` (a generator of text), deflated at level 9 as it is made. */
function zipOf(parts: Iterable<string>): Buffer {
  const out: Uint8Array[] = []
  const zip = new Zip((err, data) => {
    if (err) throw err
    out.push(data)
  })
  const entry = new ZipDeflate('apple_health_export/export.xml', { level: 9 })
  zip.add(entry)
  let pending = ''
  for (const part of parts) {
    pending += part
    if (pending.length >= MB) {
      entry.push(Buffer.from(pending))
      pending = ''
    }
  }
  entry.push(Buffer.from(pending), true)
  zip.end()
  return Buffer.concat(out)
}

/** <Record … value="aaaa…"/> with a value of `mb` MiB. */
function* hugeAttribute(mb: number): Generator<string> {
  yield '<?xml version="1.0" encoding="UTF-8"?>\n<HealthData locale="en_US">\n <Record type="HKQuantityTypeIdentifierHeartRate" unit="count/min" value="'
  const block = 'a'.repeat(MB)
  for (let i = 0; i < mb; i++) yield block
  yield '"/>\n</HealthData>\n'
}

/** `levels` nested elements under <HealthData>. */
function* deepNest(levels: number): Generator<string> {
  yield '<?xml version="1.0" encoding="UTF-8"?>\n<HealthData locale="en_US">'
  const step = 100_000
  for (let i = 0; i < levels; i += step) yield '<a>'.repeat(Math.min(step, levels - i))
  for (let i = 0; i < levels; i += step) yield '</a>'.repeat(Math.min(step, levels - i))
  yield '</HealthData>\n'
}

/** The process's peak resident set (VmHWM), in MiB. */
function peakRssMb(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!m) throw new Error(`no VmHWM in /proc/${pid}/status`)
  return Number(m[1]) / 1024
}

let env: TestEnv
let up: Child
let url: string
const children: Child[] = []

beforeAll(async () => {
  env = await testEnv()
  const port = await freePort()
  up = spawnHph(
    ['up'],
    {
      NATS_URL: env.config.NATS_URL,
      DATABASE_URL: env.config.DATABASE_URL,
      HPH_PREFIX: env.config.HPH_PREFIX,
      HOST: '127.0.0.1',
      PORT: String(port),
      HPH_API_KEYS: `${ADMIN}:admin`,
    },
    children,
  )
  url = `http://127.0.0.1:${port}`
  await eventually(
    async () => {
      if (!alive(up)) throw new Error(`hph up exited:\n${up.output()}`)
      return fetch(`${url}/readyz`).then(
        (r) => r.ok,
        () => false,
      )
    },
    90_000,
    'hph up to be ready',
  )
})
afterAll(async () => {
  await killAll(children)
  await env?.cleanup()
})

async function upload(body: Buffer): Promise<{ status: number; body: { error: string; message: string } }> {
  const res = await fetch(`${url}/v1/users/bomb/healthkit-export`, {
    method: 'POST',
    headers: { 'content-type': 'application/zip', authorization: `Bearer ${ADMIN}` },
    body,
  })
  return { status: res.status, body: (await res.json()) as { error: string; message: string } }
}

describe('export uploads that inflate without bound', () => {
  it('refuses a 300 MB attribute, a few hundred KiB zipped, with a 413 naming the limit, under 700 MB of peak RSS', async () => {
    showOnFailure(up, 'hph up')
    const bomb = zipOf(hugeAttribute(300))
    expect(bomb.length).toBeLessThan(1024 * 1024)
    const r = await upload(bomb)
    expect(r.status).toBe(413)
    expect(r.body.error).toBe('export_limit_exceeded')
    expect(r.body.message).toContain('HPH_EXPORT_MAX_VALUE_CHARS')
    const peak = peakRssMb(up.child.pid!)
    console.info(`peak RSS of hph up after the 300 MB attribute (${bomb.length} bytes zipped): ${peak.toFixed(0)} MB`)
    expect(peak).toBeLessThan(PEAK_LIMIT_MB)
    expect(alive(up)).toBe(true)
  })

  it('refuses a 5M-deep nest with a 413 naming the limit, under 700 MB of peak RSS', async () => {
    showOnFailure(up, 'hph up')
    const bomb = zipOf(deepNest(5_000_000))
    expect(bomb.length).toBeLessThan(1024 * 1024)
    const r = await upload(bomb)
    expect(r.status).toBe(413)
    expect(r.body.error).toBe('export_limit_exceeded')
    expect(r.body.message).toContain('HPH_EXPORT_MAX_DEPTH')
    const peak = peakRssMb(up.child.pid!)
    console.info(`peak RSS of hph up after the 5M-deep nest (${bomb.length} bytes zipped): ${peak.toFixed(0)} MB`)
    expect(peak).toBeLessThan(PEAK_LIMIT_MB)
    // still serving
    expect((await fetch(`${url}/readyz`)).status).toBe(200)
  })
})
