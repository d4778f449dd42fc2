#!/usr/bin/env node
// The counter daemon's command-line client. Starts the daemon when none
// runs (autoStart), so that users never start it themselves.
//
//   node client.js incr <name> | get <name> | stats | quit
const path = require('node:path');
const { defaultSocketPath, sendCommand } = require('simple-ipc');

async function main() {
  const request = process.argv.slice(2).join(' ');
  if (request === '') {
    console.error('usage: client.js incr <name> | get <name> | stats | quit');
    return 2;
  }
  // Default: a place private to this user ($XDG_RUNTIME_DIR/counter.ipc, or
  // a 0700 directory of ours under the temporary directory). Where another
  // user took that directory's name, this fails (ERR_IPC_UNSAFE_DIRECTORY)
  // rather than talk to whatever listens there.
  const socketPath = process.env.COUNTER_SOCKET || defaultSocketPath('counter');
  const response = await sendCommand(socketPath, request, {
    // Only a daemon of our own user may answer: a socket another user put
    // in our daemon's place (say, COUNTER_SOCKET in a shared directory)
    // fails with ERR_IPC_SERVER_IDENTITY before the request is sent.
    serverUid: 'self',
    // quit should not start a daemon just to stop it.
    autoStart:
      request === 'quit'
        ? undefined
        : {
            command: process.execPath,
            args: [path.join(__dirname, 'daemon.js')],
            logFile: `${socketPath}.log`,
            maxWaitMs: 10000,
          },
  });
  if (response.length > 0) console.log(response.toString());
  return 0;
}

main().then(
  (code) => (process.exitCode = code),
  (error) => {
    // A daemon that failed to start: its log's last lines are in the message.
    console.error(`counter: ${error.code}: ${error.message}`);
    process.exitCode = 1;
  },
);
