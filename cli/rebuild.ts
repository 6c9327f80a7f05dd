import cliProgress from 'cli-progress'
import { PROJECTIONS, rebuildProjection, type ProjectionName, type RebuildProgress, type RebuildResult } from '../projections/rebuild.ts'
import { createDb } from '../schema/db.ts'
import { connectNats } from '../streams/connect.ts'
import type { CommandContext } from './commands.ts'

// `hph replay <stream> --into <projection> [--from-seq N | --since T]` and `hph rebuild <projection>`
// (DESIGN.md §7): the projection is rebuilt into shadow tables and swapped in; readers never wait
// longer than the swap's drop-and-rename.

/** Which stream feeds which projection: replaying another one into it is a mistake worth naming. */
const SOURCE: Record<ProjectionName, string> = { samples: 'samples', insights: 'insights' }

const REPLAY_USAGE = 'usage: hph replay <samples|insights> --into <samples|insights> [--from-seq N | --since <ISO time>]'
const REBUILD_USAGE = 'usage: hph rebuild <samples|insights>'

function progressBar(enabled: boolean): { update(p: RebuildProgress): void; stop(): void } {
  if (!enabled) return { update: () => undefined, stop: () => undefined }
  const bar = new cliProgress.SingleBar(
    {
      format: '{phase} |{bar}| {percentage}% {value}/{total} messages | {rate}/s | ETA {eta_formatted}',
      etaBuffer: 50,
      fps: 5,
      stream: process.stderr,
      // a log file or a CI console gets a line now and then instead of a redrawn bar
      noTTYOutput: true,
      notTTYSchedule: 5000,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  )
  const t0 = performance.now()
  let started = false
  return {
    update(p) {
      const rate = Math.round(p.done / Math.max(0.001, (performance.now() - t0) / 1000))
      if (!started) {
        bar.start(Math.max(1, p.total), p.done, { phase: p.phase, rate })
        started = true
      } else {
        bar.setTotal(Math.max(1, p.total))
        bar.update(p.done, { phase: p.phase, rate })
      }
    },
    stop: () => bar.stop(),
  }
}

function report(r: RebuildResult, json: boolean): string {
  if (json) return `${JSON.stringify(r, null, 2)}\n`
  const rate = Math.round(r.messages / Math.max(r.seconds, 0.001))
  return [
    `rebuilt ${r.projection} from ${r.stream} seq ${r.fromSeq}..${r.throughSeq}: ${r.messages} messages in ${r.seconds.toFixed(1)} s (${rate}/s)`,
    r.skipped ? `skipped ${r.skipped} undecodable message(s) (they are in the DLQ)` : undefined,
    `swapped in: readers held ${r.swapPauseMs.toFixed(1)} ms, live writer held ${r.swapMs.toFixed(1)} ms`,
  ].filter(Boolean).join('\n') + '\n'
}

async function run(ctx: Pick<CommandContext, 'config' | 'log' | 'flags'>, projection: ProjectionName, from: { fromSeq?: number; since?: Date }): Promise<number> {
  const { config, log, flags } = ctx
  const nats = await connectNats(config, `hph:rebuild:${projection}`)
  const { db, pool } = createDb(config, { max: 6 })
  const bar = progressBar(!flags.json && !flags.quiet)
  try {
    const r = await rebuildProjection({ nats, db, pool, prefix: config.HPH_PREFIX, schema: config.HPH_DB_SCHEMA, log, projection, ...from, batchSize: config.HPH_BATCH_SIZE, onProgress: bar.update })
    bar.stop()
    process.stdout.write(report(r, Boolean(flags.json)))
    return 0
  } finally {
    bar.stop()
    await nats.nc.close()
    await db.destroy()
  }
}

export async function runRebuild(ctx: CommandContext): Promise<number> {
  const [projection] = ctx.args
  if (!PROJECTIONS.includes(projection as ProjectionName) || ctx.args.length !== 1) {
    process.stderr.write(`${REBUILD_USAGE}\n`)
    return 2
  }
  return run(ctx, projection as ProjectionName, {})
}

export async function runReplay(ctx: CommandContext): Promise<number> {
  const [stream] = ctx.args
  const into = ctx.flags.into
  if (typeof stream !== 'string' || typeof into !== 'string' || !PROJECTIONS.includes(into as ProjectionName) || ctx.args.length !== 1) {
    process.stderr.write(`${REPLAY_USAGE}\n`)
    return 2
  }
  const projection = into as ProjectionName
  if (stream.toLowerCase().replace(/^hph_/, '') !== SOURCE[projection]) {
    const hint = projection === 'insights' && stream.toLowerCase().endsWith('samples') ? ' (to re-derive insights from samples: hph rebuild insights --recompute)' : ''
    process.stderr.write(`hph replay: ${projection} is built from the ${SOURCE[projection]} stream, not ${stream}${hint}\n`)
    return 2
  }
  const fromSeq = typeof ctx.flags['from-seq'] === 'string' ? Number(ctx.flags['from-seq']) : undefined
  const since = typeof ctx.flags.since === 'string' ? new Date(ctx.flags.since) : undefined
  if ((fromSeq !== undefined && !(Number.isInteger(fromSeq) && fromSeq >= 1)) || (since !== undefined && Number.isNaN(since.getTime())) || (fromSeq !== undefined && since !== undefined)) {
    process.stderr.write(`hph replay: --from-seq takes a sequence ≥ 1, --since an ISO time, and only one of them\n${REPLAY_USAGE}\n`)
    return 2
  }
  return run(ctx, projection, { ...(fromSeq !== undefined ? { fromSeq } : {}), ...(since ? { since } : {}) })
}
