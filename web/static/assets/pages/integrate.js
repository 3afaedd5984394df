// pages/integrate.js: Integrate Algorithm into API: aai_main.py in the editor.
import { api } from '../api.js';
import { IO, isONNX } from '../catalog.js';
import { append, h, link } from '../dom.js';
import { codeFiles, fetchedCode, keptDraft } from './code-files.js';
import { codeSource, ensureProvisioned } from './common.js';
import { pageIntegrateONNX } from './integrate-onnx.js';
import { navigate } from '../router.js';
import { app } from '../state.js';
import { act, clearAlert, field, setAlert, apiMessage } from '../ui.js';
import { formKey, store } from '../util.js';
import { build as buildZip } from '../zip.js';
import { lineEditor } from '../editor.js';

// skeletonLoader returns a function reading the generated aai_main.py of
// an API type once.
function skeletonLoader(input, output) {
  let skeleton = null;
  return async () => {
    if (skeleton !== null) return skeleton;
    const r = await api('GET', '/api/v1/skeleton?input=' + encodeURIComponent(input) + '&output=' + encodeURIComponent(output));
    skeleton = r.ok ? r.data : '# The skeleton could not be loaded: ' + (r.data.message || r.status) + '\n';
    return skeleton;
  };
}

// norm ends a non-empty text with a newline, as files are saved.
const norm = (t) => (t.endsWith('\n') || t === '' ? t : t + '\n');
// reqsText is the requirements box as aai_pip-requirements.txt.
const reqsText = (reqs) => (reqs.value.trim() ? reqs.value.trim() + '\n' : '');

// mainUpload is fetch_code's form: an edit of revision c (every other
// file, models included, is kept) with what changed, or without code a zip
// of aai_main.py and its requirements.
function mainUpload(c, editor, reqs, mainChanged, reqsChanged) {
  const fd = new FormData();
  if (c) {
    fd.append('base_revision', String(c.revision));
    if (mainChanged) fd.append('files', new Blob([norm(editor.value)], { type: 'text/x-python' }), 'aai_main.py');
    if (reqsChanged) fd.append('files', new Blob([reqsText(reqs)], { type: 'text/plain' }), 'aai_pip-requirements.txt');
  } else {
    const zip = buildZip([
      { name: 'aai_main.py', data: norm(editor.value) },
      { name: 'aai_pip-requirements.txt', data: reqsText(reqs) },
    ]);
    fd.append('archive', new Blob([zip], { type: 'application/zip' }), 'aai_main.zip');
  }
  return fd;
}

// saveMain makes the editor's aai_main.py (and requirements) a code
// revision, or none when nothing changed, and goes on to Test Your Code.
async function saveMain(p) {
  const { ctx, c, fc, editor, reqs, use } = p;
  clearAlert(ctx.alert);
  if (!editor.value.trim()) {
    setAlert(ctx.alert, 'error', [h('p', null, 'aai_main.py is empty.' + (fc.kind === 'unreadable' ? ' Write it, or press Reset to the generated skeleton.' : ''))]);
    editor.focus();
    return;
  }
  const mainChanged = fc.kind !== 'ok' || norm(editor.value) !== norm(p.original);
  const reqsChanged = fc.kind !== 'ok' || reqs.value.trim() !== p.originalReqs.trim();
  if (c && !mainChanged && !reqsChanged) {
    // Nothing changed: no new revision, on to the test.
    store.del(p.key);
    app.flash = { kind: 'ok', text: 'Nothing changed: code revision ' + c.revision + ' stays as it is. Press Test Code.' };
    navigate('/ui/deployments/' + ctx.id + '/test');
    return;
  }
  use.disabled = true;
  try {
    const fd = mainUpload(c, editor, reqs, mainChanged, reqsChanged);
    if (!(await ensureProvisioned(ctx))) return;
    const r = await ctx.runStep('fetch_code', fd, c ? 'Saving aai_main.py as a new revision' : 'Uploading aai_main.py');
    ctx.check();
    if (!r.ok) {
      const more = r.data.code === 'code_changed' ? [h('p', null, 'Your text stays in the editor; ', h('a', { href: location.pathname, id: 'reload-code' }, 'reload'), ' to see the current code (copy your changes first).')] : [];
      setAlert(ctx.alert, 'error', [h('p', null, 'The code could not be saved.'), ...apiMessage(r.data, r.data.fields), ...more]);
      return;
    }
    store.del(p.key);
    const nc = r.data.state.code;
    app.flash = { kind: 'ok', text: 'aai_main.py from the editor is now code revision ' + nc.revision + (c ? ' (every other file of revision ' + c.revision + ' kept)' : '') + '. Press Test Code.' };
    navigate('/ui/deployments/' + ctx.id + '/test');
  } finally {
    if (ctx.alive()) use.disabled = false;
  }
}

// mainCodeNote says what the editor holds: no code yet, code it cannot
// show, the skeleton written into the author's code, or their own file.
function mainCodeNote(id, c, fc, useLabel) {
  const codePage = () => link('/ui/deployments/' + id + '/code', 'Code Repo Integration');
  if (!c) return h('div', { class: 'alert info', id: 'code-note' }, h('p', null, 'No code yet. Write aai_main.py below and press Use this code, or fetch it on ', codePage(), '.'));
  if (fc.kind === 'unreadable') return h('div', { class: 'alert warn', id: 'code-note' }, h('p', null, 'Your code (revision ' + c.revision + ', ' + codeSource(c) + ') cannot be shown here: ' + fc.message + '. Fetch it again on ', codePage(), ' to edit it here, or write a new aai_main.py below (saving keeps every other file).'));
  if (c.generated_main) return h('div', { class: 'alert warn', id: 'code-note' }, h('p', null, 'Your code (revision ' + c.revision + ', ' + codeSource(c) + ') had no aai_main.py, so the generated skeleton below was written into it. It runs as it is; make it yours, then press ' + useLabel + ' (every other file is kept).'));
  return h('div', { class: 'alert ok', id: 'code-note' }, h('p', null, 'Your code (revision ' + c.revision + ', ' + codeSource(c) + ') has its own aai_main.py: it is in the editor below, and Test Code runs it. Saving a change makes a new revision that keeps every other file.'));
}

// mainLayout lays the page out: what aai_main.py is, the note, the API
// type, the editor and its buttons, the files, the requirements.
function mainLayout(p, input, output, reset, save) {
  const { ctx, c, fc, editor, reqs, use } = p;
  const { f, id } = ctx;
  const hint = fc.kind === 'ok' ? 'Your aai_main.py of revision ' + fc.revision + '.' : fc.kind === 'none' ? 'Prefilled with the generated ' + IO[input].label + ' → ' + IO[output].label + ' skeleton.' : '';
  return [
    h('p', null, 'Code integration in ', h('code', null, 'aai_main.py'), ': one class. ', h('code', null, '__init__'), ' loads models once (keep them on ', h('code', null, 'self'), '); ',
      h('code', null, 'predict(x)'), ' does the work for each request; ', h('code', null, 'testing_input_data()'), ' returns a sample input for Test Code.'),
    mainCodeNote(id, c, fc, p.useLabel),
    h('div', { class: 'types', id: 'types' },
      h('div', null, h('h3', null, 'Input: ' + IO[input].label), h('p', null, IO[input].input)),
      h('div', null, h('h3', null, 'Output: ' + IO[output].label), h('p', null, IO[output].output))),
    h('div', { class: 'field' },
      h('label', { for: 'editor' }, 'aai_main.py'),
      h('span', { class: 'hint', id: 'editor-hint' }, hint + ' Tab moves to the next control; indent with spaces.'),
      editor.el),
    h('div', { class: 'actions' }, reset, editor.opener('.py,text/x-python,text/plain', 'Open a .py file…', save)),
    fc.kind === 'ok' ? codeFiles(id, fc, 'aai_main.py') : null,
    field('zip_requirements', 'aai_pip-requirements.txt', reqs, c
      ? 'One package a line. Saved with aai_main.py when changed; every other file of your code is kept.'
      : 'One package a line. Uploaded with aai_main.py as your first code revision.'),
    h('div', { class: 'actions' },
      f.hasCode ? link('/ui/deployments/' + id + '/test', c && !c.generated_main ? 'Keep my code as it is: Test Your Code' : 'Continue to Test Your Code', 'btn', 'to-test') : null,
      h('span', { class: 'spacer' }), use),
  ];
}

// pageIntegrate renders Integrate Algorithm into API: aai_main.py (or, for
// an ONNX model, pageIntegrateONNX).
export async function pageIntegrate(ctx, body) {
  const { d, f, id } = ctx;
  const sp = d.spec || {};
  if (isONNX(sp.environment)) return pageIntegrateONNX(ctx, body);
  const input = sp.input || 'image';
  const output = sp.output || 'image';
  const key = formKey(id, 'integrate');
  const c = f.st.code;
  const fc = await fetchedCode(id, c, 'aai_main.py');
  ctx.check();
  const rev = c ? c.revision : 0;
  const saved = keptDraft(key, rev);
  const loadSkeleton = skeletonLoader(input, output);
  // What the code holds now: the editor starts from it, and saving without
  // a change makes no new revision.
  const original = fc.kind === 'ok' ? fc.main : fc.kind === 'none' ? await loadSkeleton() : '';
  const originalReqs = fc.kind === 'ok' ? (fc.reqs !== null ? fc.reqs : '') : ((c && c.requirements) || []).join('\n');
  const editor = lineEditor({ name: 'main', describedBy: 'editor-hint' });
  editor.value = saved.main !== undefined ? saved.main : original;
  ctx.check();
  const reqs = h('textarea', { name: 'requirements_txt', rows: 3, spellcheck: 'false', id: 'f-zip-requirements' });
  reqs.value = saved.requirements_txt !== undefined ? saved.requirements_txt : originalReqs;
  const save = () => store.set(key, { revision: rev, main: editor.value, requirements_txt: reqs.value });
  editor.onInput(save);
  reqs.addEventListener('input', save);

  const useLabel = c ? 'Save as a new revision' : 'Use this code';
  const reset = h('button', { type: 'button', class: 'btn small', id: 'reset-skeleton' }, 'Reset to the generated skeleton');
  reset.addEventListener('click', act(async () => {
    // Replacing the author's code is never silent: always asked.
    const what = c && !c.generated_main ? 'your aai_main.py' : 'the editor\'s text';
    if (!window.confirm('Replace ' + what + ' in the editor with the generated skeleton? Nothing is saved until you press ' + useLabel + '.')) return;
    editor.value = await loadSkeleton();
    save();
  }));
  const use = h('button', { type: 'button', class: 'btn primary', id: 'use-code' }, useLabel);
  if (f.busy) use.disabled = true;
  const p = { ctx, c, fc, key, original, originalReqs, editor, reqs, use, useLabel };
  use.addEventListener('click', act(() => saveMain(p)));
  append(body, mainLayout(p, input, output, reset, save));
}
