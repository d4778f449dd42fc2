// The active state of a path as the tool reports it, and the is-active
// probe every client subcommand runs first.
import { getActiveState, getActiveStateSync, type ActiveState } from '../client.js';
import type { Options } from './options.js';
import { error } from './output.js';
import { EXIT_OK } from './usage.js';

/** How a path is shown in messages (Git prints a missing name as "(null)"). */
export function shown(name: string | null): string {
  return name ?? '(null)';
}

// The library refuses an empty path. Git on POSIX lstat()s it (ENOENT:
// not-listening); Git on Windows cannot make a pipe name of it, its
// realpath fails (invalid-path). --no-name has no path at all (invalid).
const EMPTY_NAME_STATE: ActiveState = process.platform === 'win32' ? 'invalid-path' : 'not-listening';

export async function activeState(name: string | null): Promise<ActiveState> {
  if (name === null) return 'invalid-path';
  if (name === '') return EMPTY_NAME_STATE;
  return getActiveState(name);
}

function activeStateSync(name: string | null): ActiveState {
  if (name === null) return 'invalid-path';
  if (name === '') return EMPTY_NAME_STATE;
  return getActiveStateSync(name);
}

/** The message for a path that is not listening, as `is-active` prints it. */
export function stateMessage(state: ActiveState, name: string | null): string | null {
  const path = shown(name);
  switch (state) {
    case 'listening':
      return null;
    case 'not-listening':
      return `no server listening at '${path}'`;
    case 'path-not-found':
      return `path not found '${path}'`;
    case 'invalid-path':
      return `invalid pipe/socket name '${path}'`;
    default:
      return `other error for '${path}'`;
  }
}

/** is-active: exit 0 silently when the path listens, else say why. */
export function probe(options: Options): number {
  const message = stateMessage(activeStateSync(options.name), options.name);
  return message === null ? EXIT_OK : error(message);
}
