import { defineConfig } from 'vitest/config';

// Native addons and the `threads` pool do not mix: every test file runs
// in its own child process.
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    exclude: ['test/win/**', 'node_modules/**'],
    testTimeout: 30000,
    hookTimeout: 30000,
    maxWorkers: 2,
  },
});
