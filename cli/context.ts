import type { Config } from '../config.ts'
import type { LogFormat, Logger } from '../log.ts'

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
