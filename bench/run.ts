// `npm run bench`: every figure of the issues, with the machine and the ceilings beside it.
// Each benchmark runs on its own database and HPH_PREFIX and removes them afterwards.
import { batchesBench } from './batches.ts'
import { httpIngestBench } from './http-ingest.ts'
import { endToEndBench } from './end-to-end.ts'
import { rebuildBench } from './rebuild.ts'
import { scalingBench } from './scaling.ts'
import { healthkitImportBench } from './healthkit-import.ts'
import { beatsBench } from './beats.ts'

const only = process.argv[2]
const benches: Record<string, () => Promise<void>> = {
  batches: batchesBench,
  'http-ingest': httpIngestBench,
  'end-to-end': endToEndBench,
  rebuild: rebuildBench,
  scaling: scalingBench,
  'healthkit-import': healthkitImportBench,
  beats: beatsBench,
}
for (const [name, run] of Object.entries(benches)) {
  if (only && only !== name) continue
  process.stdout.write(`\n== ${name}\n`)
  await run()
}
