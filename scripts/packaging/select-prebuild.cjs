// Prints the addon file node-gyp-build picks for the installed simple-ipc
// (run from the app directory). node-gyp-build takes the platform and CPU
// from npm_config_platform / npm_config_arch when set, so the caller can
// ask which file a Mac or an arm64 machine would get; with
// ELECTRON_RUN_AS_NODE=1 it looks for runtime=electron, and the prebuild's
// name (no runtime or ABI tag) must match these Electron ABIs too.
'use strict';
const path = require('node:path');
const ngb = require('node-gyp-build');

const dir = path.dirname(require.resolve('simple-ipc/package.json'));
const tags = ngb.parseTags('simple-ipc.node');
for (const abi of ['119', '125', '130', '136', '140']) {
  if (!ngb.matchTags('electron', abi)(tags)) throw new Error(`no match for electron abi ${abi}`);
}
console.log(ngb.path(dir));
