// A vitest reporter for the Windows run: writes every test's full name,
// state and skip reason, and the files that failed to load, as JSON to the
// file SIPC_WIN_RESULTS names. scripts/win/summarize.mjs reads it (on the
// Linux side: node.exe under Wine cannot write to a pipe).
import * as fs from 'node:fs';

export default class WindowsResults {
  onTestRunEnd(testModules, unhandledErrors, reason) {
    const tests = [];
    const brokenFiles = [];
    for (const module of testModules) {
      if (module.errors().length > 0) brokenFiles.push(module.moduleId);
      for (const test of module.children.allTests()) {
        const result = test.result();
        tests.push({ name: test.fullName, state: result.state, note: result.note ?? '' });
      }
    }
    const results = { reason, tests, brokenFiles, unhandledErrors: unhandledErrors.length };
    fs.writeFileSync(process.env.SIPC_WIN_RESULTS, JSON.stringify(results, null, 1));
  }
}
