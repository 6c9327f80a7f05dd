import type { Logger } from '../log.ts'
import { jetStreamWait, type Command } from './context.ts'
import type { Pipeline, PipelineStage } from '../pipeline/start.ts'
import { untilSignal } from './signal.ts'

type Option = { type: 'boolean' | 'string' }
const bool: Option = { type: 'boolean' }
const text: Option = { type: 'string' }

/** The options each command takes: any other is refused (exit 2), so a misspelt one is never silently ignored. */
export const COMMAND_OPTIONS: Record<string, Record<string, Option>> = {
  up: {},
  worker: {},
  migrate: {},
  streams: {},
  status: { json: bool },
  dlq: { stage: text, id: text, json: bool },
  import: { user: text, json: bool, quiet: bool },
  replay: { into: text, 'from-seq': text, since: text, json: bool, quiet: bool },
  rebuild: { recompute: bool, id: text, json: bool, quiet: bool },
  user: { out: text },
  demo: { exit: bool },
}

/** What the connections get to close after the stages' shutdown deadline. */
const CLOSE_MARGIN_MS = 1_000
/** The exit code of a stop that had to cut work at the deadline: its supervisor sees it was not clean. */
export const EXIT_CUT = 1

async function runUntilSignal(p: Pipeline, log: Logger): Promise<number> {
  await untilSignal(log)
  // docs/architecture.md §8.1: the process is gone by the deadline (plus the margin) even if a
  // statement or a connection never returns; what was in hand then was given back unacked, so it is
  // redelivered, never lost — but the exit is not clean, and the log says what was cut
  const forced = setTimeout(() => {
    log.error(
      { timeoutMs: p.config.HPH_SHUTDOWN_TIMEOUT_MS, ...p.cutSoFar() },
      'shutdown deadline passed: exiting now; these requests were cut and these messages given back unacknowledged',
    )
    process.exit(EXIT_CUT)
  }, p.config.HPH_SHUTDOWN_TIMEOUT_MS + CLOSE_MARGIN_MS)
  forced.unref()
  const report = await p.stop()
  clearTimeout(forced)
  const { wasCut } = await import('../pipeline/start.ts')
  if (wasCut(report)) {
    log.error({ timeoutMs: p.config.HPH_SHUTDOWN_TIMEOUT_MS, ...report }, 'shutdown deadline passed: these requests were cut and these messages given back unacknowledged')
    return EXIT_CUT
  }
  log.info('stopped cleanly')
  return 0
}

// Every command loads what it needs when it runs: `hph import` starts without the api server, Kysely and the
// stages (the CLI's start-up went from 1.8 s to under 1 s).
export const commands: Record<string, Command> = {
  async up({ config, log }) {
    const { STAGES, startPipeline } = await import('../pipeline/start.ts')
    const p = await startPipeline(config, log, { stages: STAGES, api: true, prepare: true })
    log.info({ url: p.url, stages: STAGES }, 'pipeline up')
    return runUntilSignal(p, log)
  },

  async worker({ config, log, args }) {
    const { STAGES, startPipeline } = await import('../pipeline/start.ts')
    // one stage, or several in one process (`hph worker normalize samples-writer`): each is the stage `hph up` runs
    const unknown = args.filter((a) => a !== 'api' && !STAGES.includes(a as PipelineStage))
    if (args.length === 0 || unknown.length > 0) {
      const what = args.length === 0 ? 'name a stage' : `unknown stage${unknown.length > 1 ? 's' : ''} ${unknown.map((u) => `'${u}'`).join(', ')}`
      process.stderr.write(`hph worker: ${what}; one or more of: api, ${STAGES.join(', ')}\n`)
      return 2
    }
    const stages = STAGES.filter((s) => args.includes(s))
    return runUntilSignal(await startPipeline(config, log, { stages, api: args.includes('api'), prepare: false }), log)
  },

  async migrate({ config, log }) {
    const [{ createDb, ensureDatabase }, { migrateToLatest }] = await Promise.all([import('../schema/db.ts'), import('../schema/migrate.ts')])
    await ensureDatabase(config.DATABASE_URL)
    const { db } = createDb(config, { max: 1 })
    try {
      const applied = await migrateToLatest(db, config, log)
      process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'already up to date\n')
      return 0
    } finally {
      await db.destroy()
    }
  },

  async streams({ config, args }) {
    if (args[0] !== 'apply') {
      process.stderr.write('usage: hph streams apply\n')
      return 2
    }
    const [{ connectNats }, { applyTopology }] = await Promise.all([import('../streams/connect.ts'), import('../streams/topology.ts')])
    const nats = await connectNats(config, 'hph:streams', {}, jetStreamWait('streams'))
    try {
      const r = await applyTopology(nats.jsm, config)
      process.stdout.write(`streams: ${r.streams.join(', ')}\nconsumers: ${r.consumers.join(', ')}\n`)
      return 0
    } finally {
      await nats.nc.close()
    }
  },

  demo: async (ctx) => (await import('./demo.ts')).runDemo(ctx),
  status: async (ctx) => (await import('./status.ts')).runStatus(ctx),
  dlq: async (ctx) => (await import('./dlq.ts')).runDlq(ctx),
  import: async (ctx) => (await import('./import.ts')).runImport(ctx),
  replay: async (ctx) => (await import('./rebuild.ts')).runReplay(ctx),
  rebuild: async (ctx) => (await import('./rebuild.ts')).runRebuild(ctx),
  user: async (ctx) => (await import('./user.ts')).runUser(ctx),
}

/**
 * What a command starts before the configuration and the logger load (≈ 0.2 s of modules, zod's most of it), on another
 * core meanwhile: `hph import`'s parse thread, which takes as long again to boot and then waits for the export
 * (docs/benchmarks.md §2). Only ahead of time, before the environment is read (config.ts alone reads it): the thread
 * has the default heap, and is started anew if HPH_EXPORT_PARSER_HEAP_MB says otherwise; a command that stops earlier
 * (a bad variable) leaves nothing running, as the thread keeps no process alive.
 */
export const EARLY: Partial<Record<string, () => Promise<void>>> = {
  import: async () => (await import('../ingest/healthkit-export/parse-worker.ts')).warmParseThread(),
}
