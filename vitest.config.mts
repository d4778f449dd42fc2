import { defineConfig } from 'vitest/config';

// Native addons and the `threads` pool do not mix: every test file runs
// in its own child process.
//
// The timeouts only catch a test that hangs; they are not speed checks
// (those live in bench/). They leave room for a machine busy with other
// work (scripts/test-steps/15-vitest-under-load.sh): the command line and
// demo tests start dozens of processes and move tens of megabytes, and
// under load they take several times their idle 10 to 20 seconds.
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    exclude: ['test/win/**', 'node_modules/**'],
    testTimeout: 120000,
    hookTimeout: 60000,
    maxWorkers: 2,
  },
});
