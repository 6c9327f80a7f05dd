import { loadDemo, type DemoLoad } from '../../cli/demo.ts'
import type { Pipeline } from '../../pipeline/start.ts'

/**
 * The demo data set as docs/analysts.md describes it: `hph demo`'s data as of this day (ana's 75 nights
 * and ben's 21 end two days before it), so every date in the doc's results is fixed.
 */
export const DOC_DEMO_TODAY = new Date('2026-11-01T12:00:00Z')

export function loadDocDemo(p: Pipeline, token?: string): Promise<DemoLoad> {
  return loadDemo(p, { today: DOC_DEMO_TODAY, ...(token ? { token } : {}) })
}
