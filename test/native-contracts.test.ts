// Contracts between the TypeScript layer, the addon and docs/api.md, read
// from each side's source (and, where it is cheap, seen on a real server),
// so that a change one side makes and another misses fails here: the
// layout of a request batch (lib/server.ts REQUEST_FIELDS,
// native/addon/server_wrap.cc kFields), the stats fields (the addon's
// StatsCall, lib/native.ts NativeServerStats, what lib/server.ts reads and
// returns, the table in docs/api.md#stats), the error codes (the native
// core's and lib/'s own, documented in docs/api.md#error-codes), and the
// option names native errors speak of (lib/errors.ts NATIVE_CODE_OPTIONS
// against native/core/status.cc's neutral texts and lib/options.ts's
// options: docs/design.md#errors).
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

import { NATIVE_CODE_OPTIONS } from '../dist/errors.js';
import { createServer, sendCommand, sendCommandSync, type IpcError, type IpcServer } from '../dist/index.js';
import { CLIENT_OPTION_NAMES, SERVER_OPTION_NAMES } from '../dist/options.js';
import { onCleanup, posix, repoRoot, socketPath, waitFor } from './helpers';
import { rawConnect } from './raw-peers';

const read = (file: string) => fs.readFileSync(path.join(repoRoot, file), 'utf8');

/** The one integer `pattern` captures in `file`. */
function constant(file: string, pattern: RegExp): number {
  const m = read(file).match(pattern);
  if (!m) throw new Error(`${file}: no match for ${pattern}`);
  return Number(m[1]);
}

const all = (text: string, pattern: RegExp) => [...text.matchAll(pattern)].map((m) => m[1]!).sort();

/** The text of `file` from the line `start` to the next heading of its level or above. */
function section(file: string, start: string): string {
  const text = read(file);
  const at = text.indexOf(start + '\n');
  if (at < 0) throw new Error(`${file}: no ${start}`);
  const level = start.match(/^#+/)![0].length;
  const next = text.slice(at + start.length).search(new RegExp(`\\n#{1,${level}} `));
  return next < 0 ? text.slice(at) : text.slice(at, at + start.length + next);
}

/** The files below `dir` (relative to the repository) whose names end in one of `endings`. */
function sources(dir: string, endings: string[]): string[] {
  return fs
    .readdirSync(path.join(repoRoot, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => endings.some((e) => f.endsWith(e)))
    .map((f) => path.join(dir, f))
    .sort();
}

/** The leaves of an object, as dotted paths: { a: { b: 1 }, c: 2 } gives ['a.b', 'c']. */
function leaves(value: object, prefix = ''): string[] {
  return Object.entries(value).flatMap(([k, v]) => (typeof v === 'object' && v !== null ? leaves(v, `${prefix}${k}.`) : [prefix + k]));
}

/** The fields (and methods) of the interface `name` in `file`, nested ones as dotted paths. */
function interfaceFields(file: string, name: string): string[] {
  const source = ts.createSourceFile(file, read(file), ts.ScriptTarget.Latest);
  const members = (list: ts.NodeArray<ts.TypeElement>, prefix: string): string[] =>
    list.flatMap((m) => {
      if (!ts.isPropertySignature(m) && !ts.isMethodSignature(m)) return [];
      const key = prefix + m.name.getText(source);
      return ts.isPropertySignature(m) && m.type !== undefined && ts.isTypeLiteralNode(m.type) ? members(m.type.members, key + '.') : [key];
    });
  let found: string[] | undefined;
  source.forEachChild((node) => {
    if (ts.isInterfaceDeclaration(node) && node.name.text === name) found = members(node.members, '');
  });
  if (found === undefined) throw new Error(`${file}: no interface ${name}`);
  return found.sort();
}

/** The fields docs/api.md#stats lists: `dropped.protocol`, `.tooLarge` stands for dropped.tooLarge. */
function documentedStatsFields(): string[] {
  const fields: string[] = [];
  for (const row of section('docs/api.md', '### Stats').matchAll(/^\| ([^|]*`[^|]*) \|/gm)) {
    let parent = '';
    for (const [, name] of row[1]!.matchAll(/`([\w.]+)`/g)) {
      if (name!.startsWith('.')) {
        fields.push(parent + name!.slice(1));
      } else {
        fields.push(name!);
        parent = name!.includes('.') ? name!.slice(0, name!.lastIndexOf('.') + 1) : '';
      }
    }
  }
  return fields.sort();
}

/** The string literals of a C++ source, comments left out. */
function cppStrings(text: string): string[] {
  const found: string[] = [];
  for (const line of text.split('\n')) {
    for (const m of line.matchAll(/"(?:[^"\\]|\\.)*"|\/\/.*$/g)) {
      if (m[0].startsWith('//')) break;
      found.push(m[0].slice(1, -1));
    }
  }
  return found;
}

/** code -> text of each library code of the native core (native/core/status.cc). */
function coreTexts(): Map<string, string> {
  const texts = new Map<string, string>();
  for (const m of read('native/core/status.cc').matchAll(/return \{"((?:ERR_IPC_|ABORT_ERR)\w*)", "([^"]*)"\}/g)) texts.set(m[1]!, m[2]!);
  return texts;
}

/** Every option a caller can give a client or a server (lib/options.ts checks the keys against these). */
const options = [...Object.keys(CLIENT_OPTION_NAMES), ...Object.keys(SERVER_OPTION_NAMES)];

function requestBatchFields(): { ts: number; native: number } {
  return {
    ts: constant('lib/server.ts', /const REQUEST_FIELDS = (\d+);/),
    native: constant('native/addon/server_wrap.cc', /constexpr uint32_t kFields = (\d+);/),
  };
}

describe('contracts between lib/ and the addon', () => {
  it('a request batch has as many fields per request on both sides', () => {
    const { ts, native } = requestBatchFields();
    expect(ts).toBeGreaterThan(0);
    expect(native).toBe(ts);
  });

  it('the stats fields the addon sets are the ones lib/ declares and reads', () => {
    const wrap = read('native/addon/server_wrap.cc');
    const stats = wrap.slice(wrap.indexOf('ServerWrap::StatsCall'), wrap.indexOf('return out;', wrap.indexOf('ServerWrap::StatsCall')));
    const set = all(stats, /set\("(\w+)"/g);
    const nativeTs = read('lib/native.ts');
    const declared = nativeTs.slice(nativeTs.indexOf('interface NativeServerStats'), nativeTs.indexOf('}', nativeTs.indexOf('interface NativeServerStats')));
    const fields = all(declared, /^\s+(\w+): number;/gm);
    const server = read('lib/server.ts');
    const body = server.slice(server.indexOf('stats(): ServerStats {'), server.indexOf('\n  }\n', server.indexOf('stats(): ServerStats {')));
    const used = [...new Set(all(body, /\bs\.(\w+)/g))].sort();
    expect(set.length).toBeGreaterThan(5);
    expect(fields).toEqual(set);
    expect(used).toEqual(set);
  });

  it('the stats fields docs/api.md lists are the ones lib/ declares and a real server returns', async () => {
    const documented = documentedStatsFields();
    const declared = interfaceFields('lib/server.ts', 'ServerStats');
    expect(documented.length).toBeGreaterThan(10);
    expect(documented).toEqual(declared);
    const server = await createServer(socketPath(), () => 'x');
    onCleanup(() => server.close({ force: true }));
    expect(leaves(server.stats()).sort()).toEqual(declared);
  });

  it('the options and callbacks the addon reads are the ones lib/native.ts declares', () => {
    /** The keys `object.Get("key")` reads in the body of `fn` in `file`. */
    const got = (file: string, fn: string, object: string) => {
      const text = read(file);
      const at = text.indexOf(fn);
      const body = text.slice(at, text.indexOf('\n}\n', at));
      return [...new Set(all(body, new RegExp(`\\b${object}\\.Get\\("(\\w+)"\\)`, 'g')))].sort();
    };
    const server = got('native/addon/server_wrap.cc', 'ServerWrap::ServerWrap(', 'opts');
    expect(server.length).toBeGreaterThan(10);
    expect(interfaceFields('lib/native.ts', 'NativeServerOptions')).toEqual(server);
    const callbacks = got('native/addon/server_wrap.cc', 'ServerWrap::ServerWrap(', 'callbacks');
    expect(callbacks.length).toBeGreaterThan(5);
    expect(interfaceFields('lib/native.ts', 'NativeServerCallbacks')).toEqual(callbacks);
    const client = got('native/addon/client_wrap.cc', 'ClientOptions ParseClientOptions(', 'obj');
    expect(client.length).toBeGreaterThan(4);
    expect(interfaceFields('lib/native.ts', 'NativeClientOptions')).toEqual(client);
  });

  it('the stop reasons and active states have the same names in the addon, lib/native.ts and docs/api.md', () => {
    /** The names in a C++ enum's name table (core/enum_names.h: `constexpr const char* kXNames[] = {...};`). */
    const tableNames = (file: string, table: string) => {
      const m = read(file).match(new RegExp(`constexpr const char\\* ${table}\\[\\] = \\{([^}]*)\\};`));
      return [...new Set(all(m![1]!, /"([a-z-]+)"/g))].sort();
    };
    const union = (name: string) => {
      const m = read('lib/native.ts').match(new RegExp(`export type ${name} = ([^;]+);`));
      return all(m![1]!, /'([a-z-]+)'/g);
    };
    const api = read('docs/api.md');
    const closedRow = api.match(/^\| `closed` \| `Promise<CloseReason>` \|.*$/m)![0];
    const activeStates = api.match(/^type ActiveState = ([^;]+);$/m)![1]!;

    const stopReasons = tableNames('native/addon/server_wrap.cc', 'kStopReasonNames');
    expect(stopReasons.length).toBe(5);
    expect(union('NativeStopReason')).toEqual(stopReasons);
    expect(all(closedRow, /`'([a-z-]+)'`/g)).toEqual(stopReasons);
    const states = tableNames('native/core/client_common.cc', 'kActiveStateNames');
    expect(states.length).toBe(5);
    expect(union('NativeActiveState')).toEqual(states);
    expect(all(activeStates, /'([a-z-]+)'/g)).toEqual(states);
  });

  it('every error code lib/ raises itself is documented', () => {
    const raised = new Set<string>();
    for (const file of sources('lib', ['.ts'])) {
      const text = read(file);
      // The library's own codes, wherever they are spelt (raised, or given to a helper that raises them)...
      for (const m of text.matchAll(/['"`]((?:ERR|SIMPLE_IPC)_[A-Z0-9_]+|ABORT_ERR)['"`]/g)) raised.add(m[1]!);
      // ...and the system codes lib/ raises itself.
      for (const m of text.matchAll(/(?:codeError|startError)\(\s*['"`](E[A-Z]+)['"`]|\bcode: ['"`](E[A-Z]+)['"`]/g)) raised.add((m[1] ?? m[2])!);
    }
    const table = section('docs/api.md', '## Error codes');
    expect(raised.size).toBeGreaterThan(20);
    expect([...raised].filter((c) => !table.includes('`' + c + '`')).sort()).toEqual([]);
  });

  it('the option names of native errors: the table names real options and covers every core text that speaks of a limit or a check', () => {
    const texts = coreTexts();
    expect(texts.size).toBeGreaterThan(10);
    for (const [code, { words, option }] of Object.entries(NATIVE_CODE_OPTIONS)) {
      expect(options, `${code}'s option`).toContain(option);
      expect(texts.get(code), `the core's text of ${code}`).toContain(words);
    }
    const needing = [...texts].filter(([, text]) => /\b(limit|check)\b/.test(text)).map(([code]) => code);
    expect(needing.length).toBeGreaterThan(5);
    expect(needing.filter((code) => !Object.hasOwn(NATIVE_CODE_OPTIONS, code))).toEqual([]);
  });

  it("the native core spells no option of the JS API: its texts are the native CLI's too", () => {
    // camelCase names only: `threads` or `version` are plain words as well.
    const spelt = options.filter((o) => /[a-z][A-Z]/.test(o));
    const found: string[] = [];
    for (const file of sources('native/core', ['.cc', '.h'])) {
      for (const literal of cppStrings(read(file))) {
        for (const option of spelt) if (new RegExp(`\\b${option}\\b`).test(literal)) found.push(`${file}: "${literal}"`);
      }
    }
    expect(spelt.length).toBeGreaterThan(10);
    expect(found).toEqual([]);
  });

  it('every library error code of the native core is documented', () => {
    const codes = all(read('native/core/status.cc'), /return \{"((?:ERR_IPC_|ABORT_ERR)\w*)"/g).filter((c) => c !== 'ERR_IPC_UNKNOWN');
    const api = read('docs/api.md');
    const table = api.slice(api.indexOf('## Error codes'));
    expect(codes.length).toBeGreaterThan(10);
    expect(codes.filter((c) => !table.includes('`' + c + '`'))).toEqual([]);
  });
});

describe('native errors reach the caller naming the option (NATIVE_CODE_OPTIONS)', () => {
  /** A server at a fresh path whose handler never answers, and the clientErrors it emits. */
  async function server(options: Parameters<typeof createServer>[2] = {}): Promise<{ path: string; server: IpcServer; clientErrors: IpcError[] }> {
    const p = socketPath();
    const s = await createServer(p, () => new Promise(() => {}), options);
    onCleanup(() => s.close({ force: true }));
    const clientErrors: IpcError[] = [];
    s.on('clientError', (error) => clientErrors.push(error));
    return { path: p, server: s, clientErrors };
  }

  const failure = (promise: Promise<unknown>) => promise.then(() => { throw new Error('resolved'); }, (e: IpcError) => e);

  /** The error in this API's words: the option named, the core's neutral words gone, in the message and the stack's first line. */
  function expectNamed(error: IpcError, code: string) {
    const { words, option } = NATIVE_CODE_OPTIONS[code]!;
    expect(error.code).toBe(code);
    expect(error.message).toContain(option);
    expect(error.message).not.toContain(words);
    expect(error.stack!.split('\n')[0]).toContain(option);
  }

  it('clientError: a request over maxRequestBytes, a connection over maxConnections, one not complete within requestTimeoutMs', async () => {
    // timeoutMs: the exchanges fail in any case; the bound only keeps a bug from hanging the test.
    const limits = await server({ maxRequestBytes: 10, maxConnections: 1, requestTimeoutMs: 0 });
    await failure(sendCommand(limits.path, 'x'.repeat(100), { timeoutMs: 10000 }));
    await waitFor(() => limits.clientErrors.length === 1, 10000, 'the too-large clientError');
    expectNamed(limits.clientErrors[0]!, 'ERR_IPC_REQUEST_TOO_LARGE');
    expect(limits.clientErrors[0]!.message).toBe('request exceeds maxRequestBytes: limit 10 bytes');
    const holder = await rawConnect(limits.path); // silent, and no request clock: it holds the one connection
    onCleanup(() => holder.destroy());
    await waitFor(() => limits.server.stats().connections.open === 1, 10000, 'the held connection counted');
    await failure(sendCommand(limits.path, 'x', { waitIfBusy: false, timeoutMs: 10000 }));
    await waitFor(() => limits.clientErrors.length === 2, 10000, 'the too-many clientError');
    expectNamed(limits.clientErrors[1]!, 'ERR_IPC_TOO_MANY_CONNECTIONS');

    const clock = await server({ requestTimeoutMs: 100 });
    const silent = await rawConnect(clock.path);
    onCleanup(() => silent.destroy());
    await waitFor(() => clock.clientErrors.length === 1, 10000, 'the request-timeout clientError');
    expectNamed(clock.clientErrors[0]!, 'ERR_IPC_REQUEST_TIMEOUT');
  });

  it('the clients: timeoutMs (asynchronous and synchronous), maxResponseBytes, serverUid', async () => {
    const { path: p } = await server();
    expectNamed(await failure(sendCommand(p, 'x', { timeoutMs: 50 })), 'ERR_IPC_TIMEOUT');
    // The server's threads take the request while this thread blocks; its handler never runs.
    let syncError: unknown = new Error('did not throw');
    try {
      sendCommandSync(p, 'x', { timeoutMs: 50 });
    } catch (error) {
      syncError = error;
    }
    expectNamed(syncError as IpcError, 'ERR_IPC_TIMEOUT');

    const q = socketPath();
    const answering = await createServer(q, () => 'x'.repeat(100));
    onCleanup(() => answering.close({ force: true }));
    expectNamed(await failure(sendCommand(q, 'x', { maxResponseBytes: 10 })), 'ERR_IPC_RESPONSE_TOO_LARGE');
    if (posix) {
      const otherUid = process.getuid!() === 65534 ? 65533 : 65534;
      expectNamed(await failure(sendCommand(q, 'x', { serverUid: otherUid })), 'ERR_IPC_SERVER_IDENTITY');
    }
  });
});
