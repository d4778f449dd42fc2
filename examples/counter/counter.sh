#!/bin/sh
# The counter's client for hooks, editors and scripts that run it often:
# the native client (simple-ipc-send, no Node.js) answers a warm call in a
# few milliseconds. Only when no daemon listens (its exit code 2, after
# which nothing was sent or printed) does this hand the request to
# client.js, which starts the daemon (autoStart) and sends it.
#
#   SIMPLE_IPC_SEND=$(npx simple-ipc-send --which) COUNTER_SOCKET=... ./counter.sh incr builds
#
# SIMPLE_IPC_SEND: the native program (look it up once: `simple-ipc-send
# --which` starts Node.js). Without it, or without a socket path given
# (COUNTER_SOCKET, or $XDG_RUNTIME_DIR/counter.ipc, where client.js puts it
# too), every call goes through client.js.
here=$(dirname "$0")
sock=${COUNTER_SOCKET:-${XDG_RUNTIME_DIR:+$XDG_RUNTIME_DIR/counter.ipc}}
if [ -n "${SIMPLE_IPC_SEND:-}" ] && [ -n "$sock" ] && [ $# -gt 0 ]; then
  "$SIMPLE_IPC_SEND" "$sock" "$*" 2>/dev/null
  rc=$?
  case $rc in
    0) echo; exit 0 ;;  # client.js prints a newline after the answer too
    2) ;;               # no daemon: client.js starts it
    *) exit "$rc" ;;
  esac
fi
exec node "$here/client.js" "$@"
