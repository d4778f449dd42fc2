// Type check of `import` from the installed package (resolves through the
// "import" condition to dist/index.d.mts). Each @ts-expect-error line must
// be an error: if the types were missing (any), tsc reports it unused.
import { createServer, sendCommand, sendCommandSync, streamCommand, QUIT, MAX_PACKET_PAYLOAD } from 'simple-ipc';
import type { ActiveState, ClientOptions, IpcServer, ServerOptions } from 'simple-ipc';
import simpleIpc from 'simple-ipc';

const options: ServerOptions = { threads: 2 };
const server: Promise<IpcServer> = createServer('/tmp/x.ipc', (request) => (request.length > 0 ? 'yes' : QUIT), options);
const reply: Promise<Buffer> = sendCommand('/tmp/x.ipc', 'ping', { timeoutMs: 100 } satisfies ClientOptions);
const syncReply: Buffer = sendCommandSync('/tmp/x.ipc', new Uint8Array([1]));
const chunks: AsyncIterableIterator<Buffer> = streamCommand('/tmp/x.ipc', 'tail');
const payload: number = MAX_PACKET_PAYLOAD + simpleIpc.MAX_PACKET_PAYLOAD;
const state: Promise<ActiveState> = simpleIpc.getActiveState('/tmp/x.ipc');

// @ts-expect-error the path is a string
void sendCommand(42, 'ping');
// @ts-expect-error no such export
void simpleIpc.notAnExport;
// @ts-expect-error threads is a number
void createServer('/tmp/x.ipc', () => 'x', { threads: 'many' });

export { server, reply, syncReply, chunks, payload, state };
