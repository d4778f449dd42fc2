// Links that cannot rot (scripts/check-links.mjs): every relative Markdown
// link and every docs/<page>.md#<anchor> cited in code, tests and docs
// leads to a real file and heading. The repository passes; a copy of its
// docs with dead links planted fails, naming each one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { anchorsOf, checkLinks, slugify } from '../../scripts/check-links.mjs';
import { tempDir } from '../helpers.js';

type Problem = { file: string; line: number; message: string };
const ROOT = path.resolve(__dirname, '..', '..');
// Written as D + 'page.md...' so that this file's own dead examples are
// not citations the check finds.
const D = 'docs' + '/';
const shown = (problems: Problem[]) => problems.map((p) => `${p.file}:${p.line}: ${p.message}`);

describe('links', () => {
  it('every relative link and docs/*.md#anchor citation in the repository resolves', () => {
    expect(shown(checkLinks(ROOT))).toEqual([]);
  });

  it("anchors are GitHub's: lower case, punctuation dropped, repeats numbered", () => {
    expect(slugify('`createServer(path, handler, options?): Promise<IpcServer>`')).toBe('createserverpath-handler-options-promiseipcserver');
    expect(slugify("Differences from Git's helper")).toBe('differences-from-gits-helper');
    expect(slugify('[Link text](x.md) and `code`')).toBe('link-text-and-code');
    expect([...anchorsOf('# A\n## Limits\n```\n# not a heading\n```\n### Limits\n<a id="custom"></a>\n')]).toEqual([
      'a',
      'limits',
      'limits-1',
      'custom',
    ]);
  });

  it('fails on a dead file, a dead anchor, a dead citation and a heading cited in quotes', () => {
    // A copy of the real docs and README, then one dead link of each kind.
    const root = tempDir('sipc-links-');
    fs.cpSync(path.join(ROOT, 'docs'), path.join(root, 'docs'), { recursive: true });
    for (const f of ['README.md', 'CONTRIBUTING.md']) {
      if (fs.existsSync(path.join(ROOT, f))) fs.copyFileSync(path.join(ROOT, f), path.join(root, f));
    }
    // The README's other links point outside docs/: the copy keeps only docs
    // and README, so check the copy before planting (problems here are links
    // into files not copied, which the planted ones must add to).
    const before = shown(checkLinks(root));
    fs.appendFileSync(path.join(root, 'docs', 'api.md'), '\nSee [gone](no-such-page.md) and [missing](protocol.md#no-such-heading).\n');
    fs.mkdirSync(path.join(root, 'lib'));
    fs.writeFileSync(
      path.join(root, 'lib', 'x.ts'),
      `// ${D}protocol.md#connect-loop is fine\n// ${D}design.md#no-such-section is not\n// and ${D}design.md ("Threads") is the old form\n`,
    );
    const after = shown(checkLinks(root)).filter((p) => !before.includes(p));
    const apiLines = fs.readFileSync(path.join(root, 'docs', 'api.md'), 'utf8').split('\n').length - 1;
    expect(after).toEqual([
      `docs/api.md:${apiLines}: link (no-such-page.md): no such file ${D}no-such-page.md`,
      `docs/api.md:${apiLines}: link (protocol.md#no-such-heading): docs/protocol.md has no heading with the anchor #no-such-heading`,
      `lib/x.ts:2: citation ${D}design.md#no-such-section: docs/design.md has no heading with the anchor #no-such-section`,
      `lib/x.ts:3: citation docs/design.md names a heading in quotes: cite it as docs/design.md#<anchor>`,
    ]);
  });
});
