#!/usr/bin/env bash
# Runs Git's own t0052-simple-ipc.sh (from the source tree that
# bench/git/build-test-tool.sh unpacked, outside this repository) with our
# native client, simple-ipc-send, in place of Git's client in every `send`
# and `sendbytes` case; Git's test-tool still runs its daemon and the
# other cases:
#
#   bash bench/git/t0052-native.sh [SIMPLE_IPC_SEND [DIR]]
#
# SIMPLE_IPC_SEND: the program (default build/cli/simple-ipc-send, built
# first with scripts/prebuild/cli.mjs --host if missing). DIR: where
# build-test-tool.sh put Git (default $HOME/.cache/simple-ipc-bench/git).
# The Git that runs the test library is the installed one
# (GIT_TEST_INSTALLED), which must be the version of the source tree.
#
# A wrapper named test-tool comes first on the test's PATH: it turns
# `test-tool simple-ipc send --name=N --token=T` into `simple-ipc-send N T`
# and prints the response and a newline, as Git's helper does; sendbytes
# sends "sendbytes " and the ballast through stdin (`simple-ipc-send N -`)
# and prints Git's `sent:` line. Everything else goes to Git's test-tool.
# Exits with the test script's status; fails if the wrapper never ran the
# native client.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
send=${1:-$repo/build/cli/simple-ipc-send}
dir=${2:-$HOME/.cache/simple-ipc-bench/git}
if [ ! -x "$send" ]; then
  node "$repo/scripts/prebuild/cli.mjs" --host --out="$repo/build/cli" >/dev/null
  send=$repo/build/cli/simple-ipc-send
fi
src=$(find "$dir" -maxdepth 1 -type d -name 'git-[0-9]*' | sort | tail -n 1)
tool=$dir/test-tool
[ -n "$src" ] && [ -x "$tool" ] || { echo "t0052-native: no Git source or test-tool under $dir (run bench/git/build-test-tool.sh)" >&2; exit 2; }
want=$(basename "$src"); want=${want#git-}
have=$(git --version | sed 's/^git version //')
[ "$want" = "$have" ] || echo "t0052-native: warning: installed git $have, source $want" >&2

work=$(mktemp -d "${TMPDIR:-/tmp}/sipc-t0052.XXXXXX")
trap 'rm -rf "$work"' EXIT
ln -s "$(command -v git)" "$work/git"
log=$work/native-calls
: >"$log"
cat >"$work/test-tool" <<WRAPPER
#!/bin/sh
if [ "\$1" = simple-ipc ] && { [ "\$2" = send ] || [ "\$2" = sendbytes ]; }; then
  cmd=\$2
  shift 2
  name=ipc-test token='(no-command)' bytecount=1024 byte=x
  for a in "\$@"; do
    case \$a in
      --name=*) name=\${a#--name=} ;;
      --token=*) token=\${a#--token=} ;;
      --bytecount=*) bytecount=\${a#--bytecount=} ;;
      --byte=*) byte=\${a#--byte=} ;;
      *) echo "t0052-native wrapper: unsupported \$a" >&2; exit 129 ;;
    esac
  done
  echo "\$cmd" >>"$log"
  out=\$(mktemp)
  if [ "\$cmd" = send ]; then
    "$send" "\$name" "\$token" >"\$out"
    rc=\$?
    [ \$rc -eq 0 ] && { cat "\$out"; echo; }
  else
    byte=\$(printf '%s' "\$byte" | cut -c1)
    { printf 'sendbytes '; head -c "\$bytecount" /dev/zero | tr '\\0' "\$byte"; } | "$send" "\$name" - >"\$out"
    rc=\$?
    # The response without trailing whitespace, as Git's helper prints it.
    [ \$rc -eq 0 ] && printf 'sent:%s%08d %s\n' "\$byte" "\$bytecount" "\$(cat "\$out")"
  fi
  rm -f "\$out"
  exit \$rc
fi
exec "$tool" "\$@"
WRAPPER
chmod +x "$work/test-tool"

status=0
(cd "$src/t" && GIT_TEST_INSTALLED=$work TEST_OUTPUT_DIRECTORY=$work sh t0052-simple-ipc.sh -v) || status=$?
calls=$(wc -l <"$log")
echo "t0052-native: $calls requests sent by $send ($(sort "$log" | uniq -c | tr -s ' ' | tr '\n' ','))"
[ "$calls" -gt 0 ] || { echo "t0052-native: the native client never ran" >&2; exit 1; }
exit $status
