// The house's import rules (docs/architecture.md §10): imports run downward only, and no cycles.
// `npm run lint:imports` checks them; test/unit/house/imports.test.ts runs the same rules.

/** The rooms from the top down: a room imports only rooms below it (or, on one line, beside it). */
export const ROOMS = [['cli'], ['pipeline'], ['api'], ['processors', 'projections', 'privacy', 'ingest'], ['streams', 'schema'], ['config.ts', 'log.ts', 'errors.ts']]

/** Imports the rules allow for now, each with the reason; a file named here that no longer exists fails the test. */
export const EXCEPTIONS = []

const pathOf = (room) => (room.endsWith('.ts') ? `^${room.replace('.', '\\.')}$` : `^${room}/`)
const exempt = EXCEPTIONS.map((e) => `^${e.from.replaceAll('.', '\\.')}$`)

const upward = ROOMS.flatMap((line, i) =>
  line
    .map((room) => ({
      name: `upward-from-${room}`,
      comment: `${room} imports only the rooms below it`,
      severity: 'error',
      from: { path: pathOf(room), pathNot: exempt },
      to: { path: ROOMS.slice(0, i).flat().map(pathOf) },
    }))
    .filter((rule) => rule.to.path.length > 0),
)

/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    { name: 'no-circular', comment: 'a cycle means two files that cannot be understood apart', severity: 'error', from: {}, to: { circular: true } },
    ...upward,
    {
      name: 'cli-not-api',
      comment: 'cli and api never import each other: the pipeline starts the api for `hph up`',
      severity: 'error',
      from: { path: '^cli/' },
      to: { path: '^api/' },
    },
    { name: 'processor-not-projection', comment: 'a processor never imports a projection', severity: 'error', from: { path: '^processors/' }, to: { path: '^projections/' } },
    {
      name: 'projection-not-processor',
      comment: 'projections write what processors publish; they share only streams/ and schema/',
      severity: 'error',
      from: { path: '^projections/' },
      to: { path: '^processors/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: ['^node_modules/', '^test/', '^bench/', '^dist/', '^coverage/', '^test-output/', '^infra/'] },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs'] },
  },
}
