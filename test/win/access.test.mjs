// Who may open the pipe (docs/protocol.md#windows-pipe-instances, pipeAccess) and who owns the name
// (FILE_FLAG_FIRST_PIPE_INSTANCE).
//
// Wine stores a pipe's DACL and returns it from GetSecurityInfo, so the
// read-back checks run there. Whether the runtime enforces the DACL and
// the first-instance flag is probed (test/win/helpers.mjs, with bare
// pipes): the enforcement checks are skipped, with the probe's answer,
// only where it shows the runtime does not (Wine so far).
import assert from 'node:assert/strict';

import {
  gitPipeName,
  ipcPath,
  NEEDS_PROBE,
  NEEDS_WINDOWS_DACL,
  NEEDS_WINDOWS_FIRST_INSTANCE,
  probe,
  rejection,
  serve,
  sipc,
  uniquePipeName,
} from './helpers.mjs';
import { describe, it } from './runner.mjs';

const { createServer, sendCommand } = sipc;
const ERROR_ACCESS_DENIED = 5;
const SYSTEM = 'S-1-5-18';
const EVERYONE = 'S-1-1-0';
// FILE_CREATE_PIPE_INSTANCE: adding an instance to a pipe (the same bit
// as FILE_APPEND_DATA, part of GENERIC_WRITE).
const CREATE_PIPE_INSTANCE = 0x4;
// What 'everyone' grants others: FILE_GENERIC_READ | FILE_GENERIC_WRITE
// without FILE_CREATE_PIPE_INSTANCE.
const EVERYONE_READ_WRITE = 0x12019b;

/** The entries of a normalized DACL: [{ type, mask, sid }]. */
function entriesOf(sddl) {
  return probe.normalizeDacl(sddl).split(';').map((e) => {
    const [type, mask, sid] = e.split(':');
    return { type, mask: Number(mask), sid };
  });
}

/**
 * What a principal that only the DACL's Everyone entry matches may do with
 * `name` (probe.asOther). Wine does no access check on pipes: there the
 * test is skipped, saying what the probe found.
 */
function otherPrincipal(t, name) {
  const found = probe.asOther(name);
  if (NEEDS_WINDOWS_DACL) {
    t.skip(`${NEEDS_WINDOWS_DACL}; the probe found: token ${found.token}, add an instance ${found.create}, open ${found.open} (Win32 errors, 0 = allowed)`);
  }
  assert.equal(found.token, 0, 'making the restricted token');
  return found;
}

function daclOf(name) {
  const { error, sddl } = probe.pipeDacl(name);
  assert.equal(error, 0, `reading the DACL of ${name}: Win32 error ${error}`);
  return sddl;
}

// Generic rights mapped as for files, so that e.g. GA and FA compare equal
// (Windows may map them when it stores the descriptor).
function assertSameDacl(actual, expected) {
  assert.equal(probe.normalizeDacl(actual), probe.normalizeDacl(expected), `read back ${actual}, asked for ${expected}`);
}

describe('the DACL the pipe is created with (read back with GetSecurityInfo)', { skip: NEEDS_PROBE }, () => {
  it("default 'user': the current user, SYSTEM and Administrators only", async (t) => {
    const p = ipcPath(t);
    await serve(t, p);
    const sid = probe.currentUserSid();
    assertSameDacl(daclOf(gitPipeName(p)), `D:P(A;;GA;;;${sid})(A;;GA;;;SY)(A;;GA;;;BA)`);
    assert.equal((await sendCommand(p, 'ping')).toString(), 'pong');
  });

  it("'everyone': Everyone reads and writes (as with Git's DACL) but cannot add instances; the server's user can", async (t) => {
    const p = ipcPath(t);
    await serve(t, p, undefined, { pipeAccess: 'everyone' });
    const sid = probe.currentUserSid();
    const dacl = daclOf(gitPipeName(p));
    assertSameDacl(dacl, `D:P(A;;GA;;;${sid})(A;;GA;;;SY)(A;;GA;;;BA)(A;;0x12019b;;;WD)`);
    const everyone = entriesOf(dacl).filter((e) => e.sid === EVERYONE);
    assert.deepEqual(everyone, [{ type: 'A', mask: EVERYONE_READ_WRITE, sid: EVERYONE }]);
    // Git's GRGW, read and write, minus exactly the instance right.
    const git = entriesOf('D:(A;;GRGW;;;WD)')[0].mask;
    assert.equal(git & ~CREATE_PIPE_INSTANCE, EVERYONE_READ_WRITE);
    assert.ok(git & CREATE_PIPE_INSTANCE, "Git's DACL lets Everyone add instances");
    const own = entriesOf(dacl).find((e) => e.sid === sid);
    assert.ok(own.mask & CREATE_PIPE_INSTANCE, 'the server needs the instance right for itself');
    assert.equal((await sendCommand(p, 'ping')).toString(), 'pong');
  });

  it('{ sddl }: exactly the DACL asked for', async (t) => {
    const p = ipcPath(t);
    const sid = probe.currentUserSid();
    const sddl = `D:P(A;;GA;;;SY)(A;;GRGW;;;${sid})(A;;FR;;;BU)`;
    await serve(t, p, undefined, { pipeAccess: { sddl } });
    assertSameDacl(daclOf(gitPipeName(p)), sddl);
    assert.equal((await sendCommand(p, 'ping')).toString(), 'pong');
  });

  it('the first instance carries it: instances made later (for more clients) change nothing', async (t) => {
    const p = ipcPath(t);
    await serve(t, p, undefined, { pipeAccess: 'everyone', threads: 1 });
    const before = daclOf(gitPipeName(p));
    await Promise.all(Array.from({ length: 20 }, () => sendCommand(p, 'ping')));
    assertSameDacl(daclOf(gitPipeName(p)), before);
  });
});

describe('pipeAccess errors', () => {
  it('an SDDL Windows cannot parse: EINVAL, nothing created', async (t) => {
    const p = ipcPath(t);
    const error = await rejection(createServer(p, () => 'x', { pipeAccess: { sddl: 'D:(nonsense' } }));
    assert.equal(error.code, 'EINVAL');
    assert.match(error.message, /SDDL/);
    assert.equal(await sipc.getActiveState(p), 'path-not-found');
  });
});

describe('enforcement (real Windows)', () => {
  it('a principal the DACL leaves out cannot connect (EACCES, other-error)', { skip: NEEDS_WINDOWS_DACL || NEEDS_PROBE }, async (t) => {
    if (probe.currentUserSid() === SYSTEM) {
      t.skip('running as SYSTEM, the only principal of this DACL');
      return;
    }
    const name = uniquePipeName('denied');
    // One instance: a DACL without this user also denies it further instances.
    await serve(t, name, () => 'x', { pipeAccess: { sddl: 'D:P(A;;GA;;;SY)' }, threads: 1 });
    assert.equal(probe.tryOpen(name), ERROR_ACCESS_DENIED);
    const error = await rejection(sendCommand(name, 'x'));
    assert.equal(error.code, 'EACCES');
    assert.equal(error.state, 'other-error');
  });

  it("'everyone': another user connects but cannot add an instance to the running server's pipe", { skip: NEEDS_PROBE }, async (t) => {
    const name = uniquePipeName('everyone');
    await serve(t, name, undefined, { pipeAccess: 'everyone' });
    const found = otherPrincipal(t, name);
    assert.equal(found.create, ERROR_ACCESS_DENIED, 'adding an instance');
    assert.equal(found.open, 0, 'opening as a client');
    assert.equal((await sendCommand(name, 'ping')).toString(), 'pong');
  });

  it("default 'user': another user can neither connect nor add an instance", { skip: NEEDS_PROBE }, async (t) => {
    const name = uniquePipeName('user');
    await serve(t, name);
    const found = otherPrincipal(t, name);
    assert.equal(found.create, ERROR_ACCESS_DENIED, 'adding an instance');
    assert.equal(found.open, ERROR_ACCESS_DENIED, 'opening as a client');
  });

  it('a second server on the name fails with EADDRINUSE; the first keeps serving', { skip: NEEDS_WINDOWS_FIRST_INSTANCE }, async (t) => {
    const name = uniquePipeName('first');
    await serve(t, name, () => 'first');
    assert.equal((await rejection(createServer(name, () => 'second'))).code, 'EADDRINUSE');
    assert.equal((await sendCommand(name, 'x')).toString(), 'first');
  });

  it('CreateNamedPipeW with FILE_FLAG_FIRST_PIPE_INSTANCE on our name: ERROR_ACCESS_DENIED', { skip: NEEDS_WINDOWS_FIRST_INSTANCE || NEEDS_PROBE }, async (t) => {
    const name = uniquePipeName('first');
    await serve(t, name, () => 'first');
    const { error, id } = probe.createPipe(name, 1, 0);
    if (id !== undefined) probe.closePipe(id);
    assert.equal(error, ERROR_ACCESS_DENIED);
  });

  it('our server on a name another process created first: EADDRINUSE', { skip: NEEDS_WINDOWS_FIRST_INSTANCE || NEEDS_PROBE }, async (t) => {
    const name = uniquePipeName('taken');
    const { error, id } = probe.createPipe(name, 1, 0);
    assert.equal(error, 0);
    t.onTestFinished(() => probe.closePipe(id));
    assert.equal((await rejection(createServer(name, () => 'x'))).code, 'EADDRINUSE');
  });
});
