import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_NODE_FLAGS } from '../../shared/node-flags.js';
import { ROOT } from '../helpers/agents.js';

// The agents' V8 flags live in several places that npm, users and the benchmark start them
// from; a flag missing in one of them would make that way of running silently slower.
describe('agent node flags', () => {
  const flags = AGENT_NODE_FLAGS.join(' ');

  it.each(['sender-agent', 'receiver-agent'])('%s: the source and built CLI start with the flags in their shebang', (agent) => {
    for (const file of [join(ROOT, agent, 'cli.ts'), join(ROOT, 'dist', agent, 'cli.js')]) {
      expect(readFileSync(file, 'utf8').split('\n')[0]).toBe(`#!/usr/bin/env -S node ${flags}`);
    }
  });

  it('the npm scripts pass the same flags', () => {
    const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    for (const agent of ['sender-agent', 'receiver-agent']) expect(scripts[agent]).toBe(`node ${flags} dist/${agent}/cli.js`);
  });
});
