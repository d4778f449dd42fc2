// The smoke test shared by smoke.cjs (require) and smoke.mjs (import): a
// server and clients of an installed simple-ipc, then one JSON line that
// says which Node ran it and which addon file the process has mapped, so
// the caller can check that the prebuild (not a fresh build) was loaded.
'use strict';
const { execFile } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

/** The simple-ipc addon files mapped into this process (from /proc/self/maps). */
function loadedAddons() {
  const files = new Set();
  for (const line of fs.readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const file = line.slice(line.indexOf('/'));
    if (line.includes('/') && file.endsWith('.node') && /simple[-_]ipc/.test(path.basename(file))) files.add(file);
  }
  return [...files];
}

function check(cond, what) {
  if (!cond) throw new Error(`smoke: ${what}`);
}

async function runSmoke(api, mode, resolved) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sipc-smoke-'));
  const sock = path.join(dir, 'smoke.ipc');
  try {
    const server = await api.createServer(sock, async (request, reply) => {
      const text = request.toString();
      if (text === 'stream') {
        for (let i = 0; i < 3; i++) await reply.write(`row ${i}\n`);
        return undefined;
      }
      return `pong:${text}`;
    }, { threads: 2 });
    check((await api.getActiveState(sock)) === 'listening', 'getActiveState is not listening');
    check((await api.sendCommand(sock, 'ping')).toString() === 'pong:ping', 'sendCommand reply');
    let streamed = '';
    for await (const chunk of api.streamCommand(sock, 'stream')) streamed += chunk.toString();
    check(streamed === 'row 0\nrow 1\nrow 2\n', `streamCommand got ${JSON.stringify(streamed)}`);
    // The synchronous client, from another process (it cannot reach a
    // server on its own thread), with the same Node binary. Spawned
    // asynchronously: this process's thread must stay free to answer.
    const sync = await new Promise((resolve) => {
      execFile(process.execPath, ['-e',
        `process.stdout.write(require(${JSON.stringify(resolved)}).sendCommandSync(${JSON.stringify(sock)}, 'sync', { timeoutMs: 10000 }))`],
        { encoding: 'utf8', timeout: 20000 }, (error, stdout, stderr) => resolve({ error, stdout, stderr }));
    });
    check(!sync.error && sync.stdout === 'pong:sync', `sendCommandSync in a child: ${sync.error} ${sync.stdout} ${sync.stderr}`);
    check(typeof api.MAX_PACKET_PAYLOAD === 'number' && api.MAX_PACKET_PAYLOAD === 65516, 'MAX_PACKET_PAYLOAD');
    await server.close();
    check(!fs.existsSync(sock), 'socket file left after close()');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const addons = loadedAddons();
  check(addons.length === 1, `expected one simple-ipc addon mapped, found ${JSON.stringify(addons)}`);
  const sha256 = crypto.createHash('sha256').update(fs.readFileSync(addons[0])).digest('hex');
  console.log(JSON.stringify({
    smoke: 'ok', mode, node: process.version, napi: process.versions.napi, execPath: process.execPath,
    resolved, addon: addons[0], sha256,
  }));
}

module.exports = { runSmoke, loadedAddons };
