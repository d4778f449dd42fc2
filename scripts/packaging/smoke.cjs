// Smoke test through CommonJS: `require('simple-ipc')` from the project
// this file is copied into. Prints one JSON line (see smoke-lib.cjs).
'use strict';
const ipc = require('simple-ipc');
const { runSmoke } = require('./smoke-lib.cjs');

runSmoke(ipc, 'require', require.resolve('simple-ipc')).catch((error) => {
  console.error(error);
  process.exit(1);
});
