#!/usr/bin/env node
// Quantize on load: the decoder's Linear weights become int8 (W8A8), int4 (weight-only, groups of 32; or
// W4A8 with activations: 'int8') or float8 e4m3 (weight-only) QuantizedTensors and run through qmatmul;
// embeddings, norms and the tied lm_head stay float32. Prints weight memory, prefill/decode tokens/s
// against float32, how far the logits move, and how many greedy tokens agree with the float32 model.
//
//   node examples/quantized.js ["prompt"] [--model DIR] [--max N] [--backend cpu|js]
'use strict';
const path = require('path');
const T = require('..');

async function main() {
  const args = process.argv.slice(2);
  const opt = (name, d) => (args.includes(name) ? args.splice(args.indexOf(name), 2)[1] : d);
  const dir = opt('--model', path.join(__dirname, '..', 'models', 'tiny-kjv'));
  const max = Number(opt('--max', 32));
  const backend = opt('--backend', undefined);
  const prompt = args[0] || 'And it came to pass';

  const rows = [];
  let base = null;
  for (const [q, activations] of [[null], ['int8'], ['float8_e4m3fn'], ['int4'], ['int4', 'int8']]) {
    const m = await T.loadModel(dir, { quantize: q || undefined, activations, backend });
    await m.generate(prompt, { maxNewTokens: 4, temperature: 0 }); // warm-up
    const r = await m.generate(prompt, { maxNewTokens: max, temperature: 0 });
    const logits = m.forward(r.promptIds).toFloat32();
    let agree = 0;
    let rel = 0;
    if (!base) base = { ids: r.ids, logits };
    else {
      while (agree < r.ids.length && r.ids[agree] === base.ids[agree]) agree++;
      let num = 0;
      let den = 0;
      for (let i = 0; i < logits.length; i++) {
        num += (logits[i] - base.logits[i]) ** 2;
        den += base.logits[i] ** 2;
      }
      rel = Math.sqrt(num / den);
    }
    const run = q ? T.lastRun('qmatmul') : T.lastRun('linear');
    rows.push({
      weights: (q || 'float32') + (activations ? ` (${activations} activations)` : ''),
      MB: (m.weightBytes / 1048576).toFixed(2),
      'prefill tok/s': r.stats.prefillTokensPerSec.toFixed(0),
      'decode tok/s': r.stats.decodeTokensPerSec.toFixed(1),
      'logits rel err': q ? rel.toFixed(3) : '-',
      'greedy agrees': q ? `${agree}/${r.ids.length}` : '-',
      kernel: `${run.backend}/${run.variant}`,
      text: JSON.stringify(r.text.slice(0, 60)),
    });
    m.dispose();
  }
  console.log(`prompt ${JSON.stringify(prompt)}, ${max} greedy tokens, ${path.basename(dir)}`);
  console.table(rows);
}

main().catch((e) => {
  console.error(e instanceof T.TesseraError ? `error (${e.code}): ${e.message}` : e);
  process.exit(1);
});
