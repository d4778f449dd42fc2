#!/usr/bin/env node
// Writes the seed corpora of the fuzz targets (native/test/corpus/<target>/):
// one file per kind of input docs/protocol.md#pkt-line-framing distinguishes. Run it again after
// changing the list; the files are committed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

const pkt = (s) => {
  const b = Buffer.from(s, 'latin1');
  return Buffer.concat([Buffer.from((b.length + 4).toString(16).padStart(4, '0')), b]);
};
const raw = (s) => Buffer.from(s, 'latin1');

const streams = {
  'simple': Buffer.concat([pkt('hello'), raw('0000')]),
  'two-packets': Buffer.concat([pkt('hello'), pkt(' world'), raw('0000')]),
  'empty-message': raw('0000'),
  'delim': Buffer.concat([pkt('abc'), raw('0001'), pkt('after'), raw('0000')]),
  'response-end': Buffer.concat([pkt('abc'), raw('0002')]),
  'empty-packet': Buffer.concat([pkt('abc'), raw('0004'), raw('0000')]),
  'reserved-0003': Buffer.concat([pkt('abc'), raw('0003'), raw('0000')]),
  'non-hex': raw('00g5x0000'),
  'non-hex-first': raw('G0050000'),
  'nul-in-header': raw('00\u00005x0000'),
  'upper-case': raw('000Aabcdef0000'),
  'too-long-header': raw('fff1xxxx0000'),
  'ffff': raw('ffff'),
  'largest-packet': Buffer.concat([raw('FFF0'), Buffer.alloc(65516, 0x61), raw('0000')]),
  'truncated-header': raw('00'),
  'truncated-payload': raw('000aabc'),
  'trailing-bytes': Buffer.concat([pkt('x'), raw('0000garbage')]),
  'sendbytes': Buffer.concat([pkt('sendbytes ' + 'z'.repeat(200)), raw('0000')]),
  'just-over-limit': Buffer.concat([pkt('a'.repeat(4000)), pkt('b'.repeat(97)), raw('0000')]),
};

// Prefix bytes each target reads before the stream.
const targets = {
  fuzz_pkt_reader: (name, i) => Buffer.from([i * 17, (i * 29) % 256 || 1, i % 8]),
  fuzz_request_reader: (name, i) => Buffer.from([i % 6, (i * 41) % 256]),
  fuzz_server_conn: () => Buffer.alloc(0),
};

for (const [target, prefix] of Object.entries(targets)) {
  const dir = path.join(here, 'corpus', target);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  Object.entries(streams).forEach(([name, stream], i) => {
    if (target === 'fuzz_server_conn' && stream.length > 8192) return;
    fs.writeFileSync(path.join(dir, name), Buffer.concat([prefix(name, i), stream]));
  });
}
console.log('corpora written to', path.join(here, 'corpus'));
