import { spawn, type ChildProcess } from 'node:child_process'
import { onTestFailed } from 'vitest'

// Test-only: `hph` commands as child processes (the CLI a user runs), with their output kept for a failing test.

export interface Child {
  child: ChildProcess
  /** resolves when the process has exited, with when */
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>
  output(): string
}

/**
 * What runs `hph` in the tests: the sources through tsx's loader, in the one process (signals reach the CLI
 * itself), so a test never runs a stale build. The build itself is tested in test/integration/dist.test.ts.
 */
export const HPH_ENTRY = ['--import', 'tsx', 'cli/hph.ts']

/** Runs `hph <args>` from the sources and adds it to `owner`, whose test kills what is left. */
export function spawnHph(args: string[], env: Record<string, string>, owner: Child[], run: { entry?: readonly string[]; cwd?: string } = {}): Child {
  const child = spawn(process.execPath, [...(run.entry ?? HPH_ENTRY), ...args], {
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(run.cwd ? { cwd: run.cwd } : {}),
  })
  let out = ''
  const keep = (d: Buffer) => (out = (out + d.toString()).slice(-20_000))
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  )
  const c = { child, exit, output: () => out }
  owner.push(c)
  return c
}

/** Runs `hph <args>` (from the sources) to its end: its exit code, and what it wrote (both streams in `out`, in order). */
export function runHph(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [...HPH_ENTRY, ...args], { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString()
    stdout += d.toString()
  })
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString()
    stderr += d.toString()
  })
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, out, stdout, stderr })))
}

/** Prints what the process wrote when the running test fails. */
export function showOnFailure(c: Child, name: string): void {
  onTestFailed(() => console.error(`── output of ${name} (last 20 kB) ──\n${c.output()}`))
}

export const alive = (c: Child): boolean => c.child.exitCode === null && c.child.signalCode === null

/** The exit of `c`, or an error after `ms`. */
export async function exitWithin(c: Child, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`the process did not exit within ${ms} ms`)), ms)))
  try {
    return await Promise.race([c.exit, late])
  } finally {
    clearTimeout(timer)
  }
}

/** SIGKILLs whatever of `children` still runs and waits for every exit (after each test). */
export async function killAll(children: Child[]): Promise<void> {
  for (const c of children.splice(0)) {
    if (alive(c)) c.child.kill('SIGKILL')
    await c.exit
  }
}
