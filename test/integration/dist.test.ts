import { execFileSync, spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, mkdirSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { closeDb, createDb } from '../../schema/db.ts'
import { eventually, testEnv, type TestEnv } from '../helpers/env.ts'
import { exitWithin, killAll, showOnFailure, spawnHph, type Child } from '../helpers/processes.ts'

// The build (`npm run build`: tsc with tsconfig.build.json, then the dashboard's files) run as the image runs
// it: `node dist/cli/hph.js` in a folder where tsx cannot be resolved, the pipeline up, an export imported
// over HTTP (its parse thread is the part that once needed tsx), the samples written.

const ROOT = resolve(import.meta.dirname, '../..')
const FIXTURE = readFileSync(join(ROOT, 'test/fixtures/healthkit-export-small.xml'))

let env: TestEnv
let dir: string
const children: Child[] = []

beforeAll(async () => {
  env = await testEnv()
  dir = mkdtempSync(join(tmpdir(), 'hph-dist-'))
  // the build, into a folder of its own (a developer's dist/ is left alone)
  execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(dir, 'dist')], {
    cwd: ROOT,
    stdio: 'inherit',
  })
  cpSync(join(ROOT, 'api/dashboard'), join(dir, 'dist/api/dashboard'), { recursive: true })
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'))
  // every installed package but tsx (and its esbuild): what `npm ci --omit=dev` leaves has neither
  mkdirSync(join(dir, 'node_modules'))
  for (const name of readdirSync(join(ROOT, 'node_modules'))) {
    if (['tsx', 'esbuild', '@esbuild', '.bin'].includes(name)) continue
    symlinkSync(join(ROOT, 'node_modules', name), join(dir, 'node_modules', name))
  }
}, 300_000)
afterAll(async () => {
  await killAll(children)
  if (dir) rmSync(dir, { recursive: true, force: true })
  await env?.cleanup()
})

describe('the built program (dist/)', () => {
  it('cannot resolve tsx where it runs', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', "await import('tsx/esm/api')"], {
      cwd: join(dir, 'dist'),
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '' },
    })
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/ERR_MODULE_NOT_FOUND|Cannot find package 'tsx'/)
  })

  it('starts the pipeline with node alone, imports an export on its parse thread, serves the dashboard and the OpenAPI document', async () => {
    // from the build's folder, with no NODE_OPTIONS that could bring a loader in
    const up = spawnHph(
      ['up'],
      { DATABASE_URL: env.config.DATABASE_URL, HPH_PREFIX: env.config.HPH_PREFIX, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', NODE_OPTIONS: '' },
      children,
      { entry: ['dist/cli/hph.js'], cwd: dir },
    )
    showOnFailure(up, 'node dist/cli/hph.js up')
    let url = ''
    await eventually(
      async () => {
        const line = up
          .output()
          .split('\n')
          .find((l) => l.includes('"pipeline up"'))
        if (line) url = (JSON.parse(line) as { url: string }).url
        return Boolean(line) || up.child.exitCode !== null
      },
      90_000,
      'the pipeline up',
    )
    expect(url, up.output()).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(up.output()).not.toMatch(/tsx/)

    expect((await fetch(`${url}/readyz`)).status).toBe(200)
    const posted = await fetch(`${url}/v1/users/ana/healthkit-export`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: FIXTURE })
    expect(posted.status, await posted.clone().text()).toBe(202)
    expect(((await posted.json()) as { records: number }).records).toBeGreaterThan(0)
    const { db, pool } = createDb(env.config, { max: 1 })
    try {
      await eventually(
        async () => Number((await sql<{ n: string }>`select count(*)::text as n from samples where user_id = 'ana'`.execute(db)).rows[0]?.n) > 0,
        60_000,
        'the imported samples written',
      )
    } finally {
      await closeDb(db, pool)
    }
    expect((await fetch(`${url}/`)).status).toBe(200)
    expect(((await (await fetch(`${url}/openapi.json`)).json()) as { openapi: string }).openapi).toMatch(/^3\.1\./)
    expect((await fetch(`${url}/docs/`)).status).toBe(200)

    up.child.kill('SIGTERM')
    expect((await exitWithin(up, 30_000)).code).toBe(0)
  })
})
