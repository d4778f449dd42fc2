// Type check of `require` from the installed package (resolves through the
// "require" condition to dist/index.d.ts). Each @ts-expect-error line must
// be an error: if the types were missing (any), tsc reports it unused.
import ipc = require('simple-ipc');

const server: Promise<ipc.IpcServer> = ipc.createServer('/tmp/x.ipc', () => ipc.QUIT, { threads: 2 });
const reply: Promise<Buffer> = ipc.sendCommand('/tmp/x.ipc', 'ping');
const state: ipc.ActiveState = ipc.getActiveStateSync('/tmp/x.ipc');
const payload: number = ipc.MAX_PACKET_PAYLOAD;

// @ts-expect-error the path is a string
void ipc.sendCommand(42, 'ping');
// @ts-expect-error no such export
void ipc.notAnExport;

export = { server, reply, state, payload };
