// The wire format against Node's own `net` pipes on the same names: our
// client talks to a simple-ipc server written by hand on node:net, a net
// client talks to our server, and neither takes a name the other holds.
import assert from 'node:assert/strict';
import * as net from 'node:net';

import { frame, gitPipeName, ipcPath, NEEDS_WINDOWS_FIRST_INSTANCE, rawExchange, rejection, serve, sipc, unframe, uniquePipeName } from './helpers.mjs';
import { describe, it } from './runner.mjs';

const { createServer, getActiveState, sendCommand, streamCommand } = sipc;

describe('interop with Node\'s net pipes', () => {
  // A simple-ipc server written by hand on node:net.
  async function netServer(t, name, respond) {
    const server = net.createServer((socket) => {
      let input = Buffer.alloc(0);
      socket.on('error', () => {});
      socket.on('data', (d) => {
        input = Buffer.concat([input, d]);
        const { payload, complete } = unframe(input);
        if (complete) respond(payload, socket);
      });
    });
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(name, resolve);
    });
    t.onTestFinished(() => new Promise((resolve) => server.close(resolve)));
    return server;
  }

  it('our client talks to a net server: whole, streamed, large', async (t) => {
    const name = uniquePipeName('net');
    await netServer(t, name, (payload, socket) => socket.end(frame(Buffer.concat([Buffer.from('echo:'), payload]))));
    assert.equal(await getActiveState(name), 'listening');
    assert.equal((await sendCommand(name, 'hi')).toString(), 'echo:hi');
    let streamed = '';
    for await (const chunk of streamCommand(name, 'there')) streamed += chunk;
    assert.equal(streamed, 'echo:there');
    const big = Buffer.alloc(500000, 'b');
    const answer = await sendCommand(name, big);
    assert.equal(answer.length, 500005);
  });

  it('a net server that hangs up before the flush: ERR_IPC_INCOMPLETE_RESPONSE', async (t) => {
    const name = uniquePipeName('net');
    await netServer(t, name, (_payload, socket) => socket.end('0009parti'));
    assert.equal((await rejection(sendCommand(name, 'x'))).code, 'ERR_IPC_INCOMPLETE_RESPONSE');
  });

  it('a net client talks to our server on the derived pipe name', async (t) => {
    const p = ipcPath(t);
    await serve(t, p);
    const { data } = await rawExchange(gitPipeName(p), frame(Buffer.concat([Buffer.from('sendbytes '), Buffer.alloc(70000, 'x')])));
    const { payload, complete } = unframe(data);
    assert.ok(complete);
    assert.equal(payload.toString(), 'rcvd:x00070000\n');
  });

  it('our server refuses a name a net server holds (EADDRINUSE)', { skip: NEEDS_WINDOWS_FIRST_INSTANCE }, async (t) => {
    const name = uniquePipeName('net');
    await netServer(t, name, (_payload, socket) => socket.end(frame('net')));
    assert.equal((await rejection(createServer(name, () => 'x'))).code, 'EADDRINUSE');
    assert.equal((await sendCommand(name, 'x')).toString(), 'net');
  });

  it('a net server cannot listen on a name our server holds (EADDRINUSE)', { skip: NEEDS_WINDOWS_FIRST_INSTANCE }, async (t) => {
    const name = uniquePipeName('ours');
    await serve(t, name, () => 'ours');
    const error = await rejection(netServer(t, name, () => {}));
    assert.equal(error.code, 'EADDRINUSE');
    assert.equal((await sendCommand(name, 'x')).toString(), 'ours');
  });
});
