#!/usr/bin/env node
// A counter daemon: keeps named counters in memory for its command-line
// client (client.js), which starts it on demand. The shape of a warm
// linter, formatter or indexing daemon, minus the work.
//
//   node daemon.js [--replace]
//
// Socket: $COUNTER_SOCKET, default defaultSocketPath('counter').
// SIGINT, SIGTERM, SIGHUP: closes gracefully, removing the socket file.
// Requests: "incr <name>" -> the new value; "get <name>" -> the value;
// "stats" -> JSON (with the server's own counters); "quit" -> stops.
// Exits by itself once no client connected for $COUNTER_IDLE_MS (default
// 600000).
// Under systemd (counter.socket) it serves the socket systemd passes.
// --replace: takes over from a running daemon (an upgrade).
const { createServer, defaultSocketPath, systemdListenFd, QUIT } = require('simple-ipc');

// Default: a place private to this user ($XDG_RUNTIME_DIR/counter.ipc, or a
// 0700 directory of ours under the temporary directory).
const socketPath = process.env.COUNTER_SOCKET || defaultSocketPath('counter');
const idleMs = Number(process.env.COUNTER_IDLE_MS || 600000);
const counters = new Map();
let server;

function handle(request) {
  const [command, name = ''] = request.toString().split(' ', 2);
  switch (command) {
    case 'incr': {
      const value = (counters.get(name) ?? 0) + 1;
      counters.set(name, value);
      return String(value);
    }
    case 'get':
      return String(counters.get(name) ?? 0);
    case 'stats':
      return JSON.stringify({ pid: process.pid, server: server.stats(), counters: Object.fromEntries(counters) });
    case 'quit':
      return QUIT;
    default:
      return `unknown command: ${command}`;
  }
}

async function main() {
  try {
    server = await createServer(socketPath, handle, {
      listenFd: systemdListenFd(),
      replace: process.argv.includes('--replace'),
      idleTimeoutMs: idleMs,
      closeOnSignals: true,
    });
  } catch (error) {
    // Started twice at once: the other daemon serves. Nothing to do.
    if (error.code === 'EADDRINUSE') return;
    throw error;
  }
  console.log(`counter daemon ${process.pid} serving ${socketPath}`);
  console.log(`counter daemon ${process.pid} stopped (${await server.closed})`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
