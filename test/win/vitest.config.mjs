// The Windows suite (named pipes): vitest, run under Wine's node.exe by
// `npm run test:win` (scripts/win/test.sh), or on Windows with
// `npx vitest run --config test/win/vitest.config.mjs`.
//
// Plain .mjs, loaded by Node itself (--configLoader native in test.sh) and
// test files imported by Node (no Vite module runner, no loader hooks:
// the suite uses neither vi.mock nor in-source tests): under Wine, Vite's
// bundler runs as WebAssembly (see test.sh), which cannot see the Windows
// drives. All files run one after another in one process: under Wine
// every process start costs seconds. The timeouts only catch hangs.
import { fileURLToPath } from 'node:url';

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../..', import.meta.url)),
    include: ['test/win/**/*.test.mjs'],
    pool: 'forks',
    maxWorkers: 1,
    isolate: false,
    testTimeout: 60000,
    hookTimeout: 60000,
    experimental: { viteModuleRunner: false, nodeLoader: false },
  },
});
