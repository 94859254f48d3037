#!/usr/bin/env node
// Generates TypeScript types for proto/zferry.proto into proto/generated/ (or the folder
// given as the first argument), with the same loader options as shared/control.ts so the
// types say what the handlers really receive. test/unit/proto-types.test.ts fails when the
// committed files differ from a fresh generation: run `npm run gen:proto` after editing the proto.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(process.argv[2] ?? join(root, 'proto/generated'));
rmSync(out, { recursive: true, force: true });
const bin = join(root, 'node_modules/@grpc/proto-loader/build/bin/proto-loader-gen-types.js');
const args = [
  bin,
  '--longs=Number',
  '--enums=String',
  '--defaults',
  '--oneofs',
  '--includeComments',
  '--grpcLib=@grpc/grpc-js',
  '--importFileExtension=.js',
  `--outDir=${out}`,
  'proto/zferry.proto',
];
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
process.exitCode = r.status ?? 1;
