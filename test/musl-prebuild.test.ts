// The musl prebuilds (prebuilds/linux-<arch>/simple-ipc.musl.node, beside
// the glibc simple-ipc.node): node-gyp-build, which loads the addon
// (lib/native.ts), picks the musl file on a musl system and never on a
// glibc one. node-gyp-build tells the two by its LIBC variable (on a real
// system: whether /etc/alpine-release exists); it only resolves the path
// here, as Node itself on musl cannot run on this machine.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { repoRoot, tempDir } from './helpers.js';

import { addonPath, ZIG_TARGETS } from '../scripts/prebuild/targets.mjs';

function chosen(root: string, libc: string, arch: string): string {
  const r = spawnSync(process.execPath, ['-e', `process.stdout.write(require('node-gyp-build').path(${JSON.stringify(root)}))`], {
    cwd: repoRoot,
    env: { ...process.env, LIBC: libc, PREBUILDS_ONLY: '1', npm_config_arch: arch },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return path.relative(path.join(root, 'prebuilds'), r.stdout);
}

describe('musl prebuilds', () => {
  it.runIf(process.platform === 'linux')('node-gyp-build picks simple-ipc.musl.node on musl and simple-ipc.node on glibc, on x64 and arm64', () => {
    const root = tempDir('sipc-musl-');
    const targets = ZIG_TARGETS as Record<string, { os: string }>;
    const linux = Object.keys(targets).filter((t) => targets[t]!.os === 'linux');
    expect(linux.sort()).toEqual(['linux-arm64', 'linux-arm64-musl', 'linux-x64', 'linux-x64-musl']);
    for (const t of linux) {
      const file = path.join(root, 'prebuilds', (addonPath as (t: string) => string)(t));
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, t); // only the name is read
    }
    for (const arch of ['x64', 'arm64']) {
      expect(chosen(root, 'musl', arch)).toBe(path.join(`linux-${arch}`, 'simple-ipc.musl.node'));
      expect(chosen(root, 'glibc', arch)).toBe(path.join(`linux-${arch}`, 'simple-ipc.node'));
    }
  });
});
