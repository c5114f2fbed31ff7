#!/usr/bin/env node
// Install step: use a prebuilt addon if one loads (node-gyp-build), else try to compile it. A failed
// compile is not an install failure: tessera falls back to its pure-JS backend and says so at run time.
'use strict';
const { spawnSync } = require('child_process');
const path = require('path');

let bin;
try {
  bin = require.resolve('node-gyp-build/bin.js');
} catch {
  process.exit(0);
}
const r = spawnSync(process.execPath, [bin], { stdio: 'inherit', cwd: path.join(__dirname, '..') });
if (r.status !== 0) {
  console.warn('tessera: no prebuilt native addon for this platform and building one failed; ' +
    'the pure-JS backend will be used (slower). Install a C++ toolchain and run `npm rebuild tessera` to retry.');
}
process.exit(0);
