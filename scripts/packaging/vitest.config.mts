// The project's vitest configuration plus the runtime probe
// (runtime-probe.test.ts), for the packaging step's runs of the suite.
import { defineConfig, mergeConfig } from 'vitest/config';

import base from '../../vitest.config.mts';

export default mergeConfig(base, defineConfig({ test: { include: ['scripts/packaging/runtime-probe.test.ts'] } }));
