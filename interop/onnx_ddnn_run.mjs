// Runs an `idn export onnx` directory of a DDNN package (manifest format idn-onnx-ddnn) with
// onnxruntime-node as the network runs a DDNN: every device graph on its camera's 8-bit views,
// the local aggregator on the device graphs' own scores, the cloud graph on the device graphs'
// own features (absent devices' features zeroed, present 0), and compares each with the
// reference IDN computed (ondevice::Section, LibTorch's cloud section). Each file's sha256 is
// checked against the manifest first.
//
//   node onnx_ddnn_run.mjs --dir DIR --reference REF.json
//     REF.json: {"samples": K, "views": [K * D * C*H*W pixels], "present": [K * D 0/1],
//     "device_scores": [D][K * classes], "device_features": [D][K * bits] (+-1),
//     "device_packed": [D][K * bytes], "local": [K * classes] (absent when no local.onnx),
//     "cloud": [K * classes], "tolerance": 1e-5}. Runs the K samples as one batch and again
//     one by one; features must agree exactly, scores within tolerance * max(1, |b|). Prints
//     one JSON line per value and a summary; exits 1 on any mismatch.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';

function arg(name) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

const dir = arg('--dir');
const refPath = arg('--reference');
if (!dir || !refPath) {
  console.error('usage: onnx_ddnn_run.mjs --dir DIR --reference REF.json');
  process.exit(2);
}
const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
if (manifest.format !== 'idn-onnx-ddnn' || manifest.version !== 1) {
  console.error(`${dir}/manifest.json: not an idn-onnx-ddnn version 1 manifest`);
  process.exit(1);
}

const sessions = {};
for (const g of manifest.graphs) {
  const bytes = readFileSync(join(dir, g.file));
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (sha !== g.sha256) {
    console.error(`${g.file}: sha256 ${sha}, manifest says ${g.sha256}`);
    process.exit(1);
  }
  sessions[g.name] = await ort.InferenceSession.create(bytes, {
    executionProviders: ['cpu'],
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
}

const ref = JSON.parse(readFileSync(refPath, 'utf8'));
const K = ref.samples;
const D = manifest.model.devices;
const classes = manifest.model.classes;
const tol = ref.tolerance ?? 1e-5;
const viewShape = manifest.input.shape.slice(1);
const perView = viewShape.reduce((a, b) => a * b, 1);
const featShape = manifest.features.shape.slice(1);
const bits = featShape.reduce((a, b) => a * b, 1);

// Runs the DDNN on samples [first, first + n).
async function runAll(first, n) {
  const out = { scores: [], features: [], packed: [] };
  const present = new Float32Array(n * D);
  for (let s = 0; s < n; ++s)
    for (let d = 0; d < D; ++d) present[s * D + d] = ref.present[(first + s) * D + d];
  for (let d = 0; d < D; ++d) {
    const view = new Uint8Array(n * perView);
    for (let s = 0; s < n; ++s)
      view.set(ref.views.slice(((first + s) * D + d) * perView, ((first + s) * D + d + 1) * perView), s * perView);
    const r = await sessions[`device${d}`].run({ view: new ort.Tensor('uint8', view, [n, ...viewShape]) });
    out.scores.push(r.scores.data);
    out.features.push(r.features.data);
    out.packed.push(r.features_packed.data);
  }
  if (sessions.local) {
    const scores = new Float32Array(n * D * classes);
    for (let s = 0; s < n; ++s)
      for (let d = 0; d < D; ++d)
        for (let c = 0; c < classes; ++c)
          scores[(s * D + d) * classes + c] = out.scores[d][s * classes + c];
    const r = await sessions.local.run({
      scores: new ort.Tensor('float32', scores, [n, D, classes]),
      present: new ort.Tensor('float32', present, [n, D]),
    });
    out.local = r.local_scores.data;
  }
  const features = new Float32Array(n * D * bits);
  for (let s = 0; s < n; ++s)
    for (let d = 0; d < D; ++d)
      if (present[s * D + d])
        features.set(out.features[d].slice(s * bits, (s + 1) * bits), (s * D + d) * bits);
  const r = await sessions.cloud.run({
    features: new ort.Tensor('float32', features, [n, D, ...featShape]),
    present: new ort.Tensor('float32', present, [n, D]),
  });
  out.cloud = r.scores.data;
  return out;
}

let bad = 0;
function compare(key, got, want, exact) {
  let maxAbs = 0;
  let maxRef = 0;
  let ok = got && got.length === want.length;
  if (ok)
    for (let i = 0; i < got.length; ++i) {
      const d = Math.abs(got[i] - want[i]);
      maxAbs = Math.max(maxAbs, d);
      maxRef = Math.max(maxRef, Math.abs(want[i]));
      if (exact ? d !== 0 : !(d <= tol * Math.max(1, Math.abs(want[i])))) ok = false;
    }
  if (!ok) ++bad;
  console.log(JSON.stringify({ value: key, ok, exact, max_abs: maxAbs, max_ref: maxRef, n: want.length }));
}

const cat = (parts) => parts.flatMap((p) => Array.from(p));
const batched = await runAll(0, K);
const single = [];
for (let s = 0; s < K; ++s) single.push(await runAll(s, 1));
for (const [name, runs] of [['batch', [batched]], ['single', single]]) {
  const pick = (f) => cat(runs.map(f));
  for (let d = 0; d < D; ++d) {
    compare(`${name}/device${d}/scores`, pick((r) => r.scores[d]), ref.device_scores[d], false);
    compare(`${name}/device${d}/features`, pick((r) => r.features[d]), ref.device_features[d], true);
    compare(`${name}/device${d}/features_packed`, pick((r) => r.packed[d]), ref.device_packed[d], true);
  }
  if (ref.local) compare(`${name}/local`, pick((r) => r.local), ref.local, false);
  compare(`${name}/cloud`, pick((r) => r.cloud), ref.cloud, false);
}
console.log(JSON.stringify({ summary: true, mismatched: bad }));
process.exit(bad === 0 ? 0 : 1);
