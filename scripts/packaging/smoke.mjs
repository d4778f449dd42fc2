// Smoke test through ESM: `import ... from 'simple-ipc'` from the project
// this file is copied into. Prints one JSON line (see smoke-lib.cjs).
import { createRequire } from 'node:module';
import * as ipc from 'simple-ipc';
import ipcDefault, { createServer, QUIT } from 'simple-ipc';
import smokeLib from './smoke-lib.cjs';

const require = createRequire(import.meta.url);
const resolved = import.meta.resolve('simple-ipc');
// The ESM entry is its own file (dist/index.mjs) that re-exports the
// CommonJS build: one instance for both module systems.
if (!resolved.endsWith('/dist/index.mjs')) throw new Error(`import resolved to ${resolved}`);
if (ipcDefault.createServer !== createServer || require('simple-ipc').createServer !== createServer || ipc.QUIT !== QUIT) {
  throw new Error('import and require gave different instances');
}
await smokeLib.runSmoke(ipc, 'import', require.resolve('simple-ipc'));
