#!/usr/bin/env node
// Loads the TypeScript CLI in-process through tsx, so `npx hph …` works right after
// `npm ci` and signals (SIGTERM) reach the pipeline directly.
import { register } from 'tsx/esm/api'

register()
await import('../cli/hph.ts')
