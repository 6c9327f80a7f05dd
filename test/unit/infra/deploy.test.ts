import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse, parseAllDocuments } from 'yaml'
import { STAGES } from '../../../pipeline/start.ts'

// docs/operating.md §8: what can be checked of the deploy artefacts on a machine without a Docker engine or a
// Kubernetes cluster: they parse, they run the command the tests run, and they name every stage.

const root = join(import.meta.dirname, '../../..')
const read = (path: string) => readFileSync(join(root, path), 'utf8')
const WORKERS = ['api', ...STAGES]

type Doc = { kind?: string; metadata?: { name?: string }; spec?: Record<string, unknown> } & Record<string, unknown>
interface Container {
  args?: string[]
  readinessProbe?: { httpGet: { path: string } }
  livenessProbe?: { httpGet: { path: string } }
  resources?: { requests?: { cpu?: string }; limits?: { memory?: string } }
}
interface Service {
  command?: string[]
  image?: string
  build?: { dockerfile?: string }
  environment?: Record<string, string>
  volumes?: string[]
}
const manifests = (): Doc[] =>
  readdirSync(join(root, 'infra/k8s'))
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) =>
      parseAllDocuments(read(`infra/k8s/${f}`)).map((d) => {
        expect(d.errors, f).toEqual([])
        return d.toJS() as Doc
      }),
    )

describe('the image', () => {
  const dockerfile = read('Dockerfile')
  /** the Dockerfile's stages, each with its FROM line and its instructions */
  const stages = dockerfile
    .split(/^(?=FROM )/m)
    .filter((s) => s.startsWith('FROM '))
    .map((text) => ({ from: /^FROM (\S+)/.exec(text)![1]!, name: /^FROM \S+ AS (\S+)/.exec(text)?.[1], text }))
  const copies = (text: string) => [...text.matchAll(/^COPY (.+) \S+$/gm)].map((m) => m[1]!.split(' '))
  const final = stages.at(-1)!

  it('is built in stages on Node 24, the current LTS', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2)
    for (const s of stages) expect(s.from).toMatch(/^node:24[-.]/)
  })

  it('runs the build with node alone as an unprivileged user, `up` by default', () => {
    expect(JSON.parse(/^ENTRYPOINT (.+)$/m.exec(final.text)?.[1] ?? 'null')).toEqual(['node', 'dist/cli/hph.js'])
    expect(JSON.parse(/^CMD (.+)$/m.exec(final.text)?.[1] ?? 'null')).toEqual(['up'])
    const user = /^USER (\S+)$/m.exec(final.text)?.[1]
    expect(user).toBeDefined()
    expect(['root', '0']).not.toContain(user)
    expect(final.text).not.toMatch(/^RUN /m)
  })

  it('holds only what runs: package.json, the built dist/ and the dependencies installed without the development ones', () => {
    const sources = copies(final.text).map((args) => args.join(' '))
    const deps = stages.find((s) => s.name && sources.includes(`--from=${s.name} /app/node_modules`))
    const build = stages.find((s) => s.name && sources.includes(`--from=${s.name} /app/dist`))
    expect(sources.sort()).toEqual([`--from=${build?.name} /app/dist`, `--from=${deps?.name} /app/node_modules`, 'package.json'].sort())
    expect(deps?.text).toMatch(/^RUN npm ci --omit=dev /m)
    expect(build?.text).toMatch(/^RUN npm run build$/m)
  })

  it('builds from every file the running program is made of (everything tracked but tests, benches, infra, docs and the tsx entries)', () => {
    const build = stages.find((s) => /^RUN npm run build$/m.test(s.text))!
    const copied = copies(build.text)
      .flat()
      .filter((p) => !p.startsWith('--'))
    const tracked = execFileSync('git', ['ls-files'], { cwd: root, encoding: 'utf8' }).split('\n').filter(Boolean)
    const runtime = tracked.filter(
      (f) => /\.(ts|js|json|html|css)$/.test(f) && !/^(test|bench|infra|docs|bin|\.ci)\//.test(f) && !/^(eslint\.config\.js|vitest\.config\.ts|\.prettierrc\.json)$/.test(f),
    )
    const missing = runtime.filter((f) => !copied.some((c) => f === c || f.startsWith(`${c.replace(/\/$/, '')}/`)))
    expect(missing).toEqual([])
  })
})

describe('the Kubernetes manifests', () => {
  it('parse, and run one Deployment per stage on the image with `worker <stage>`, probed on /readyz and /healthz, with resources', () => {
    const docs = manifests()
    const deployments = docs.filter((d) => d.kind === 'Deployment')
    expect(deployments.map((d) => d.metadata?.name).sort()).toEqual(WORKERS.map((s) => `hph-${s}`).sort())
    for (const d of deployments) {
      const stage = d.metadata!.name!.replace(/^hph-/, '')
      const pod = (d.spec as { template: { spec: { containers: Container[] } } }).template.spec
      const [c] = pod.containers
      expect(c?.args).toEqual(['worker', stage])
      expect(c?.readinessProbe?.httpGet.path).toBe('/readyz')
      expect(c?.livenessProbe?.httpGet.path).toBe('/healthz')
      expect(c?.resources?.requests?.cpu).toBeDefined()
      expect(c?.resources?.limits?.memory).toBeDefined()
    }
  })

  it('keep an instance of every stage through voluntary disruptions (a PodDisruptionBudget each) and prepare the storage once (a Job)', () => {
    const docs = manifests()
    const labels = (d: Doc) => JSON.stringify((d.spec as { selector: { matchLabels: unknown } }).selector.matchLabels)
    const budgets = new Set(docs.filter((d) => d.kind === 'PodDisruptionBudget').map(labels))
    for (const d of docs.filter((x) => x.kind === 'Deployment')) expect(budgets.has(labels(d)), d.metadata?.name).toBe(true)
    const job = docs.find((d) => d.kind === 'Job')
    const pod = (job?.spec as { template: { spec: { initContainers: Array<{ args: string[] }>; containers: Array<{ args: string[] }> } } }).template.spec
    expect([...pod.initContainers, ...pod.containers].map((c) => c.args)).toEqual([['migrate'], ['streams', 'apply']])
  })
})

describe('infra/compose.yaml', () => {
  it('parses, builds the image, and runs three NATS nodes of infra/nats-cluster/node.conf, R3 streams and every stage', () => {
    const compose = parse(read('infra/compose.yaml'), { merge: true }) as { services: Record<string, Service> }
    const s = compose.services
    for (const stage of WORKERS) expect(s[stage]?.command, stage).toEqual(['worker', stage])
    expect(s.api?.build?.dockerfile).toBe('Dockerfile')
    const nodes = Object.entries(s).filter(([, v]) => String(v.image).startsWith('nats:'))
    expect(nodes.map(([, v]) => v.environment?.HPH_NATS_NAME).sort()).toEqual(['n1', 'n2', 'n3'])
    for (const [, v] of nodes) expect(v.volumes?.[0]).toBe('./nats-cluster/node.conf:/etc/nats/node.conf:ro')
    expect(s.api?.environment?.HPH_STREAM_REPLICAS).toBe('3')
    expect(String(s.api?.environment?.NATS_URL).split(',')).toHaveLength(3)
  })
})

describe('credentials', () => {
  it('ship with no value anywhere in infra/: Kubernetes references a Secret the operator creates, compose takes them from the environment', () => {
    const docs = manifests()
    expect(docs.filter((d) => d.kind === 'Secret')).toEqual([])
    for (const d of docs.filter((x) => x.kind === 'ConfigMap')) {
      expect(Object.keys((d as { data?: Record<string, string> }).data ?? {}).filter((k) => /KEY|SECRET|PASSWORD|DATABASE_URL/.test(k))).toEqual([])
    }
    const compose = parse(read('infra/compose.yaml'), { merge: true }) as { services: Record<string, Service> }
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const [k, v] of Object.entries(svc.environment ?? {})) {
        if (/KEYS|SECRET|PASSWORD/.test(k)) expect(v, `${name} ${k}`).toMatch(/^\$\{[A-Z_]+:\?/)
        if (k === 'DATABASE_URL') expect(v, `${name} ${k}`).toMatch(/^postgres:\/\/postgres:\$\{POSTGRES_PASSWORD:\?/)
        expect(String(v), `${name} ${k}`).not.toMatch(/^trust$/)
      }
    }
  })
})
