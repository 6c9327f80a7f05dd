import cliProgress from 'cli-progress'

/**
 * A progress bar on stderr with `format` (cli-progress tokens): redrawn on a terminal; in a log file or a
 * CI console, a line now and then instead.
 */
export function stderrBar(format: string): cliProgress.SingleBar {
  return new cliProgress.SingleBar(
    { format, etaBuffer: 50, fps: 5, stream: process.stderr, noTTYOutput: true, notTTYSchedule: 5000, hideCursor: true },
    cliProgress.Presets.shades_classic,
  )
}
