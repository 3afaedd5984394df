// pages/integrate-onnx.js: Integrate Algorithm into API for environment
// onnx: aai_onnx.json in the editor, the model uploaded beside it.
import { api } from '../api.js';
import { IO, ONNX_CONFIG } from '../catalog.js';
import { append, h, link } from '../dom.js';
import { codeFiles, fetchedCode, keptDraft } from './code-files.js';
import { codeSource, ensureProvisioned } from './common.js';
import { navigate } from '../router.js';
import { app } from '../state.js';
import { act, clearAlert, clearFieldError, field, niceMessage, setAlert, showFieldErrors, apiMessage } from '../ui.js';
import { formKey, store } from '../util.js';
import { build as buildZip } from '../zip.js';
import { lineEditor } from '../editor.js';


// ONNX_FIELDS explains aai_onnx.json beside its editor, in short
// (docs/onnx.md has every field); the postprocess line shown is the
// deployment's output type's.
const ONNX_FIELDS = {
  model: 'The .onnx file: its path inside the code folder.',
  preprocess: 'How each request image (RGB, 0–255) becomes the model\'s input: resized to width × height (resize "stretch", or "letterbox" keeping the aspect ratio, with anchor "center" or "topleft" and pad_value), channel_order "RGB" or "BGR", then (pixel × scale − mean) ÷ std per channel, in layout "NCHW" or "NHWC". Without width and height: the model\'s fixed size (a dynamic model takes each image at its own size).',
  image: 'kind "image": the output (output names it; layout, channel_order) drawn as a PNG: activation "sigmoid" for logits, scaling "unit" [0,1], "symmetric" [−1,1], "raw" 0–255 or "minmax" to 0–255; restore_size crops the letterbox and resizes back to the request\'s size.',
  json: 'kind "json": the outputs named in outputs (all when absent) as nested arrays, one item per image; softmax over the last axis; top_k > 0 gives the K best as {index, label, score}, labels naming a text file in the folder with one label a line.',
  testing_input: 'Optional: an image in the folder that Test Code sends; else a generated image of the model\'s input size.',
  max_batch_size: 'The most images one model run gets (default 8).',
};

// onnxFileName is where a chosen file lands in the code folder: the
// configuration's model path for the one .onnx file, its labels or
// testing_input path for a file of that base name, else its own name.
function onnxFileName(cfg, file, onnxCount) {
  const base = (p) => (typeof p === 'string' ? p.split('/').pop() : '');
  if (/\.onnx$/i.test(file.name) && onnxCount === 1 && typeof cfg.model === 'string' && /\.onnx$/i.test(cfg.model)) return cfg.model;
  const labels = cfg.postprocess && cfg.postprocess.labels;
  if (base(labels) === file.name) return labels;
  if (base(cfg.testing_input) === file.name) return cfg.testing_input;
  return file.name;
}

// onnxSkeletonLoader returns a function reading the generated
// aai_onnx.json (naming model) once; a failure is shown in the page's alert.
function onnxSkeletonLoader(ctx, input, output, model) {
  let skeleton = null;
  return async () => {
    if (skeleton !== null) return skeleton;
    const q = '?environment=onnx&input=' + encodeURIComponent(input) + '&output=' + encodeURIComponent(output) + (model ? '&model=' + encodeURIComponent(model) : '');
    // As text: the generated file's own layout, not a re-serialisation.
    const r = await api('GET', '/api/v1/skeleton' + q, undefined, { blob: true });
    if (r.ok) {
      skeleton = await r.data.text();
      return skeleton;
    }
    setAlert(ctx.alert, 'error', [h('p', null, 'The generated ' + ONNX_CONFIG + ' could not be loaded.'), ...apiMessage(r.data, r.data.fields)]);
    return '';
  };
}

// parseConfig reads the editor's text: cfg (the parsed value, or the
// parse error) and problem, why it cannot be used ('' when it can).
function parseConfig(text) {
  let cfg;
  try {
    cfg = JSON.parse(text);
  } catch (e) {
    cfg = e;
  }
  const problem = !text.trim() ? ONNX_CONFIG + ' is empty.'
    : cfg instanceof Error ? ONNX_CONFIG + ' is not valid JSON: ' + cfg.message
      : !cfg || typeof cfg !== 'object' || Array.isArray(cfg) ? ONNX_CONFIG + ' must be a JSON object ({"model": ..., "preprocess": ..., "postprocess": ...}).' : '';
  return { cfg, problem };
}

// modelProblem says why the chosen files cannot go with the configuration
// ('' when they can): an upload needs the model; an edit keeps the model
// only where it is, so a "model" naming a path the revision does not hold
// needs the model chosen (saved there).
function modelProblem(p, cfg, configProblem, onnxCount) {
  const { c, fc, carry } = p;
  const modelHeld = fc.kind !== 'ok' || configProblem || typeof cfg.model !== 'string' || fc.files.some((x) => x.path === cfg.model);
  return !carry && !onnxCount ? 'Choose the .onnx model: the upload replaces the code folder and keeps nothing of the last one.'
    : carry && !onnxCount && !modelHeld ? '"model" names ' + cfg.model + ', which revision ' + c.revision + ' does not hold: choose the .onnx model (it is saved at that path), or name the model the code holds.' : '';
}

// configUpload is fetch_code's form: an edit of the current revision (with
// the configuration when it changed) or a zip of it, and the chosen files
// at the paths the configuration names (names).
function configUpload(p, text, changed, chosen, cfg, onnxCount) {
  const fd = new FormData();
  if (p.carry) {
    fd.append('base_revision', String(p.c.revision));
    if (changed) fd.append('files', new Blob([text], { type: 'application/json' }), ONNX_CONFIG);
  } else {
    const zip = buildZip([{ name: ONNX_CONFIG, data: text }]);
    fd.append('archive', new Blob([zip], { type: 'application/zip' }), 'aai_onnx.zip');
  }
  const names = [];
  for (const file of chosen) {
    const name = onnxFileName(cfg, file, onnxCount);
    names.push(name);
    fd.append('files', file, name);
  }
  return { fd, names };
}

// saveConfig makes the editor's aai_onnx.json and the chosen files a code
// revision, or none when nothing changed, and goes on to Test Your Code.
async function saveConfig(p, body) {
  const { ctx, c, fc, carry, editor, files, use } = p;
  clearAlert(ctx.alert);
  clearFieldError(p.editorRow);
  clearFieldError(p.filesRow);
  const { cfg, problem } = parseConfig(editor.value);
  const chosen = [...files.files];
  const onnxCount = chosen.filter((file) => /\.onnx$/i.test(file.name)).length;
  const filesProblem = modelProblem(p, cfg, problem, onnxCount);
  if (problem || filesProblem) {
    showFieldErrors(body, [problem ? { field: 'config', message: problem } : null, filesProblem ? { field: 'onnx_files', message: filesProblem } : null].filter(Boolean));
    return;
  }
  const text = editor.value.endsWith('\n') ? editor.value : editor.value + '\n';
  const changed = fc.kind !== 'ok' || text !== (fc.main.endsWith('\n') ? fc.main : fc.main + '\n');
  if (carry && !changed && !chosen.length) {
    // Nothing changed: no new revision, on to the test.
    store.del(p.key);
    app.flash = { kind: 'ok', text: 'Nothing changed: code revision ' + c.revision + ' stays as it is. Press Test Code.' };
    navigate('/ui/deployments/' + ctx.id + '/test');
    return;
  }
  use.disabled = true;
  try {
    const { fd, names } = configUpload(p, text, changed, chosen, cfg, onnxCount);
    if (!(await ensureProvisioned(ctx))) return;
    const r = await ctx.runStep('fetch_code', fd, 'Uploading ' + ONNX_CONFIG);
    ctx.check();
    if (!r.ok) {
      const rest = showFieldErrors(body, r.data.fields, (fe) => ({ name: fe.field === 'files' ? 'onnx_files' : fe.field, message: niceMessage(fe.field, fe.message) }));
      setAlert(ctx.alert, 'error', [h('p', null, 'The code could not be used.'), ...apiMessage(r.data, rest)]);
      return;
    }
    store.del(p.key);
    app.flash = { kind: 'ok', text: ONNX_CONFIG + ' from the editor is now code revision ' + r.data.state.code.revision +
      (carry ? ' (every other file of revision ' + c.revision + ' kept)' : '') + (names.length ? ', with ' + names.join(', ') : '') + '. Press Test Code.' };
    navigate('/ui/deployments/' + ctx.id + '/test');
  } finally {
    if (ctx.alive()) use.disabled = false;
  }
}

// onnxCodeNote says what the editor holds: no code yet, the generated
// configuration written into the author's code, code it cannot show, or
// their own file.
function onnxCodeNote(id, c, fc, model) {
  const codePage = () => link('/ui/deployments/' + id + '/code', 'Code Repo Integration');
  if (!c) return h('div', { class: 'alert info', id: 'code-note' }, h('p', null, 'No code yet. Choose the model, write ' + ONNX_CONFIG + ' below and press Use this code, or fetch a repository or archive on ', codePage(), '.'));
  if (c.generated_main) return h('div', { class: 'alert warn', id: 'code-note' }, h('p', null, 'Your code (revision ' + c.revision + ', ' + codeSource(c) + ') had no ' + ONNX_CONFIG + ', so the generated one was written into it' + (model ? ', naming ' + model : '') + '. It may run as it is (Test Code tells); adapt preprocess to what the model was trained with, then press Save as a new revision (the model and every other file are kept).'));
  if (fc.kind === 'unreadable') return h('div', { class: 'alert warn', id: 'code-note' }, h('p', null, 'Your code (revision ' + c.revision + ', ' + codeSource(c) + ') cannot be shown here: ' + fc.message + '. Fetch it again on ', codePage(), ' to edit it here, or write a new ' + ONNX_CONFIG + ' below (saving keeps every other file).'));
  return h('div', { class: 'alert ok', id: 'code-note' }, h('p', null, 'Your code (revision ' + c.revision + ', ' + codeSource(c) + ') has its own ' + ONNX_CONFIG + ': it is in the editor below, and Test Code runs it. Saving a change makes a new revision that keeps the model and every other file.'));
}

// configEditorRow is the editor's field: its label, hint and error.
function configEditorRow(editor, fc, input, output, model) {
  return h('div', { class: 'field', 'data-field': 'config' },
    h('label', { for: 'editor' }, ONNX_CONFIG),
    h('span', { class: 'hint', id: 'editor-hint' }, (fc.kind === 'ok' ? 'Your ' + ONNX_CONFIG + ' of revision ' + fc.revision + '.'
      : fc.kind === 'none' ? 'Prefilled with the generated ' + IO[input].label + ' → ' + IO[output].label + ' configuration' + (model ? ' for ' + model : '') + '.' : '') + ' JSON; Tab moves to the next control.'),
    editor.el, h('p', { class: 'field-error', id: 'editor-error', 'aria-live': 'polite' }));
}

// onnxFilesRow is the field of the files saved with the configuration.
function onnxFilesRow(files, c) {
  return field('onnx_files', c ? 'More files (optional)' : 'The model and the files ' + ONNX_CONFIG + ' names', files, c
    ? 'Saving makes a new revision from revision ' + c.revision + ' with this ' + ONNX_CONFIG + ': its model and every other file are kept. Files chosen here are added (or replace files of the same path).'
    : 'Using this code replaces the code folder, and an upload keeps nothing of the last one: choose the .onnx model (it is saved at the path "model" names) and any labels file or sample image the configuration names.');
}

// onnxLayout lays the page out: what aai_onnx.json is, the note, the API
// type, the editor beside its fields, its buttons, the files.
function onnxLayout(p, output, reset, save) {
  const { ctx, c, fc, editor, use } = p;
  const { f, id } = ctx;
  const fieldList = h('dl', { class: 'kv onnx-fields', id: 'onnx-fields' },
    ['model', 'preprocess', output === 'json' ? 'json' : 'image', 'testing_input', 'max_batch_size'].map((k) => [
      h('dt', null, h('code', null, k === 'image' || k === 'json' ? 'postprocess' : k)), h('dd', null, ONNX_FIELDS[k])]));
  return [
    h('p', null, 'An ONNX model needs no code: ', h('code', null, ONNX_CONFIG), ' beside it says how each request image becomes the model\'s input (',
      h('code', null, 'preprocess'), ') and how its outputs become the answer (', h('code', null, 'postprocess'), '). The server runs it with ONNX Runtime; unknown fields are errors.'),
    onnxCodeNote(id, c, fc, p.model),
    h('div', { class: 'types', id: 'types' },
      h('div', null, h('h3', null, 'Input: ' + IO[p.input].label), h('p', null, 'The client sends PNG, JPEG or GIF bytes (raw, multipart field "image", base64 in JSON, or a URL). The model gets it through preprocess.')),
      h('div', null, h('h3', null, 'Output: ' + IO[output].label), h('p', null, output === 'json'
        ? 'The client gets application/json: an object with one entry per output postprocess includes.'
        : 'The client gets a lossless PNG (grayscale or RGB) drawn from the model\'s output.'))),
    h('div', { class: 'onnx-editor' }, p.editorRow, h('div', null, h('h3', null, 'Its fields'), fieldList)),
    h('div', { class: 'actions' }, reset, editor.opener('.json,application/json,text/plain', 'Open a .json file…', save)),
    fc.kind === 'ok' ? codeFiles(id, fc, ONNX_CONFIG) : null,
    p.filesRow,
    h('div', { class: 'actions' },
      f.hasCode ? link('/ui/deployments/' + id + '/test', c && !c.generated_main ? 'Keep my code\'s ' + ONNX_CONFIG + ': Test Your Code' : 'Continue to Test Your Code', 'btn', 'to-test') : null,
      h('span', { class: 'spacer' }), use),
  ];
}

// pageIntegrateONNX renders Integrate Algorithm into API for an ONNX model.
export async function pageIntegrateONNX(ctx, body) {
  const { d, f, id } = ctx;
  const sp = d.spec || {};
  const input = sp.input || 'image';
  const output = sp.output || 'image';
  const c = f.st.code;
  const key = formKey(id, 'integrate-onnx');
  const fc = await fetchedCode(id, c, ONNX_CONFIG);
  ctx.check();
  const rev = c ? c.revision : 0;
  const saved = keptDraft(key, rev);
  // The model the generated configuration names: the folder's .onnx file
  // (fetch_code names the folder's one .onnx file the same way).
  const model = (fc.files.find((x) => /\.onnx$/i.test(x.path)) || {}).path || ((c && c.files) || []).find((n) => /\.onnx$/i.test(n)) || '';
  const loadSkeleton = onnxSkeletonLoader(ctx, input, output, model);
  const editor = lineEditor({ name: 'config', describedBy: 'editor-hint editor-error' });
  const original = fc.kind === 'ok' ? fc.main : fc.kind === 'none' ? await loadSkeleton() : '';
  editor.value = saved.config !== undefined ? saved.config : original;
  ctx.check();
  const editorRow = configEditorRow(editor, fc, input, output, model);
  const save = () => store.set(key, { revision: rev, config: editor.value });
  editor.onInput(() => { save(); clearFieldError(editorRow); });
  const files = h('input', { type: 'file', name: 'files', multiple: true, id: 'f-onnx-files' });

  const reset = h('button', { type: 'button', class: 'btn small', id: 'reset-skeleton' }, 'Reset to the generated configuration');
  reset.addEventListener('click', act(async () => {
    // Replacing the author's file is never silent: always asked.
    if (!window.confirm('Replace ' + (c && !c.generated_main ? 'your ' + ONNX_CONFIG : 'the editor\'s text') + ' in the editor with the generated configuration? Nothing is saved until you press the save button.')) return;
    editor.value = await loadSkeleton();
    save();
  }));
  const use = h('button', { type: 'button', class: 'btn primary', id: 'use-code' }, c ? 'Save as a new revision' : 'Use this code');
  if (f.busy) use.disabled = true;
  // With code, saving is an edit of the current revision: the model and
  // every other file are kept (carry). Without, the model must be chosen.
  const p = { ctx, c, fc, key, carry: !!c, model, input, editor, editorRow, files, filesRow: onnxFilesRow(files, c), use };
  use.addEventListener('click', act(() => saveConfig(p, body)));
  append(body, onnxLayout(p, output, reset, save));
}
