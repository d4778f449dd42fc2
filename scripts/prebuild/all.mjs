#!/usr/bin/env node
// npm run prebuild:all -- every prebuilt binary the package ships, from
// the current sources, then the checks of check-binaries.mjs:
//   1. linux-x64, linux-arm64, darwin-x64, darwin-arm64 and the musl
//      linux-x64-musl, linux-arm64-musl with `zig c++`
//      (build.mjs; records each in prebuilds/manifest.json)
//   2. win32-x64 with MinGW-w64 (npm run build:win), then recorded too
//   3. the native client simple-ipc-send for all five (cli.mjs, zig)
//   4. node scripts/prebuild/check-binaries.mjs (every file)
// Commit prebuilds/ afterwards: CI checks that the manifest matches the
// sources (node scripts/prebuild/manifest.mjs check).
import { spawnSync } from 'node:child_process';
import { ROOT } from '../build/sources.mjs';

const started = Date.now();
const step = (label, cmd, args) => {
  const t0 = Date.now();
  console.log(`[prebuild:all] ${label}: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit' });
  const secs = ((Date.now() - t0) / 1000).toFixed(0);
  if (r.status !== 0) {
    console.error(`[prebuild:all] ${label} failed after ${secs} s`);
    process.exit(1);
  }
  console.log(`[prebuild:all] ${label}: ${secs} s`);
};
step('zig targets', process.execPath, ['scripts/prebuild/build.mjs']);
step('win32-x64', 'npm', ['run', '--silent', 'build:win']);
step('record win32-x64', process.execPath, ['scripts/prebuild/manifest.mjs', 'record', 'win32-x64']);
step('simple-ipc-send', process.execPath, ['scripts/prebuild/cli.mjs']);
step('check', process.execPath, ['scripts/prebuild/check-binaries.mjs']);
console.log(`[prebuild:all] all five platforms' prebuilds in ${((Date.now() - started) / 1000).toFixed(0)} s; commit prebuilds/`);
