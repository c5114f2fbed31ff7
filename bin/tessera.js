#!/usr/bin/env node
// tessera command line. `tessera info`: backends (and why one is unavailable), CPU features, GPU, build.
'use strict';
const os = require('os');
const path = require('path');

const cmd = process.argv[2];
if (cmd === 'info') {
  process.env.TESSERA_QUIET = '1';
  const T = require(path.join(__dirname, '..', 'dist', 'index.js'));
  const pkg = require(path.join(__dirname, '..', 'package.json'));
  console.log(`tessera ${pkg.version} on node ${process.version} (${process.platform}-${process.arch}, N-API ${process.versions.napi})`);
  console.log(`cpu: ${os.cpus()[0] ? os.cpus()[0].model : 'unknown'}, ${os.cpus().length} logical cores`);
  for (const b of T.backends()) {
    const d = Object.entries(b.detail).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' ');
    console.log(`backend ${b.name.padEnd(4)} ${b.available ? 'available  ' + d : 'unavailable: ' + b.reason}`);
  }
  console.log(`default backend for host tensors: ${T.getBackend()}`);
} else {
  console.error(`usage: tessera info${cmd ? `\nunknown command: ${cmd}` : ''}`);
  process.exitCode = cmd ? 1 : 0;
}
