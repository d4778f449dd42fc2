// The API's contract with its callers, as docs/api.md#conventions states
// it: every options object rejects a key it does not know (naming the
// nearest known one), and errors say their code once, in err.code, with
// one wording per error.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test, vi } from 'vitest';

import { connect, createServer, ensureDaemon, IpcServer, QUIT, sendCommand, sendCommandSync, streamCommand, type IpcError } from '../dist/index.js';
import { alive, fdCount, onCleanup, repoRoot, socketPath, staleSocket, tempDir, threadCount } from './helpers';
import { startServerChild } from './server-child';

async function echoServer(path: string) {
  const server = await createServer(path, (request) => request);
  onCleanup(() => server.close({ force: true }));
  return server;
}

/** The synchronous error `fn` throws. */
function thrown(fn: () => unknown): IpcError {
  try {
    fn();
  } catch (error) {
    return error as IpcError;
  }
  throw new Error('did not throw');
}

describe('an unknown option is refused, naming the nearest known one', () => {
  // Each options object of the API, with a misspelt key and the option it
  // should suggest. All throw synchronously, before any I/O.
  const p = '/nonexistent/api-contract.ipc';
  // null: no known option is close, the message lists them all.
  const cases: Array<[string, () => unknown, string, string | null]> = [
    ['sendCommand', () => sendCommand(p, 'x', { timeout: 10 } as never), 'timeout', 'timeoutMs'],
    ['sendCommand (with autoStart)', () => sendCommand(p, 'x', { autoStart: { command: 'x' }, waitIfbusy: true } as never), 'waitIfbusy', 'waitIfBusy'],
    ['sendCommandSync', () => sendCommandSync(p, 'x', { connectTimeout: 5 } as never), 'connectTimeout', 'connectTimeoutMs'],
    ['sendCommandSync (no signal)', () => sendCommandSync(p, 'x', { signal: AbortSignal.timeout(1) } as never), 'signal', null],
    ['streamCommand', () => streamCommand(p, 'x', { waitIfNotFund: true } as never), 'waitIfNotFund', 'waitIfNotFound'],
    ['streamCommand (with autoStart)', () => streamCommand(p, 'x', { autoStart: { command: 'x' }, timout: 1 } as never), 'timout', 'timeoutMs'],
    ['connect', () => connect(p, { singal: undefined } as never), 'singal', 'signal'],
    ['connect (no autoStart)', () => connect(p, { autoStart: { command: 'x' } } as never), 'autoStart', null],
    ['createServer', () => createServer(p, () => 'x', { maxConnection: 5 } as never), 'maxConnection', 'maxConnections'],
    ['createServer', () => createServer(p, () => 'x', { unknownOpt: 1 } as never), 'unknownOpt', null],
    ['createServer (replace)', () => createServer(p, () => 'x', { replace: { timeout: 5 } } as never), 'timeout', 'timeoutMs'],
    ['createServer (pipeAccess)', () => createServer(p, () => 'x', { pipeAccess: { sddl: 'D:P(A;;GA;;;WD)', SDDL: '' } } as never), 'SDDL', 'sddl'],
    ['ensureDaemon', () => ensureDaemon(p, { command: 'x', maxWait: 5 } as never), 'maxWait', 'maxWaitMs'],
    ['sendCommand (autoStart)', () => sendCommand(p, 'x', { autoStart: { command: 'x', logfile: 'y' } } as never), 'logfile', 'logFile'],
    ['streamCommand (autoStart)', () => streamCommand(p, 'x', { autoStart: { command: 'x', arg: [] } } as never), 'arg', 'args'],
  ];
  test.each(cases)('%s', (name, call, key, nearest) => {
    const error = thrown(call);
    expect(error).toBeInstanceOf(TypeError);
    expect(error.code).toBe('ERR_INVALID_ARG_VALUE');
    const within = /\((replace|autoStart|pipeAccess)\)$/.exec(name)?.[1];
    const argument = within === undefined ? 'options' : `options.${within}`;
    if (nearest !== null) {
      expect(error.message).toBe(`The "${argument}" argument has an unknown option "${key}" (did you mean "${nearest}"?)`);
    } else {
      expect(error.message).toMatch(new RegExp(`^The "options" argument has an unknown option "${key}" \\(the known options are "\\w+"(, "\\w+")+\\)$`));
    }
  });

  test('IpcServer.close', async () => {
    const server = await echoServer(socketPath());
    const error = thrown(() => server.close({ timeout: 0 } as never));
    expect(error.code).toBe('ERR_INVALID_ARG_VALUE');
    expect(error.message).toContain('did you mean "timeoutMs"?');
    // Refused before anything happened: the server still serves.
    expect((await sendCommand(server.path, 'still here')).toString()).toBe('still here');
  });

  test('known options, inherited or undefined, pass', async () => {
    const server = await echoServer(socketPath());
    const inherited = Object.create({ timeoutMs: 5000 }) as { timeoutMs: number };
    expect((await sendCommand(server.path, 'a', inherited)).toString()).toBe('a');
    expect((await sendCommand(server.path, 'b', { signal: undefined, timeoutMs: undefined })).toString()).toBe('b');
  });
});

describe('error messages', () => {
  test('never repeat the code', async () => {
    const p = socketPath();
    const errors: IpcError[] = [];
    errors.push(await sendCommand(p, 'x').catch((e: IpcError) => e) as IpcError);
    errors.push(thrown(() => sendCommandSync(p, 'x')));
    const server = await createServer(p, () => new Promise(() => {}));
    onCleanup(() => server.close({ force: true }));
    errors.push(await sendCommand(p, 'x', { timeoutMs: 50 }).catch((e: IpcError) => e) as IpcError);
    errors.push(await createServer(p, () => 'x').catch((e: IpcError) => e) as unknown as IpcError);
    expect(errors.map((e) => e.code)).toEqual(['ENOENT', 'ENOENT', 'ERR_IPC_TIMEOUT', 'EADDRINUSE']);
    for (const error of errors) expect(error.message).not.toContain(error.code);
    expect(errors[0].message).toBe(`connect: no such file or directory: ${p}`);
  });

  test('a timeout reads the same whether the addon or the daemon start found it', async () => {
    const p = socketPath();
    const hanging = await createServer(p, () => new Promise(() => {}));
    onCleanup(() => hanging.close({ force: true }));
    const exchange = (await sendCommand(p, 'x', { timeoutMs: 50 }).catch((e: IpcError) => e)) as IpcError;
    // A daemon that never listens: the call's timeoutMs ends the wait for it.
    const q = socketPath();
    const autoStart = { command: process.execPath, args: ['-e', 'setTimeout(() => {}, 20000)'] };
    const start = (await sendCommand(q, 'x', { timeoutMs: 300, autoStart }).catch((e: IpcError) => e)) as IpcError & { pid?: number };
    onCleanup(() => {
      if (start.pid !== undefined && alive(start.pid)) process.kill(start.pid, 'SIGKILL');
    });
    for (const error of [exchange, start]) {
      expect(error.code).toBe('ERR_IPC_TIMEOUT');
      expect(error.message).toMatch(/^exchange did not complete within timeoutMs: after \d+ ms/);
    }
  });

  test('an abort reads the same whether the signal was aborted before the call or during it', async () => {
    const p = socketPath();
    let handlerStarted!: () => void;
    const started = new Promise<void>((resolve) => (handlerStarted = resolve));
    const server = await createServer(p, () => {
      handlerStarted();
      return new Promise(() => {});
    });
    onCleanup(() => server.close({ force: true }));
    const before = await sendCommand(p, 'x', { signal: AbortSignal.abort('early') }).catch((e: IpcError) => e);
    const controller = new AbortController();
    const during = sendCommand(p, 'x', { signal: controller.signal }).catch((e: IpcError) => e);
    await started; // the exchange is in flight
    controller.abort('late');
    const after = (await during) as IpcError;
    for (const error of [before as IpcError, after]) {
      expect(error.name).toBe('AbortError');
      expect(error.code).toBe('ABORT_ERR');
      expect(error.message).toBe('The operation was aborted');
    }
    expect([(before as Error).cause, after.cause]).toEqual(['early', 'late']);
  });
});

describe('a server exists only once it listens', () => {
  test('new IpcServer() throws ERR_ILLEGAL_CONSTRUCTOR and starts nothing', () => {
    const p = socketPath();
    const [fds, threads] = [fdCount(), threadCount()];
    const Constructor = IpcServer as unknown as new (...args: unknown[]) => IpcServer;
    const error = thrown(() => new Constructor(p, () => 'x', {}));
    expect(error).toBeInstanceOf(TypeError);
    expect(error.code).toBe('ERR_ILLEGAL_CONSTRUCTOR');
    expect(error.message).toContain('createServer(');
    expect([fdCount(), threadCount()]).toEqual([fds, threads]);
    expect(fs.existsSync(p)).toBe(false);
  });

  test('a subclass cannot make one either', () => {
    const Base = IpcServer as unknown as new (...args: unknown[]) => object;
    class Sub extends Base {}
    expect(thrown(() => new Sub(socketPath(), () => 'x', {})).code).toBe('ERR_ILLEGAL_CONSTRUCTOR');
  });

  test('createServer resolves with an IpcServer that closes', async () => {
    const server = await createServer(socketPath(), () => 'x');
    expect(server).toBeInstanceOf(IpcServer);
    await server.close();
  });
});

describe('the types', () => {
  test('refuse what the runtime refuses, CommonJS and ESM (tsc --strict on test/fixtures/types)', async () => {
    const dir = tempDir();
    const config = {
      compilerOptions: {
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        target: 'ES2022',
        lib: ['ES2022'],
        types: ['node'],
        typeRoots: [path.join(repoRoot, 'node_modules', '@types')],
        strict: true,
        noEmit: true,
        skipLibCheck: true,
      },
      files: ['api-contract.ts', 'api-contract-esm.mts'].map((file) => path.join(repoRoot, 'test', 'fixtures', 'types', file)),
    };
    fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(config));
    const tsc = path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await promisify(execFile)(process.execPath, [tsc, '-p', dir]).then(
      () => '',
      (error: { stdout?: string }) => error.stdout ?? String(error),
    );
    expect(result).toBe('');
  });
});

describe("a rejected call's error shows its caller", () => {
  // Each function awaits one call that fails; its error's stack must name
  // it as an async frame in this file.
  async function sendToNobody(p: string) {
    await sendCommand(p, 'x');
  }
  async function sendTooSlowly(p: string) {
    await sendCommand(p, 'x', { timeoutMs: 50 });
  }
  async function sendAndAbort(p: string) {
    const controller = new AbortController();
    const sent = sendCommand(p, 'x', { signal: controller.signal });
    setImmediate(() => controller.abort());
    await sent;
  }
  async function streamFromNobody(p: string) {
    for await (const chunk of streamCommand(p, 'x')) void chunk;
  }
  async function connectToNobody(p: string) {
    await connect(p);
  }
  async function sendOnConnection(p: string) {
    const connection = await connect(p, { timeoutMs: 50 });
    await connection.send('x');
  }
  async function listenTwice(p: string) {
    await createServer(p, () => 'x');
  }
  async function startFailingDaemon(p: string) {
    await ensureDaemon(p, { command: process.execPath, args: ['-e', 'process.exit(3)'] });
  }
  async function sendWithFailingAutoStart(p: string) {
    await sendCommand(p, 'x', { autoStart: { command: process.execPath, args: ['-e', 'process.exit(3)'] } });
  }

  const cases: Array<[(p: string) => Promise<void>, 'nobody' | 'hanging', string]> = [
    [sendToNobody, 'nobody', 'ENOENT'],
    [sendTooSlowly, 'hanging', 'ERR_IPC_TIMEOUT'],
    [sendAndAbort, 'hanging', 'ABORT_ERR'],
    [streamFromNobody, 'nobody', 'ENOENT'],
    [connectToNobody, 'nobody', 'ENOENT'],
    [sendOnConnection, 'hanging', 'ERR_IPC_TIMEOUT'],
    [listenTwice, 'hanging', 'EADDRINUSE'],
    [startFailingDaemon, 'nobody', 'ERR_IPC_DAEMON_EXITED'],
    [sendWithFailingAutoStart, 'nobody', 'ERR_IPC_DAEMON_EXITED'],
  ];
  test.each(cases)('%o', async (caller, server, code) => {
    const p = socketPath();
    if (server === 'hanging') {
      const hanging = await createServer(p, () => new Promise(() => {}));
      onCleanup(() => hanging.close({ force: true }));
    }
    const error = await caller(p).then(
      () => null,
      (e: IpcError) => e,
    );
    expect(error?.code).toBe(code);
    // Vitest's source maps print an async frame without its "async ".
    expect(error!.stack).toMatch(new RegExp(`\\n +at (async )?${caller.name} \\(.*api-contract\\.test\\.ts:\\d+:\\d+\\)`));
  });
});

describe('allowPeer has requestTimeoutMs to decide', () => {
  test('20 clients of a never-settling allowPeer get a coded error within the bound + 1 s; the server serves the next one', async () => {
    const BOUND = 1000;
    const p = socketPath();
    let asked = 0;
    const server = await createServer(p, () => 'pong', {
      requestTimeoutMs: BOUND,
      allowPeer: () => (++asked <= 20 ? new Promise<boolean>(() => {}) : true),
    });
    let closed = false;
    onCleanup(() => (closed ? undefined : server.close({ force: true })));
    const clientErrors: Array<{ code: string; pid: number | null }> = [];
    server.on('clientError', (error, peer) => clientErrors.push({ code: error.code, pid: peer.pid }));

    const outcomes = Array.from({ length: 20 }, () => {
      const start = Date.now();
      // Its own limit only ends a test that would otherwise hang.
      return sendCommand(p, 'ping', { timeoutMs: BOUND + 3000 }).then(
        () => ({ code: 'answered', ms: Date.now() - start }),
        (error: IpcError) => ({ code: error.code, ms: Date.now() - start }),
      );
    });
    // While those wait for their verdict, the server serves another.
    await vi.waitFor(() => expect(asked).toBe(20), { timeout: 10000, interval: 10 });
    expect(server.stats().connections.awaitingAllowPeer).toBe(20);
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');

    const results = await Promise.all(outcomes);
    for (const r of results) {
      expect(r.code).toMatch(/^(ERR_IPC_INCOMPLETE_RESPONSE|ECONNRESET)$/);
      expect(r.ms).toBeLessThan(BOUND + 1000);
    }
    await vi.waitFor(() => expect(clientErrors).toHaveLength(20), { timeout: 5000, interval: 10 });
    expect(new Set(clientErrors.map((e) => e.code))).toEqual(new Set(['ERR_IPC_ALLOW_PEER_TIMEOUT']));
    expect(clientErrors.every((e) => e.pid === process.pid)).toBe(true);
    expect(server.stats().connections.awaitingAllowPeer).toBe(0);
    expect(server.stats().dropped.timeout).toBe(20);
    expect((await sendCommand(p, 'ping')).toString()).toBe('pong');

    const closeStart = Date.now();
    await server.close();
    closed = true;
    expect(Date.now() - closeStart).toBeLessThan(1000);
  });

  test.runIf(process.platform !== 'win32')('the bound runs from when the JS thread asks: a server busy past it still admits all 50 clients', async () => {
    const p = socketPath();
    const server = await startServerChild(p, { requestTimeoutMs: 1000, allowLaterMs: 20 });
    const busy = sendCommand(p, 'busy:2500');
    await server.waitEvent((e) => e.event === 'busy', 20000, 'the handler to start');
    const clients = Array.from({ length: 50 }, () => sendCommand(p, 'ping', { timeoutMs: 60000 }).then(String, (e: IpcError) => e.code));
    await busy;
    expect(await Promise.all(clients)).toEqual(Array(50).fill('pong'));
    expect(server.count('clientError')).toBe(0);
  }, 60000);

  test('close() while verdicts are pending is prompt, and emits no clientError for them', async () => {
    const p = socketPath();
    let asked = 0;
    const server = await createServer(p, () => 'pong', {
      allowPeer: () => {
        asked++;
        return new Promise<boolean>(() => {});
      },
    });
    const clientErrors: string[] = [];
    server.on('clientError', (error) => clientErrors.push(error.code));
    const outcomes = Array.from({ length: 5 }, () => sendCommand(p, 'ping').then(() => 'answered', (e: IpcError) => e.code));
    await vi.waitFor(() => expect(asked).toBe(5), { timeout: 10000, interval: 10 });
    const closeStart = Date.now();
    await server.close();
    expect(Date.now() - closeStart).toBeLessThan(1000);
    expect((await Promise.all(outcomes)).every((code) => code !== 'answered')).toBe(true);
    expect(clientErrors).toEqual([]);
  });

  test('a verdict that is not a promise applies at once, and one that comes in time admits the client', async () => {
    const p = socketPath();
    let n = 0;
    const server = await createServer(p, () => 'pong', {
      requestTimeoutMs: 5000,
      allowPeer: () => (++n % 2 === 0 ? true : new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 50))),
    });
    onCleanup(() => server.close({ force: true }));
    const answers = await Promise.all(Array.from({ length: 6 }, () => sendCommand(p, 'ping')));
    expect(answers.map(String)).toEqual(Array(6).fill('pong'));
    expect(server.stats().dropped.timeout).toBe(0);
  });
});

describe('a time limit of 0 is no limit', () => {
  /** A server whose handler answers `request` after `ms`, and says when a handler started. */
  async function slowServer(p: string, ms: number, options: Parameters<typeof createServer>[2] = {}) {
    let started = 0;
    const reasons: unknown[] = [];
    const server = await createServer(
      p,
      async (request, _reply, ctx) => {
        if (request.toString() === 'quit') return QUIT;
        started++;
        ctx.signal.addEventListener('abort', () => reasons.push(ctx.signal.reason));
        await new Promise((resolve) => setTimeout(resolve, ms));
        return request;
      },
      options,
    );
    onCleanup(() => server.close({ force: true }));
    return { server, started: () => started, reasons };
  }

  test('timeoutMs: 0 waits for a slow answer', async () => {
    const p = socketPath();
    await slowServer(p, 300);
    expect((await sendCommand(p, 'late', { timeoutMs: 0 })).toString()).toBe('late');
  });

  test("connectTimeoutMs: 0 retries a refusing socket past Git's 1 s; waitIfBusy: false tries once", async () => {
    const p = socketPath();
    await staleSocket(p);
    const once = Date.now();
    const refused = await sendCommand(p, 'x', { waitIfBusy: false }).catch((e: IpcError) => e);
    expect((refused as IpcError).code).toBe('ECONNREFUSED');
    expect((refused as IpcError).state).toBe('not-listening');
    expect(Date.now() - once).toBeLessThan(500);

    const start = Date.now();
    // waitIfNotFound too: taking the stale socket over leaves a moment with no file.
    const answer = sendCommand(p, 'patient', { connectTimeoutMs: 0, waitIfNotFound: true, timeoutMs: 20000 });
    // The server comes after Git's 1 s connect window: the point of the test.
    await new Promise((resolve) => setTimeout(resolve, 1300));
    await slowServer(p, 0);
    expect((await answer).toString()).toBe('patient');
    expect(Date.now() - start).toBeGreaterThanOrEqual(1300);
  });

  test('close({ timeoutMs: 0 }) lets a running handler finish; close({ force: true }) drops it at once', async () => {
    const p = socketPath();
    const slow = await slowServer(p, 300);
    const answer = sendCommand(p, 'finished');
    await vi.waitFor(() => expect(slow.started()).toBe(1), { timeout: 10000, interval: 5 });
    await slow.server.close({ timeoutMs: 0 });
    expect((await answer).toString()).toBe('finished');

    const q = socketPath();
    const hanging = await slowServer(q, 60000);
    const dropped = sendCommand(q, 'x').catch((e: IpcError) => e);
    await vi.waitFor(() => expect(hanging.started()).toBe(1), { timeout: 10000, interval: 5 });
    const closeStart = Date.now();
    await hanging.server.close({ force: true });
    expect(Date.now() - closeStart).toBeLessThan(1000);
    expect(((await dropped) as IpcError).code).toBe('ERR_IPC_INCOMPLETE_RESPONSE');
    expect((hanging.reasons[0] as IpcError).code).toBe('ERR_IPC_SERVER_CLOSED');

    const error = thrown(() => slow.server.close({ force: true, timeoutMs: 5 }));
    expect(error.code).toBe('ERR_INVALID_ARG_VALUE');
  });

  test("closeTimeoutMs: 0 lets a handler running at a QUIT finish", async () => {
    const p = socketPath();
    const slow = await slowServer(p, 300, { closeTimeoutMs: 0 });
    const answer = sendCommand(p, 'finished');
    await vi.waitFor(() => expect(slow.started()).toBe(1), { timeout: 10000, interval: 5 });
    await sendCommand(p, 'quit');
    expect((await answer).toString()).toBe('finished');
    expect(await slow.server.closed).toBe('quit');
  });

  test('maxWaitMs: 0 waits for a daemon that takes a while to listen', async () => {
    const p = socketPath();
    const daemon = `setTimeout(() => { const ipc = require(${JSON.stringify(path.join(repoRoot, 'dist', 'index.js'))}); ipc.createServer(process.argv[1], () => ipc.QUIT); }, 300)`;
    const result = await ensureDaemon(p, { command: process.execPath, args: ['-e', daemon, p], maxWaitMs: 0 });
    onCleanup(async () => {
      if (result.pid !== undefined && alive(result.pid)) process.kill(result.pid, 'SIGKILL');
    });
    expect(result.state).toBe('started');
    await sendCommand(p, 'stop').catch(() => undefined);
  });
});
