import { defineConfig } from 'vitest/config'

// nats-server reserves each stream's max_bytes on its store: the many test environments sharing one server stay small
const STREAM_BYTES = String(256 * 1024 * 1024)

export default defineConfig({
  test: {
    // every test and the processes it starts (they inherit the environment); short keys are the tests' own
    env: {
      HPH_ALLOW_SHORT_KEYS: 'true',
      HPH_USER_REF_SECRET: 'test-user-ref-secret-0123456789abcdef',
      HPH_INGEST_MAX_BYTES: STREAM_BYTES,
      HPH_SAMPLES_MAX_BYTES: STREAM_BYTES,
      HPH_CHANGES_MAX_BYTES: STREAM_BYTES,
      HPH_INSIGHTS_MAX_BYTES: STREAM_BYTES,
      HPH_DLQ_MAX_BYTES: STREAM_BYTES,
      HPH_AUDIT_MAX_BYTES: STREAM_BYTES,
    },
    projects: [
      // pure and fast, but a shared 2-core machine can stall a thread or a property run for seconds
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 30_000 } },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          // the streams an earlier run crashed before deleting, reserving the store's space (test/helpers/sweep.ts)
          globalSetup: ['test/helpers/sweep.ts'],
          // real NATS and PostgreSQL on a 2-core machine: one file at a time, generous timeouts
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
})
