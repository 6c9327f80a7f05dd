import { pino, type Logger } from 'pino'
import type { Config } from './config.ts'

export type { Logger }

/** The process logger; stages take `log.child({ stage })`. Never log sample values or tokens. */
export function createLogger(config: Pick<Config, 'LOG_LEVEL'>): Logger {
  return pino({
    level: config.LOG_LEVEL,
    base: { service: 'hph' },
    redact: { paths: ['req.headers.authorization', 'headers.authorization'], censor: '[redacted]' },
  })
}
