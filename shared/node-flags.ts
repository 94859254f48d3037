// V8 flags the agents run with: in their bin shebangs (`#!/usr/bin/env -S node …`), the
// npm scripts, the demo and the benchmark (test/unit/node-flags.test.ts keeps them equal).
//
// --initial-old-space-size: the agents' JavaScript heap is small (~16 MB live) while a
// window's worth of chunk buffers (256 MiB by default) lives off-heap. With V8's default
// sizing the old generation's limit sits just above the live heap, and V8 then starts a
// full mark-compact every ~100 ms once the window is in use: ~80 per 2 GiB on the
// receiver, a quarter of its CPU. A 128 MB initial limit took that to 3 (bench/README,
// "Benchmark"). It is a limit, not an allocation: RSS does not grow by it.
export const AGENT_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=128'];
