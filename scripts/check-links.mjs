#!/usr/bin/env node
// Links that cannot rot: every relative Markdown link in the repository's
// Markdown files, and every `docs/<page>.md#<anchor>` cited anywhere
// (code, tests, scripts, docs), must lead to a file that exists and, with
// an anchor, to a heading of that page. A heading cited in the old form
// `docs/<page>.md ("Heading")` is refused: cite its anchor, so that this
// check can follow it.
//
// `node scripts/check-links.mjs [root]` prints each dead link as
// `file:line: message` and exits 1 if there is any. test/docs/links.test.ts
// runs it on the repository and on a copy with a planted dead link.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Directories never scanned: dependencies, build output, caches, binaries. */
const SKIPPED_DIRS = new Set(['.git', 'node_modules', 'dist', 'build', '.cache', '.wine-ci', 'prebuilds', 'coverage']);
/** Files whose text may cite a page. */
const TEXT_FILE = /\.(md|ts|mts|cts|js|mjs|cjs|cc|h|c|sh|gyp|txt|json|yml|yaml|def|bat)$|^(CMakeLists\.txt|run)$/;
const LOCKFILE = /^package-lock\.json$/;

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slugify(heading) {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link shows its text
    .replace(/[`*]/g, '')
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

/** Each line of a Markdown file with fenced code blocks blanked (links and headings there are not real). */
function proseLines(text) {
  let fence = null;
  return text.split('\n').map((line) => {
    const m = /^\s{0,3}(`{3,}|~{3,})/.exec(line);
    if (fence === null && m) {
      fence = m[1][0].repeat(m[1].length);
      return '';
    }
    if (fence !== null) {
      if (line.trim().startsWith(fence)) fence = null;
      return '';
    }
    return line;
  });
}

/** The anchors a Markdown page defines: its headings' slugs (GitHub numbers repeats) and explicit ids. */
export function anchorsOf(text) {
  const anchors = new Set();
  const seen = new Map();
  for (const line of proseLines(text)) {
    const heading = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      const base = slugify(heading[1]);
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      anchors.add(n === 0 ? base : `${base}-${n}`);
    }
    for (const m of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(m[1]);
  }
  return anchors;
}

function walk(root, dir, out) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      if (!SKIPPED_DIRS.has(entry.name)) walk(root, path.join(dir, entry.name), out);
    } else if (entry.isFile() && TEXT_FILE.test(entry.name) && !LOCKFILE.test(entry.name)) {
      out.push(path.relative(root, path.join(dir, entry.name)));
    }
  }
  return out;
}

/**
 * The dead links under `root`: a list of `{ file, line, message }`
 * (file relative to root, line 1-based), empty when every link resolves.
 */
export function checkLinks(root) {
  const files = walk(root, root, []).sort();
  const anchorCache = new Map();
  const anchors = (abs) => {
    if (!anchorCache.has(abs)) anchorCache.set(abs, anchorsOf(fs.readFileSync(abs, 'utf8')));
    return anchorCache.get(abs);
  };
  const problems = [];
  // Checks `target` (a path, with an optional #anchor) from `fromDir`.
  const resolve = (file, line, fromDir, target, shown) => {
    const hash = target.indexOf('#');
    const rawPath = hash < 0 ? target : target.slice(0, hash);
    const anchor = hash < 0 ? '' : target.slice(hash + 1);
    let decoded;
    try {
      decoded = decodeURIComponent(rawPath);
    } catch {
      decoded = rawPath;
    }
    const abs = decoded === '' ? path.join(root, file) : path.resolve(fromDir, decoded);
    if (!abs.startsWith(root + path.sep) && abs !== root) {
      problems.push({ file, line, message: `${shown}: leads outside the repository` });
      return;
    }
    if (!fs.existsSync(abs)) {
      problems.push({ file, line, message: `${shown}: no such file ${path.relative(root, abs)}` });
      return;
    }
    if (anchor === '') return;
    if (!abs.endsWith('.md') || fs.statSync(abs).isDirectory()) return;
    if (!anchors(abs).has(anchor)) {
      problems.push({ file, line, message: `${shown}: ${path.relative(root, abs)} has no heading with the anchor #${anchor}` });
    }
  };

  for (const file of files) {
    const abs = path.join(root, file);
    const text = fs.readFileSync(abs, 'utf8');
    const isMarkdown = file.endsWith('.md');
    const lines = isMarkdown ? proseLines(text) : text.split('\n');
    const rawLines = text.split('\n');
    lines.forEach((line, i) => {
      const n = i + 1;
      if (isMarkdown) {
        const prose = line.replace(/`[^`]*`/g, '');
        for (const m of prose.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
          const target = m[1];
          if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http:, https:, mailto:
          resolve(file, n, path.dirname(abs), target, `link (${target})`);
        }
        for (const m of prose.matchAll(/^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/g)) {
          if (!/^[a-z][a-z0-9+.-]*:/i.test(m[1])) resolve(file, n, path.dirname(abs), m[1], `link (${m[1]})`);
        }
      }
      // Citations anywhere, code blocks included: repository-relative.
      for (const m of rawLines[i].matchAll(/(?<![\w./-])docs\/[\w.-]+\.md(?:#[\w-]+)?/g)) {
        resolve(file, n, root, m[0], `citation ${m[0]}`);
      }
      for (const m of rawLines[i].matchAll(/(?<![\w./-])(docs\/[\w.-]+\.md),?\s*\(?"/g)) {
        problems.push({ file, line: n, message: `citation ${m[1]} names a heading in quotes: cite it as ${m[1]}#<anchor>` });
      }
    });
  }
  return problems;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = path.resolve(process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
  const problems = checkLinks(root);
  for (const p of problems) console.log(`${p.file}:${p.line}: ${p.message}`);
  console.log(problems.length === 0 ? 'links: every link and citation resolves' : `links: ${problems.length} dead`);
  process.exitCode = problems.length === 0 ? 0 : 1;
}
