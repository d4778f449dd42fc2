// The `simple-ipc` tool's error messages and exit codes, each provoked for
// real: missing and foreign paths, daemons that cannot start or stop,
// servers that fail the exchange, connect() failing on demand.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { QUIT } from '../../dist/index.js';
import { tempDir, waitFor } from '../helpers.js';
import { inProcessServer } from '../servers.js';
import { cli, stopAfterTest } from './helpers.js';

describe('simple-ipc: every error message', () => {
  it('is-active and the client subcommands report the active state of the path', async () => {
    const dir = tempDir('sipc-cli-');
    fs.writeFileSync(path.join(dir, 'file'), 'data');
    const notListening = { code: 1, stdout: '', stderr: "error: no server listening at 'ipc-test'\n" };
    const invalid = { code: 1, stdout: '', stderr: "error: invalid pipe/socket name 'file'\n" };
    const runs = await Promise.all([
      cli(['is-active'], dir),
      cli(['is-active', '--name=file'], dir),
      cli(['send', '--token=ping'], dir),
      cli(['sendbytes', '--name=file'], dir),
      cli(['multiple'], dir),
      cli(['stop-daemon', '--name=file'], dir),
    ]);
    expect(runs).toEqual([notListening, invalid, notListening, invalid, notListening, invalid]);
    expect(fs.readFileSync(path.join(dir, 'file'), 'utf8')).toBe('data');
  });

  it('reports path-not-found and other-error when connect() fails that way', async (ctx) => {
    // connect() cannot be made to fail with ENOENT or EACCES on a live
    // socket for root; a preloaded shim makes it fail on demand.
    if (process.platform !== 'linux') ctx.skip();
    const dir = tempDir('sipc-cli-');
    const shim = path.join(dir, 'fail-connect.so');
    fs.writeFileSync(
      path.join(dir, 'fail-connect.c'),
      `#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
int connect(int fd, const struct sockaddr *addr, socklen_t len) {
  static int (*real)(int, const struct sockaddr *, socklen_t);
  const char *e = getenv("FAIL_CONNECT_ERRNO");
  if (e && addr && addr->sa_family == AF_UNIX) { errno = atoi(e); return -1; }
  if (!real) real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
  return real(fd, addr, len);
}
`,
    );
    try {
      execFileSync('cc', ['-shared', '-fPIC', '-o', shim, path.join(dir, 'fail-connect.c'), '-ldl'], { stdio: 'ignore' });
    } catch {
      ctx.skip();
      return;
    }
    await inProcessServer(path.join(dir, 'live.ipc'), () => 'pong');
    const env = (errno: number) => ({ LD_PRELOAD: shim, FAIL_CONNECT_ERRNO: String(errno) });
    const ENOENT = 2;
    const EACCES = 13;
    expect(await cli(['is-active', '--name=live.ipc'], dir, env(ENOENT))).toEqual({ code: 1, stdout: '', stderr: "error: path not found 'live.ipc'\n" });
    expect(await cli(['send', '--name=live.ipc'], dir, env(EACCES))).toEqual({ code: 1, stdout: '', stderr: "error: other error for 'live.ipc'\n" });
    expect(await cli(['is-active', '--name=live.ipc'], dir, env(EACCES))).toEqual({ code: 1, stdout: '', stderr: "error: other error for 'live.ipc'\n" });
    // And the shim is what made them fail.
    expect(await cli(['is-active', '--name=live.ipc'], dir)).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('run-daemon: could not start server', async () => {
    const dir = tempDir('sipc-cli-');
    const r = await cli(['run-daemon', '--name=no/such/dir/x.ipc'], dir);
    expect(r).toEqual({ code: 1, stdout: '', stderr: "error: could not start server on: 'no/such/dir/x.ipc': No such file or directory\n" });
  });

  it('start-daemon: failed to start, terminated, not online yet', async () => {
    const dir = tempDir('sipc-cli-');
    fs.writeFileSync(path.join(dir, 'file'), 'data');
    // A path that can never be a socket: the probe gives up at once.
    expect(await cli(['start-daemon', '--name=file'], dir)).toEqual({ code: 1, stdout: '', stderr: 'error: daemon failed to start\n' });
    expect(fs.readFileSync(path.join(dir, 'file'), 'utf8')).toBe('data');
    // The daemon cannot create its socket and exits.
    expect(await cli(['start-daemon', '--name=missing/x.ipc'], dir)).toEqual({ code: 1, stdout: '', stderr: 'error: daemon terminated\n' });
    // No time to come up (the daemon is made to take 2 s); it still starts
    // in the background.
    stopAfterTest(dir);
    const slowStart = { NODE_OPTIONS: `--require ${path.join(__dirname, '../fixtures/slow-run-daemon.cjs')}` };
    expect(await cli(['start-daemon', '--max-wait=0'], dir, slowStart)).toEqual({ code: 1, stdout: '', stderr: 'error: daemon not online yet\n' });
    await waitFor(() => fs.existsSync(path.join(dir, 'ipc-test')), 30000, 'the late daemon');
    expect((await cli(['stop-daemon'], dir)).code).toBe(0);
  });

  it('stop-daemon: a daemon that ignores quit has not shut down', async () => {
    const dir = tempDir('sipc-cli-');
    let quits = 0;
    await inProcessServer(path.join(dir, 'stubborn.ipc'), (request) => {
      if (request.toString() === 'quit') quits++;
      return '';
    });
    const r = await cli(['stop-daemon', '--name=stubborn.ipc', '--max-wait=0'], dir);
    expect(r).toEqual({ code: 1, stdout: '', stderr: 'error: daemon has not shutdown yet\n' });
    expect(quits).toBe(1);
  });

  it('send, sendbytes and multiple: a server that fails the exchange', async () => {
    const dir = tempDir('sipc-cli-');
    // A handler that throws: the client gets no flush, an incomplete response.
    await inProcessServer(path.join(dir, 'broken.ipc'), () => {
      throw new Error('broken');
    });
    let r = await cli(['send', '--name=broken.ipc', '--token=ping'], dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.endsWith("error: failed to send 'ping' to 'broken.ipc'\n")).toBe(true);

    r = await cli(['sendbytes', '--name=broken.ipc', '--bytecount=10', '--byte=z'], dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.endsWith("error: client failed to sendbytes(10, 'z') to 'broken.ipc'\n")).toBe(true);

    r = await cli(['multiple', '--name=broken.ipc', '--threads=2', '--batchsize=2'], dir);
    expect(r).toMatchObject({ code: 1, stdout: 'client (good 0) (join 0), (errors 4)\n' });
    expect(r.stderr.match(/client failed to sendbytes/g)?.length).toBe(4);
  });

  it('a QUIT from an application server is an empty response: send prints nothing', async () => {
    const dir = tempDir('sipc-cli-');
    const server = await inProcessServer(path.join(dir, 'q.ipc'), () => QUIT);
    expect(await cli(['send', '--name=q.ipc', '--token=anything'], dir)).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(await server.closed).toBe('quit');
  });
});
