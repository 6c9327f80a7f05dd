import type { Config } from '../config.ts'
import type { Logger } from '../log.ts'
import { createDb, ensureDatabase } from '../schema/db.ts'
import { migrateToLatest } from '../schema/migrate.ts'
import { connectNats } from '../streams/connect.ts'
import { applyTopology } from '../streams/topology.ts'
import { runDemo } from './demo.ts'
import { runStatus } from './status.ts'
import { runDlq } from './dlq.ts'
import { runImport } from './import.ts'
import { runRebuild, runReplay } from './rebuild.ts'
import { runUser } from './user.ts'
import { STAGES, startPipeline, type Pipeline, type PipelineStage } from './pipeline.ts'

export interface CommandContext {
  config: Config
  log: Logger
  args: string[]
  flags: Record<string, string | boolean | undefined>
}

export type Command = (ctx: CommandContext) => Promise<number>

/** Resolves on the first SIGTERM/SIGINT; the pipeline then drains and the process exits 0. */
export function untilSignal(log: Logger): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      log.info({ signal: sig }, 'shutting down')
      process.off('SIGTERM', on).off('SIGINT', on)
      resolve(sig)
    }
    process.on('SIGTERM', on).on('SIGINT', on)
  })
}

/** What the connections get to close after the stages' shutdown deadline. */
const CLOSE_MARGIN_MS = 1_000

async function runUntilSignal(p: Pipeline, log: Logger): Promise<number> {
  await untilSignal(log)
  // DESIGN.md §7: the process is gone by the deadline (plus the margin) even if a statement never returns;
  // what was in hand then was given back unacked, so it is redelivered, never lost
  const forced = setTimeout(() => {
    log.warn({ timeoutMs: p.config.HPH_SHUTDOWN_TIMEOUT_MS }, 'shutdown deadline passed; exiting with the work in hand unacknowledged')
    process.exit(0)
  }, p.config.HPH_SHUTDOWN_TIMEOUT_MS + CLOSE_MARGIN_MS)
  forced.unref()
  await p.stop()
  clearTimeout(forced)
  log.info('stopped cleanly')
  return 0
}

export const commands: Record<string, Command> = {
  async up({ config, log }) {
    const p = await startPipeline(config, log, { stages: STAGES, api: true, prepare: true })
    log.info({ url: p.url, stages: STAGES }, 'pipeline up')
    return runUntilSignal(p, log)
  },

  async worker({ config, log, args }) {
    const stage = args[0]
    if (stage === 'api') return runUntilSignal(await startPipeline(config, log, { stages: [], api: true, prepare: false }), log)
    if (!STAGES.includes(stage as PipelineStage)) {
      process.stderr.write(`hph worker: unknown stage '${stage ?? ''}'; one of: api, ${STAGES.join(', ')}\n`)
      return 2
    }
    return runUntilSignal(await startPipeline(config, log, { stages: [stage as PipelineStage], api: false, prepare: false }), log)
  },

  async migrate({ config, log }) {
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
    const nats = await connectNats(config, 'hph:streams')
    try {
      const r = await applyTopology(nats.jsm, config)
      process.stdout.write(`streams: ${r.streams.join(', ')}\nconsumers: ${r.consumers.join(', ')}\n`)
      return 0
    } finally {
      await nats.nc.close()
    }
  },

  demo: runDemo,
  status: runStatus,
  dlq: runDlq,
  import: runImport,
  replay: runReplay,
  rebuild: runRebuild,
  user: runUser,
}
