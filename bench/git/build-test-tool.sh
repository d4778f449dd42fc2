#!/usr/bin/env bash
# Build Git's t/helper/test-tool (the reference for `npm run bench`) from
# the Debian source package of the git installed here, OUTSIDE this
# repository:
#
#   bash bench/git/build-test-tool.sh [DIR]
#
# DIR defaults to $HOME/.cache/simple-ipc-bench/git, which is where
# bench/run.mjs looks when GIT_TEST_TOOL is not set. The result is
# DIR/test-tool (a copy of DIR/git-<version>/t/helper/test-tool).
#
# Needs: a deb-src line for the configured Debian suite (the script says
# how to add one if `apt-get source` finds none), dpkg-dev, make, a C
# compiler, zlib headers (zlib1g-dev). Nothing of Git's is installed or
# committed: Git is GPL-2.0, we only build and run it for comparison.
# A minimal build: no OpenSSL, curl, expat, gettext, Tcl/Tk, Perl,
# Python (test-tool simple-ipc needs none of them).
set -euo pipefail

dir=${1:-${HOME}/.cache/simple-ipc-bench/git}
repo=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(realpath -m "$dir")
case "$dir/" in
  "$repo"/*) echo "build-test-tool: $dir is inside the repository; give a directory outside it" >&2; exit 2 ;;
esac
mkdir -p "$dir"
cd "$dir"

# 1. The source package, unpacked with Debian's patches applied.
src=$(find . -maxdepth 1 -type d -name 'git-[0-9]*' | sort | tail -n 1)
if [ -z "$src" ]; then
  if ! ls git_*.dsc >/dev/null 2>&1; then
    if ! apt-get source --download-only git; then
      cat >&2 <<'HINT'
build-test-tool: `apt-get source git` failed. Add a deb-src entry for the
configured suite, e.g. /etc/apt/sources.list.d/debian-src.sources:
  Types: deb-src
  URIs: http://deb.debian.org/debian
  Suites: bookworm bookworm-updates
  Components: main
  Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
then `apt-get update` and run this script again.
HINT
      exit 1
    fi
  fi
  dpkg-source -x "$(ls git_*.dsc | sort | tail -n 1)"
  src=$(find . -maxdepth 1 -type d -name 'git-[0-9]*' | sort | tail -n 1)
fi
echo "build-test-tool: source $dir/${src#./}"

# 2. Only test-tool (it links libgit.a, xdiff, reftable; 5 to 15 minutes
#    on 2 cores).
jobs=$(nproc 2>/dev/null || echo 2)
nice -n 10 make -C "$src" -j"$jobs" \
  NO_OPENSSL=1 NO_CURL=1 NO_EXPAT=1 NO_GETTEXT=1 NO_TCLTK=1 NO_PERL=1 NO_PYTHON=1 \
  CFLAGS='-O2' \
  t/helper/test-tool GIT-BUILD-OPTIONS

# What Git's test library needs to run t0052 with the installed git
# (GIT-BUILD-OPTIONS above, the default templates here): used by
# bench/git/t0052-native.sh.
make -C "$src/templates" --no-print-directory NO_PERL=1 >/dev/null

cp "$src/t/helper/test-tool" "$dir/test-tool"
"$dir/test-tool" simple-ipc SUPPORTS_SIMPLE_IPC
echo "build-test-tool: $dir/test-tool (GIT_TEST_TOOL=$dir/test-tool npm run bench)"
