import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/helpers/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Each e2e file starts its own HAProxy; two cores run two files at a time comfortably.
    maxWorkers: 2,
  },
});
