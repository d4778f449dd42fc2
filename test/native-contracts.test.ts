// Contracts between the TypeScript layer and the addon, read from both
// sides' sources, so that a change one side makes and the other misses
// fails here: the layout of a request batch (lib/server.ts REQUEST_FIELDS,
// native/addon/server_wrap.cc kFields), the stats fields (the addon's
// StatsCall, lib/native.ts NativeServerStats, what lib/server.ts reads),
// and the library's error codes (native/core/status.cc, documented in
// docs/api.md#error-codes).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { repoRoot } from './helpers';

const read = (file: string) => fs.readFileSync(path.join(repoRoot, file), 'utf8');

/** The one integer `pattern` captures in `file`. */
function constant(file: string, pattern: RegExp): number {
  const m = read(file).match(pattern);
  if (!m) throw new Error(`${file}: no match for ${pattern}`);
  return Number(m[1]);
}

const all = (text: string, pattern: RegExp) => [...text.matchAll(pattern)].map((m) => m[1]!).sort();

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

  it('every library error code of the native core is documented', () => {
    const codes = all(read('native/core/status.cc'), /return \{"((?:ERR_IPC_|ABORT_ERR)\w*)"/g).filter((c) => c !== 'ERR_IPC_UNKNOWN');
    const api = read('docs/api.md');
    const table = api.slice(api.indexOf('## Error codes'));
    expect(codes.length).toBeGreaterThan(10);
    expect(codes.filter((c) => !table.includes('`' + c + '`'))).toEqual([]);
  });
});
