import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    // A hang detector, not a speed check: run three suites at a time (scripts/repeat-tests.mjs,
    // load 5-10 on 2 cores) and tests of 15-20 s alone take 45-60 s (a refused-transfer test of
    // four agent commands hit 60 s). Tests that need longer still say so themselves.
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // zfs-fuse is one daemon shared by every test file: files run one at a time
    fileParallelism: false,
  },
});
