import { pino, type Logger, type LoggerOptions } from 'pino'
import type { Config } from './config.ts'

export type { Logger }

/** `json`: one JSON object a line (services, pipes, files); `pretty`: a readable line for a person at a terminal. */
export type LogFormat = 'json' | 'pretty'

/**
 * HPH_LOG_FORMAT, with `auto` decided here: readable lines for an interactive command (the demo, status, import…)
 * whose output is a terminal; JSON for the services (`up`, `worker`) and whenever the output is not a terminal.
 */
export function logFormat(config: Pick<Config, 'HPH_LOG_FORMAT'>, interactive: boolean, tty = Boolean(process.stdout.isTTY)): LogFormat {
  if (config.HPH_LOG_FORMAT !== 'auto') return config.HPH_LOG_FORMAT
  return interactive && tty ? 'pretty' : 'json'
}

/** The process logger; stages take `log.child({ stage })`. Never log sample values or tokens. */
export function createLogger(config: Pick<Config, 'LOG_LEVEL'>, opts: { format?: LogFormat } = {}): Logger {
  const options: LoggerOptions = {
    level: config.LOG_LEVEL,
    base: { service: 'hph' },
    redact: { paths: ['req.headers.authorization', 'headers.authorization'], censor: '[redacted]' },
  }
  if (opts.format !== 'pretty') return pino(options)
  // pino-pretty on pino's transport thread: the time, the level, the stage and the message on one line
  return pino({
    ...options,
    transport: {
      target: 'pino-pretty',
      options: {
        colorize: true,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname,service,stage',
        singleLine: true,
        messageFormat: '{if stage}[{stage}] {end}{msg}',
        hideObject: false,
      },
    },
  })
}
