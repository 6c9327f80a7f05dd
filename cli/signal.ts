import type { Logger } from '../log.ts'

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
