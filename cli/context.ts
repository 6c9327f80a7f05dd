import type { Config } from '../config.ts'
import type { LogFormat, Logger } from '../log.ts'
import type { JetStreamWait } from '../streams/connect.ts'
import { START_WAIT_MS } from '../streams/transient.ts'

// What every `hph` command is given, in a file of its own so that the commands and the table of them
// (cli/commands.ts) do not import each other.

export interface CommandContext {
  config: Config
  log: Logger
  /** how `log` writes: with `pretty` (a person at a terminal) the api's request logs are at debug */
  logFormat: LogFormat
  args: string[]
  flags: Record<string, string | boolean | undefined>
}

export type Command = (ctx: CommandContext) => Promise<number>

/**
 * How a command waits for JetStream when connecting (connectNats: up to START_WAIT_MS while it answers "unavailable" or
 * "not enabled"): saying so once on stderr, so that a command run against a server whose JetStream is away or off
 * does not sit silent for a minute (stdout stays the command's output, `--json` included).
 */
export function jetStreamWait(command: string): JetStreamWait {
  let told = false
  return {
    onWait(err) {
      if (told) return
      told = true
      const why = err instanceof Error ? err.message : String(err)
      process.stderr.write(`hph ${command}: JetStream does not answer yet (${why}): waiting up to ${START_WAIT_MS / 1000} s for it\n`)
    },
  }
}
