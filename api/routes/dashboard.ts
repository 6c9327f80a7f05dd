import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance } from 'fastify'

// docs/operating.md §10: GET / serves the dashboard (api/dashboard/: plain HTML, CSS and an ES module, no build step)
// and the one file of Chart.js it draws with, from node_modules: nothing is fetched from elsewhere at run
// time. These files hold no data, so they need no token; the page sends its token on every data fetch.

const PAGES = join(dirname(fileURLToPath(import.meta.url)), '..', 'dashboard')
/** Chart.js's standalone build (it sets window.Chart; the ESM build would need an import map for its one dependency) */
export const CHART_FILE = 'chart.umd.min.js'
const CHART_DIR = dirname(createRequire(import.meta.url).resolve('chart.js'))

export async function dashboardRoutes(app: FastifyInstance): Promise<void> {
  // one route per file of the folder (no wildcard: an unknown URL stays the api's 404, labelled `unmatched`)
  await app.register(fastifyStatic, { root: PAGES, prefix: '/', index: 'index.html', wildcard: false, schemaHide: false })
  app.get(`/vendor/${CHART_FILE}`, { schema: { tags: ['dashboard'], summary: 'Chart.js, which the dashboard draws with' } }, (_req, reply) => reply.sendFile(CHART_FILE, CHART_DIR))
}
