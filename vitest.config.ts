import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    projects: [
      // pure and fast, but a shared 2-core machine can stall a thread or a property run for seconds
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 30_000 } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          // real NATS and PostgreSQL on a 2-core machine: one file at a time, generous timeouts
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
})
