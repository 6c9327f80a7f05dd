// The entry of the thread that parses an export (reader-thread.ts): a worker thread does not inherit the
// parent's TypeScript loader, so it registers tsx itself before loading the TypeScript.
import { register } from 'tsx/esm/api'

register()
await import('./parse-thread.ts')
