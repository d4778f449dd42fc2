// The addon in several JavaScript environments of one process at once,
// as Electron and worker_threads use it: the main thread and WORKERS
// worker threads each load simple-ipc, run a server and call every other
// environment's server; then each closes its server and the workers end
// on their own. Run it with `node --force-context-aware`, under which
// Node refuses to load an addon that is not context-aware.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');
const ipc = require('simple-ipc');

const WORKERS = 3;

async function serveAndCall(dir, index, count) {
  const own = path.join(dir, `env${index}.ipc`);
  const server = await ipc.createServer(own, (r) => `env${index}:${r}`, { threads: 2 });
  return {
    server,
    async callAll() {
      let ok = 0;
      for (let round = 0; round < 10; round++) {
        for (let target = 0; target < count; target++) {
          const reply = (await ipc.sendCommand(path.join(dir, `env${target}.ipc`), `from${index}`)).toString();
          if (reply === `env${target}:from${index}`) ok++;
        }
      }
      return ok;
    },
  };
}

if (isMainThread) {
  (async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sipc-ctx-'));
    const count = WORKERS + 1;
    const { server, callAll } = await serveAndCall(dir, 0, count);
    const workers = Array.from({ length: WORKERS }, (_, i) => new Worker(__filename, { workerData: { dir, index: i + 1, count } }));
    const next = (w) => new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    const exits = workers.map((w) => new Promise((resolve) => w.once('exit', resolve)));
    // Every environment's server is listening before anyone calls.
    await Promise.all(workers.map(next));
    const results = workers.map(next);
    for (const w of workers) w.postMessage('go');
    const mine = await callAll();
    const theirs = await Promise.all(results);
    // Everyone has finished calling everyone: close all servers.
    for (const w of workers) w.postMessage('close');
    await server.close();
    const codes = await Promise.all(exits);
    const expected = 10 * count;
    const ok = mine === expected && theirs.every((n) => n === expected) && codes.every((c) => c === 0) && fs.readdirSync(dir).length === 0;
    console.log(JSON.stringify({ environments: count, replies: [mine, ...theirs], expectedEach: expected, workerExitCodes: codes, ok }));
    fs.rmSync(dir, { recursive: true, force: true });
    process.exitCode = ok ? 0 : 1;
  })().catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  (async () => {
    const { dir, index, count } = workerData;
    const { server, callAll } = await serveAndCall(dir, index, count);
    const message = () => new Promise((resolve) => parentPort.once('message', resolve));
    const go = message();
    parentPort.postMessage('listening');
    await go;
    const closing = message();
    parentPort.postMessage(await callAll());
    await closing;
    await server.close();
  })();
}
