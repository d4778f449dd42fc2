// End-to-end tests of the `simple-ipc` command line tool: every command runs
// as its own process, as a user (or Git's t0052-simple-ipc.sh) runs it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { bigResponseText, bigRow } from '../../dist/test-app.js';
import { tempDir } from '../helpers.js';
import { cli, stopAfterTest } from './helpers.js';

const BIG = bigResponseText();

describe('simple-ipc: the t0052 sequence against our own daemon', () => {
  it('starts, answers every test command, refuses a second daemon, and stops leaving nothing behind', async () => {
    const dir = tempDir('sipc-cli-');
    stopAfterTest(dir);

    // start-daemon with 8 threads, then is-active (default --name: ipc-test).
    let r = await cli(['start-daemon', '--threads=8'], dir);
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    r = await cli(['is-active'], dir);
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(fs.lstatSync(path.join(dir, 'ipc-test')).isSocket()).toBe(true);

    // ping gives exactly pong and a newline.
    r = await cli(['send', '--token=ping'], dir);
    expect(r).toEqual({ code: 0, stdout: 'pong\n', stderr: '' });

    // A second server cannot take the live path; the first stays active.
    r = await cli(['run-daemon'], dir);
    expect(r).toEqual({ code: 1, stdout: '', stderr: "error: socket/pipe already in use: 'ipc-test'\n" });
    expect((await cli(['is-active'], dir)).code).toBe(0);

    // slow (10 s or more) runs alongside the rest.
    const slow = cli(['send', '--token=slow'], dir);

    const [big, chunk] = await Promise.all([cli(['send', '--token=big'], dir), cli(['send', '--token=chunk'], dir)]);
    expect(big.code).toBe(0);
    expect(big.stdout.length).toBe(BIG.length + 1);
    expect(big.stdout === `${BIG}\n`).toBe(true);
    expect(big.stdout.split('\n').length).toBe(10002); // 10000 rows, the extra newline, the end
    expect(chunk.code).toBe(0);
    expect(chunk.stdout === `${BIG}\n`).toBe(true);

    r = await cli(['sendbytes', '--bytecount=100000', '--byte=A'], dir);
    expect(r).toEqual({ code: 0, stdout: 'sent:A00100000 rcvd:A00100000\n', stderr: '' });

    r = await cli(['multiple', '--threads=7', '--bytecount=19', '--batchsize=13'], dir);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.length).toBe(92);
    expect(lines[91]).toBe('client (good 91) (join 0), (errors 0)');
    for (const letter of 'ABCDEFG') {
      const mine = lines.filter((l) => l.startsWith(`sent:${letter}`));
      const expected = Array.from({ length: 13 }, (_, i) => {
        const n = String(19 + i).padStart(8, '0');
        return `sent:${letter}${n} rcvd:${letter}${n}`;
      });
      expect(mine).toEqual(expected);
    }

    r = await cli(['send', '--token=hello'], dir);
    expect(r).toEqual({ code: 0, stdout: 'unhandled command: hello\n', stderr: '' });
    r = await cli(['send'], dir);
    expect(r).toEqual({ code: 0, stdout: 'unhandled command: (no-command)\n', stderr: '' });

    const s = await slow;
    expect(s.code).toBe(0);
    let expectedSlow = '';
    for (let row = 0; row < 1000; row++) expectedSlow += bigRow(row);
    expect(s.stdout === `${expectedSlow}\n`).toBe(true);

    // stop-daemon; then nothing listens and nothing is left.
    r = await cli(['stop-daemon'], dir);
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    r = await cli(['is-active'], dir);
    expect(r).toEqual({ code: 1, stdout: '', stderr: "error: no server listening at 'ipc-test'\n" });
    r = await cli(['send', '--token=ping'], dir);
    expect(r).toEqual({ code: 1, stdout: '', stderr: "error: no server listening at 'ipc-test'\n" });
    expect(fs.existsSync(path.join(dir, 'ipc-test'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'ipc-test.lock'))).toBe(false);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe('simple-ipc: options', () => {
  it('takes --name as a path, raises numbers below 1, takes the first byte of --byte, accepts abbreviations', async () => {
    const dir = tempDir('sipc-cli-');
    const name = path.join(dir, 'sub dir', 'my.ipc');
    fs.mkdirSync(path.dirname(name));
    stopAfterTest(dir, path.relative(dir, name));
    expect((await cli(['start-daemon', `--name=${name}`, '--threads=0', '--max-wait=10'], dir)).code).toBe(0);
    expect((await cli(['is-active', '--name', name], dir)).code).toBe(0);

    let r = await cli(['multiple', `--name=${name}`, '--threads=0', '--bytecount=-3', '--batchsize=0'], dir);
    expect(r).toEqual({ code: 0, stdout: 'sent:A00000001 rcvd:A00000001\nclient (good 1) (join 0), (errors 0)\n', stderr: '' });

    r = await cli(['sendbytes', `--name=${name}`, '--byte=QZ', '--bytecount=3'], dir);
    expect(r.stdout).toBe('sent:Q00000003 rcvd:Q00000003\n');
    r = await cli(['sendbytes', `--name=${name}`, '--bytecount=0'], dir);
    expect(r.stdout).toBe('sent:x00000001 rcvd:x00000001\n');
    // Abbreviated options, a value in the next argument.
    r = await cli(['send', '--na', name, '--tok=ping'], dir);
    expect(r).toEqual({ code: 0, stdout: 'pong\n', stderr: '' });
    // Extra words are refused (Git's helper ignores them), after -- too.
    r = await cli(['send', 'extra', '--na', name, '--tok=ping'], dir);
    expect(r.code).toBe(129);
    expect(r.stderr).toMatch(/^error: unexpected argument 'extra'\nusage: simple-ipc is-active/);
    r = await cli(['send', `--name=${name}`, '--', 'more'], dir);
    expect(r.code).toBe(129);
    expect(r.stderr).toMatch(/^error: unexpected argument 'more'\n/);
    // --no-token falls back to (no-command).
    r = await cli(['send', `--name=${name}`, '--token=ping', '--no-token'], dir);
    expect(r.stdout).toBe('unhandled command: (no-command)\n');

    // multiple: beyond 26 senders the letters repeat with longer ballast.
    r = await cli(['multiple', `--name=${name}`, '--threads=28', '--bytecount=5', '--batchsize=2'], dir);
    expect(r.code).toBe(0);
    const a = r.stdout.split('\n').filter((l) => l.startsWith('sent:A'));
    expect(a.sort()).toEqual(['sent:A00000005 rcvd:A00000005', 'sent:A00000006 rcvd:A00000006', 'sent:A00000007 rcvd:A00000007', 'sent:A00000008 rcvd:A00000008']);
    expect(r.stdout.endsWith('client (good 56) (join 0), (errors 0)\n')).toBe(true);

    expect((await cli(['stop-daemon', `--name=${name}`], dir)).code).toBe(0);
    expect(fs.readdirSync(path.dirname(name))).toEqual([]);
  });

  it('prints usage and exits 129 on bad options, 128 on an unknown subcommand', async () => {
    const dir = tempDir('sipc-cli-');
    let r = await cli([], dir);
    expect(r.code).toBe(129);
    expect(r.stderr).toMatch(/^usage: simple-ipc is-active/);

    r = await cli(['--help'], dir);
    expect(r.code).toBe(0);
    for (const word of ['is-active', 'run-daemon', 'start-daemon', 'stop-daemon', 'send', 'sendbytes', 'multiple', '--name', '--threads', '--max-wait', '--bytecount', '--batchsize', '--byte', '--token']) {
      expect(r.stdout).toContain(word);
    }

    // <subcommand> --help: that subcommand's help, exit 0; Git's -h: the usage, 129.
    r = await cli(['send', '--help'], dir);
    expect(r).toEqual({ code: 0, stdout: expect.stringMatching(/^usage: simple-ipc send \[--name=<path>\] \[--token=<token>\]\n\nSend <token>/), stderr: '' });
    r = await cli(['send', '-h'], dir);
    expect(r.code).toBe(129);
    expect(r.stdout).toMatch(/^usage: simple-ipc is-active/);

    // Git's words for an unknown subcommand (exit 128), and our hint.
    r = await cli(['frobnicate'], dir);
    expect(r).toEqual({ code: 128, stdout: '', stderr: "fatal: Unhandled subcommand: 'frobnicate'\nhint: see 'simple-ipc --help'\n" });
    r = await cli(['sned', '--token=ping'], dir);
    expect(r).toEqual({ code: 128, stdout: '', stderr: "fatal: Unhandled subcommand: 'sned'\nhint: did you mean 'send'?\n" });

    r = await cli(['send', '--bogus=1'], dir);
    expect(r.code).toBe(129);
    expect(r.stderr).toMatch(/^error: unknown option `bogus=1'\nusage: simple-ipc/);

    r = await cli(['send', '-x'], dir);
    expect(r.code).toBe(129);
    expect(r.stderr).toMatch(/^error: unknown switch `x'\nusage: /);

    r = await cli(['send', '--t=1'], dir);
    expect(r.code).toBe(129);
    expect(r.stderr).toBe('error: ambiguous option: t=1 (could be --threads or --token)\n');

    r = await cli(['multiple', '--threads=many'], dir);
    expect(r).toEqual({ code: 129, stdout: '', stderr: "error: option `threads' expects a numerical value\n" });

    r = await cli(['send', '--token'], dir);
    expect(r).toEqual({ code: 129, stdout: '', stderr: "error: option `token' requires a value\n" });
  });
});
