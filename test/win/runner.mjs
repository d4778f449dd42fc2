// describe() and it() of vitest that also take node:test's `skip` option,
// a reason string or false: a test skipped for a reason says why (in the
// report, and in the list at the end of `npm run test:win`).
import { beforeEach, describe as vitestDescribe, it as vitestIt } from 'vitest';

function split(options) {
  const { skip = false, ...rest } = options;
  return { skip, rest };
}

export function it(name, options, fn) {
  if (typeof options === 'function') return vitestIt(name, options);
  const { skip, rest } = split(options);
  return vitestIt(name, rest, skip ? (ctx) => ctx.skip(skip) : fn);
}

export function describe(name, options, fn) {
  if (typeof options === 'function') return vitestDescribe(name, options);
  const { skip, rest } = split(options);
  return vitestDescribe(name, rest, () => {
    if (skip) beforeEach((ctx) => ctx.skip(skip));
    fn();
  });
}
