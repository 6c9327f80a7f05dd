import { parseArgs } from 'node:util'
import { COMMAND_OPTIONS, commands, EARLY } from './commands.ts'

const USAGE = `hph — Holistic Performance Hub

usage: hph <command> [options]

  up                      create the database if missing, migrate, apply streams, run api + every stage
  worker <stage>…         run one stage, or several in one process (api | normalize | samples-writer |
                          insights-engine | insights-writer); several instances of a stage share one
                          durable consumer; /healthz, /readyz and /metrics on PORT
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

/** The command and its options; a misspelt or unknown option, or one missing its value, is an error (exit 2). */
function parse(argv: string[]): { name?: string; rest: string[]; values: Record<string, string | boolean | undefined>; error?: string } {
  const name = argv.find((a) => !a.startsWith('-'))
  const own = name !== undefined ? COMMAND_OPTIONS[name] : undefined
  try {
    const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...own, help: { type: 'boolean', short: 'h' } } })
    return { name: positionals[0], rest: positionals.slice(1), values }
  } catch (err) {
    // node's own words name the option (ERR_PARSE_ARGS_UNKNOWN_OPTION, ERR_PARSE_ARGS_INVALID_OPTION_VALUE)
    const known = Object.keys(own ?? {}).map((o) => `--${o}`)
    return {
      name,
      rest: [],
      values: {},
      error: `${(err as Error).message.split('\n')[0]!.replace(/\. To specify a positional argument.*$/, '')}${name && own ? ` (hph ${name} takes ${known.length ? known.join(', ') : 'no options'})` : ''}`,
    }
  }
}

/** Commands that run as services: their logs are JSON wherever they go (unless HPH_LOG_FORMAT says otherwise). */
const SERVICES = new Set(['up', 'worker'])

async function main(argv: string[]): Promise<number> {
  const { name, rest, values, error } = parse(argv)
  const command = name ? commands[name] : undefined
  if (error && (command || !name)) {
    process.stderr.write(`hph${name ? ` ${name}` : ''}: ${error}\n`)
    return 2
  }
  if (!command || values.help) {
    process.stdout.write(`${USAGE}\n`)
    return command || values.help ? 0 : 2
  }
  // the configuration (zod) and the logger (pino) load after what the command starts ahead (commands.ts: EARLY); that is
  // only a head start: what fails in it is met again, and reported, where the command does it for itself
  await EARLY[name!]?.().catch(() => undefined)
  const [{ loadConfig, ConfigError }, { createLogger, logFormat }] = await Promise.all([import('../config.ts'), import('../log.ts')])
  let config
  try {
    config = loadConfig()
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`${err.message}\n`)
    return 2
  }
  // the services log JSON for their collectors; a command a person runs logs readable lines in a terminal
  const format = logFormat(config, !SERVICES.has(name!))
  const log = createLogger(config, { format })
  return command({ config, log, logFormat: format, args: rest, flags: values })
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
