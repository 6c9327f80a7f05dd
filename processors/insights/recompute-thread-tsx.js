// The entry of the recompute thread when running from the TypeScript sources (recompute-thread.ts): a worker thread
// does not inherit the parent's TypeScript loader, so it registers tsx itself first. The build (dist/) never loads this.
import { register } from 'tsx/esm/api'

register()
await import('./recompute-thread-entry.ts')
