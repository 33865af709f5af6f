// Runs an `idn export onnx` directory with onnxruntime-node, stage by stage as its
// manifest.json says: every graph's inputs come from the model input or from an earlier stage's
// outputs (never from a reference), so differences accumulate as they would in a browser.
// Each file's sha256 is checked against the manifest first.
//
//   node onnx_run.mjs --dir DIR --reference REF.json
//     REF.json: {"samples": K, "input": [K * input floats], "values": {"stage_0/pool1":
//     [K * floats], "exit_0/probs": [...], ...}, "tolerance": 1e-5}. Runs the K samples as one
//     batch and again one by one, compares every graph output the reference has (|a - b| <=
//     tolerance * max(1, |b|)), prints one JSON line per output and exits 1 on any mismatch.
//   node onnx_run.mjs --dir DIR --images IDX.gz --indices 0,1,2
//     Early-exit inference of those images (8-bit IDX, scaled to [0, 1]) with the manifest's
//     exit rule: one line per image, "index I prediction P exit E confidence C".
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import ort from 'onnxruntime-node';

function arg(name) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

const dir = arg('--dir');
if (!dir) {
  console.error('usage: onnx_run.mjs --dir DIR (--reference REF.json | --images IDX.gz --indices I,J)');
  process.exit(2);
}
const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
if (manifest.format !== 'idn-onnx' || manifest.version !== 1) {
  console.error(`${dir}/manifest.json: not an idn-onnx version 1 manifest`);
  process.exit(1);
}
const perSample = manifest.input.shape.slice(1).reduce((a, b) => a * b, 1);

// Every graph, stages first (exits read stage outputs only), each loaded once after its hash
// checked out.
const graphs = [];
for (const [kind, list] of [['stage', manifest.stages], ['exit', manifest.exits]]) {
  for (const g of list) {
    const bytes = readFileSync(join(dir, g.file));
    const sha = createHash('sha256').update(bytes).digest('hex');
    if (sha !== g.sha256) {
      console.error(`${g.file}: sha256 ${sha}, manifest says ${g.sha256}`);
      process.exit(1);
    }
    const session = await ort.InferenceSession.create(bytes, {
      executionProviders: ['cpu'],
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
    });
    graphs.push({ ...g, kind, tag: `${kind}_${g.index}`, session });
  }
}

const numel = (shape, n) => shape.slice(1).reduce((a, b) => a * b, n);

// Runs one graph on `values` ({"input": Float32Array, "stage_0/pool1": ...}) for n samples;
// adds its outputs as "<tag>/<name>".
async function runGraph(g, values, n) {
  const feeds = {};
  for (const v of g.inputs) {
    const data = v.from === 'input' ? values.input : values[`${v.from}/${v.name}`];
    if (!data) throw new Error(`${g.file}: input ${v.name} from ${v.from} not computed`);
    feeds[v.name] = new ort.Tensor('float32', data, [n, ...v.shape.slice(1)]);
  }
  const out = await g.session.run(feeds);
  for (const v of g.outputs) {
    const t = out[v.name];
    if (!t || t.data.length !== numel(v.shape, n))
      throw new Error(`${g.file}: output ${v.name} missing or of the wrong size`);
    values[`${g.tag}/${v.name}`] = t.data;
  }
}

async function runAll(input, n) {
  const values = { input };
  for (const g of graphs) await runGraph(g, values, n);
  return values;
}

if (arg('--reference')) {
  const ref = JSON.parse(readFileSync(arg('--reference'), 'utf8'));
  const k = ref.samples;
  const tol = ref.tolerance ?? 1e-5;
  const input = Float32Array.from(ref.input);
  if (input.length !== k * perSample) throw new Error('reference input has the wrong size');
  // One batch of k, then each sample alone: the batch dimension is symbolic.
  const batched = await runAll(input, k);
  const single = [];
  for (let s = 0; s < k; ++s)
    single.push(await runAll(input.slice(s * perSample, (s + 1) * perSample), 1));
  let bad = 0;
  for (const [key, want] of Object.entries(ref.values)) {
    let maxAbs = 0;
    let maxRel = 0;
    let ok = true;
    const check = (got, offset) => {
      for (let i = 0; i < got.length; ++i) {
        const b = want[offset + i];
        const d = Math.abs(got[i] - b);
        maxAbs = Math.max(maxAbs, d);
        maxRel = Math.max(maxRel, d / Math.max(1, Math.abs(b)));
        if (!(d <= tol * Math.max(1, Math.abs(b)))) ok = false;
      }
    };
    if (!batched[key] || batched[key].length !== want.length) {
      console.log(JSON.stringify({ value: key, ok: false, error: 'not computed or wrong size' }));
      ++bad;
      continue;
    }
    check(batched[key], 0);
    const per = want.length / k;
    for (let s = 0; s < k; ++s) check(single[s][key], s * per);
    if (!ok) ++bad;
    console.log(JSON.stringify({ value: key, ok, max_abs: maxAbs, max_rel: maxRel, n: want.length }));
  }
  console.log(JSON.stringify({ summary: true, values: Object.keys(ref.values).length, mismatched: bad }));
  process.exit(bad === 0 ? 0 : 1);
}

if (arg('--images')) {
  const idx = gunzipSync(readFileSync(arg('--images')));
  const count = idx.readUInt32BE(4);
  const rows = idx.readUInt32BE(8);
  const cols = idx.readUInt32BE(12);
  if (idx.readUInt32BE(0) !== 0x803 || rows * cols !== perSample)
    throw new Error(`${arg('--images')}: not an IDX image file of ${perSample}-pixel images`);
  const classes = manifest.model.classes;
  for (const i of (arg('--indices') ?? '0').split(',').map(Number)) {
    if (!(i >= 0 && i < count)) throw new Error(`index ${i} outside the file's ${count} images`);
    const input = new Float32Array(perSample);
    for (let p = 0; p < perSample; ++p) input[p] = idx[16 + i * perSample + p] / 255;
    const values = { input };
    let answer;
    for (const st of graphs.filter((g) => g.kind === 'stage')) {
      await runGraph(st, values, 1);
      for (const ex of graphs.filter((g) => g.kind === 'exit' && g.stage === st.index)) {
        await runGraph(ex, values, 1);
        const probs = values[`${ex.tag}/probs`];
        let best = 0;
        for (let c = 1; c < probs.length; ++c) if (probs[c] > probs[best]) best = c;
        let h = 0;
        for (const p of probs) if (p > 0) h -= p * Math.log(p);
        const entropy = Math.min(1, Math.max(0, h / Math.log(classes)));
        const last = ex.index === manifest.exits.length - 1;
        const met =
          ex.criterion === 'confidence' ? probs[best] >= ex.threshold : entropy <= ex.threshold;
        answer = { exit: ex.index, prediction: best, confidence: probs[best] };
        if (met || last) break;
        answer = undefined;
      }
      if (answer) break;
    }
    console.log(
      `index ${i} prediction ${answer.prediction} exit ${answer.exit} confidence ${answer.confidence.toFixed(4)}`,
    );
  }
}
