// lib/ has no import cycle: every module can be read on its own, after the
// modules it imports, and a change in one cannot half-load another. Type-only
// imports count too (they tie the modules together just the same).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { repoRoot } from './helpers.js';

type Graph = Map<string, string[]>;

const IMPORT_PATTERNS = [
  // import ... from './x.js'; export ... from './x.js'; import './x.js'
  /\b(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?['"](\.[^'"]+)['"]/g,
  // import('./x.js') (dynamic, or a type query) and require('./x.js')
  /\b(?:import|require)\s*\(\s*['"](\.[^'"]+)['"]\s*\)/g,
];

/** The relative imports of one source file, as written. */
function importsOf(source: string): string[] {
  const found: string[] = [];
  for (const pattern of IMPORT_PATTERNS) for (const m of source.matchAll(pattern)) found.push(m[1]);
  return found;
}

/** './x.js' seen from lib/a/b.ts -> 'a/x.ts' (relative to lib/), the file that exists. */
function resolve(libDir: string, from: string, specifier: string): string {
  const base = path.join(path.dirname(path.join(libDir, from)), specifier).replace(/\.(m?)js$/, '');
  for (const ext of ['.ts', '.mts']) {
    if (fs.existsSync(base + ext)) return path.relative(libDir, base + ext);
  }
  throw new Error(`${from}: cannot resolve '${specifier}'`);
}

function sourceFiles(dir: string, prefix = ''): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (e.isDirectory()) return sourceFiles(path.join(dir, e.name), path.join(prefix, e.name));
    return /\.m?ts$/.test(e.name) && !e.name.endsWith('.d.ts') ? [path.join(prefix, e.name)] : [];
  });
}

function importGraph(libDir: string): Graph {
  const graph: Graph = new Map();
  for (const file of sourceFiles(libDir)) {
    const source = fs.readFileSync(path.join(libDir, file), 'utf8');
    graph.set(file, importsOf(source).map((s) => resolve(libDir, file, s)));
  }
  return graph;
}

/** Every cycle found by a depth-first walk, each as the chain of modules that closes it. */
function findCycles(graph: Graph): string[][] {
  const cycles: string[][] = [];
  const done = new Set<string>();
  const onPath: string[] = [];
  const visit = (node: string): void => {
    const at = onPath.indexOf(node);
    if (at >= 0) {
      cycles.push([...onPath.slice(at), node]);
      return;
    }
    if (done.has(node)) return;
    onPath.push(node);
    for (const next of graph.get(node) ?? []) visit(next);
    onPath.pop();
    done.add(node);
  };
  for (const node of [...graph.keys()].sort()) visit(node);
  return cycles;
}

describe('lib/ imports', () => {
  it('form no cycle', () => {
    const graph = importGraph(path.join(repoRoot, 'lib'));
    // The walk saw the whole of lib/ (a parser that found nothing would pass).
    expect(graph.get('client.ts')).toContain('options.ts');
    expect(graph.get('index.mts')).toContain('index.ts');
    expect(findCycles(graph).map((c) => c.join(' -> '))).toEqual([]);
  });

  it('the check finds a planted cycle, type-only and dynamic imports included', () => {
    const dir = fs.mkdtempSync(path.join(repoRoot, 'node_modules', '.lib-imports-'));
    try {
      fs.writeFileSync(path.join(dir, 'a.ts'), "import { b } from './b.js';\n");
      fs.writeFileSync(path.join(dir, 'b.ts'), "import type { C } from './c.js';\n");
      fs.writeFileSync(path.join(dir, 'c.ts'), "export const a = () => require('./a.js');\n");
      fs.writeFileSync(path.join(dir, 'd.ts'), "export * from './a.js';\n");
      expect(findCycles(importGraph(dir)).map((c) => c.join(' -> '))).toEqual(['a.ts -> b.ts -> c.ts -> a.ts']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
