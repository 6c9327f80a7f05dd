import { parseArgs } from 'node:util'
import { loadConfig, ConfigError } from '../config.ts'
import { createLogger } from '../log.ts'
import { commands } from './commands.ts'

const USAGE = `hph — Holistic Performance Hub

usage: hph <command> [options]

  up                      create the database if missing, migrate, apply streams, run api + every stage
  worker <stage>          run one stage (api | normalize | samples-writer | insights-engine | insights-writer);
                          several instances of a stage share one durable consumer; /healthz, /readyz
                          and /metrics on PORT
  migrate                 apply the database migrations
  streams apply           create or update the streams and durable consumers
  status [--json]         streams, consumers (pending, ack pending, lag), DLQ depth, database and migration
  dlq list [--stage S] [--json]      dead letters: reason, subject, first seen, deliveries
  dlq redrive [--stage S] [--id N]   republish dead letters to their original subject (after a fix)
  replay <stream> --into <projection> [--from-seq N | --since <ISO time>]
                          re-apply a stream (samples | insights) into its projection from a point, into shadow
                          tables swapped in at the end (readers never see a missing row)
  rebuild <projection>    rebuild samples | insights from their whole stream the same way
  rebuild insights --recompute [--id <run>]
                          re-derive every insight from \`samples\` (after an algorithm change)
  import healthkit <file> --user <id> [--json]
                          backfill an Apple Health export.xml or export.zip into HPH_INGEST (progress on
                          stderr, a summary per type at the end); importing the same file again adds nothing
  user export <id> [--out <file>]
                          everything held about a user (raw batches, samples, every insight row) as NDJSON
  user erase <id>         erase a user from every stream and table (idempotent; audited)
  demo [--exit]           run the pipeline, post a demo data set to it, show the insights it computed

configuration: environment variables (see docs/operating.md §9), e.g. NATS_URL, DATABASE_URL, PORT, HPH_PREFIX`

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, strict: false, options: {
    exit: { type: 'boolean' }, json: { type: 'boolean' }, quiet: { type: 'boolean' }, stage: { type: 'string' }, id: { type: 'string' },
    into: { type: 'string' }, out: { type: 'string' }, user: { type: 'string' }, 'from-seq': { type: 'string' }, since: { type: 'string' }, recompute: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  } })
  const [name, ...rest] = positionals
  const command = name ? commands[name] : undefined
  if (!command || values.help) {
    process.stdout.write(`${USAGE}\n`)
    return command || values.help ? 0 : 2
  }
  let config
  try {
    config = loadConfig()
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`${err.message}\n`)
    return 2
  }
  const log = createLogger(config)
  return command({ config, log, args: rest, flags: values })
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`hph: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  },
)
