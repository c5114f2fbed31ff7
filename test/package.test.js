'use strict';
// What a user gets: `npm pack`, then install the tarball into a fresh project OFFLINE (from npm's cache,
// as a user without a compiler would, with and without install scripts). The prebuilt addon in
// prebuilds/linux-x64 must serve the cpu backend; with the prebuild removed, the pure-JS backend serves
// and one line says why. Both `require` and `import` work.
const test = require('tape');
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.join(__dirname, '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const env = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
delete env.TESSERA_QUIET;
delete env.TESSERA_NO_NATIVE;

function sh(cmd, args, cwd, extraEnv = {}) {
  const r = spawnSync(cmd, args, { cwd, env: { ...env, ...extraEnv }, encoding: 'utf8', timeout: 300000 });
  return { code: r.status, out: r.stdout || '', err: r.stderr || '' };
}

const probe = `
const t = require('tessera');
const cpu = t.backends().find((b) => b.name === 'cpu');
const a = t.tensor([[1, 2], [3, 4]]);
const m = t.matmul(a, a).toArray();
console.log(JSON.stringify({ cpu: cpu.available, reason: cpu.reason, ran: t.lastRun('matmul').backend, m }));
`;

test('npm pack + offline install: prebuild serves cpu, JS fallback without it', (t) => {
  const prebuildDir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  if (!fs.existsSync(prebuildDir) || fs.readdirSync(prebuildDir).length === 0) {
    const r = sh(npm, ['run', 'prebuild'], root);
    t.equal(r.code, 0, `npm run prebuild${r.code ? ': ' + r.err.slice(-500) : ''}`);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-pack-'));
  try {
    const packed = sh(npm, ['pack', '--pack-destination', tmp, '--json'], root);
    t.equal(packed.code, 0, 'npm pack');
    const info = JSON.parse(packed.out.slice(packed.out.indexOf('[')));
    const files = info[0].files.map((f) => f.path);
    t.ok(files.some((f) => /^prebuilds\/linux-x64\/.+\.node$/.test(f)), 'tarball ships prebuilds/linux-x64/*.node');
    t.ok(files.includes('dist/index.js') && files.includes('dist/index.mjs') && files.includes('dist/index.d.ts'), 'tarball ships dist (cjs, esm, types)');
    t.notOk(files.some((f) => f.startsWith('build/') || f.startsWith('build-cuda/')), 'no local build output in the tarball');
    const tgz = path.join(tmp, info[0].filename);

    for (const [name, flags] of [['scripts', []], ['ignore-scripts', ['--ignore-scripts']]]) {
      const proj = path.join(tmp, `app-${name}`);
      fs.mkdirSync(proj);
      fs.writeFileSync(path.join(proj, 'package.json'), JSON.stringify({ name: `app-${name}`, version: '1.0.0', private: true }));
      const inst = sh(npm, ['install', '--offline', '--no-audit', '--no-fund', ...flags, tgz], proj);
      t.equal(inst.code, 0, `offline install (${name})${inst.code ? ': ' + inst.err.slice(-800) : ''}`);
      t.notOk(fs.existsSync(path.join(proj, 'node_modules', 'tessera', 'build')), `no compile happened at install (${name})`);
      const run = sh(process.execPath, ['-e', probe], proj);
      t.equal(run.code, 0, `require('tessera') runs (${name})${run.code ? ': ' + run.err.slice(-500) : ''}`);
      const res = JSON.parse(run.out.trim().split('\n').pop() || '{}');
      t.equal(res.cpu, true, `cpu backend active from the prebuild (${name}) ${res.reason || ''}`);
      t.equal(res.ran, 'cpu', `matmul ran on cpu (${name})`);
      t.deepEqual(res.m, [[7, 10], [15, 22]], `matmul result (${name})`);
      t.equal(run.err.trim(), '', `no warnings printed (${name})`);

      if (name === 'scripts') {
        const esm = sh(process.execPath, ['--input-type=module', '-e', "import { tensor, matmul, backends } from 'tessera'; import t from 'tessera'; console.log(matmul(tensor([[2]]), tensor([[3]])).item(), typeof t.tensor, backends().length);"], proj);
        t.equal(esm.out.trim(), '6 function 3', `import works${esm.code ? ': ' + esm.err.slice(-500) : ''}`);
        fs.writeFileSync(path.join(proj, 'check.ts'), "import { tensor, Tensor, matmul } from 'tessera';\nconst a: Tensor = tensor([[1, 2]]);\nconst b: Tensor = matmul(a, a.transpose());\nexport const n: number = b.item();\n");
        const tsc = sh(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '--noEmit', '--strict', '--moduleResolution', 'node', '--module', 'commonjs', '--target', 'ES2022', '--lib', 'ES2022,ESNext.Disposable', '--types', 'node', '--typeRoots', path.join(root, 'node_modules', '@types'), 'check.ts'], proj);
        t.equal(tsc.code, 0, `shipped .d.ts type-check a user file${tsc.code ? ': ' + tsc.out.slice(-800) : ''}`);

        // no prebuild for this machine: the JS backend serves, with one line saying why
        fs.rmSync(path.join(proj, 'node_modules', 'tessera', 'prebuilds'), { recursive: true, force: true });
        const fb = sh(process.execPath, ['-e', probe], proj);
        t.equal(fb.code, 0, 'require still works without the prebuild');
        const r2 = JSON.parse(fb.out.trim().split('\n').pop() || '{}');
        t.equal(r2.cpu, false, 'cpu backend reported unavailable');
        t.ok(typeof r2.reason === 'string' && r2.reason.length > 0, `with a reason: ${r2.reason}`);
        t.equal(r2.ran, 'js', 'matmul served by the js backend');
        t.deepEqual(r2.m, [[7, 10], [15, 22]], 'js fallback result');
        const lines = fb.err.trim().split('\n').filter((l) => l.includes('tessera') || l.includes('TESSERA'));
        t.equal(lines.length, 1, `exactly one line explains the fallback: ${lines[0]}`);
        t.ok(/pure-JS/.test(fb.err) && /npm rebuild/.test(fb.err), 'the line says why and how to get the native build');
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  t.end();
});
