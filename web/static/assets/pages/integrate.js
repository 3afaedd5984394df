// pages/integrate.js: Integrate Algorithm into API: aai_main.py in the editor.
import { api } from '../api.js';
import { IO, isONNX } from '../catalog.js';
import { append, h, link } from '../dom.js';
import { codeFiles, fetchedCode } from './code-files.js';
import { codeSource, ensureProvisioned } from './common.js';
import { pageIntegrateONNX } from './integrate-onnx.js';
import { navigate } from '../router.js';
import { app } from '../state.js';
import { act, clearAlert, field, setAlert, apiMessage } from '../ui.js';
import { formKey, store } from '../util.js';
import { build as buildZip } from '../zip.js';
import { lineEditor } from '../editor.js';

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
  // A draft is kept per revision: one typed over an older revision must
  // not pass for an edit of the current one.
  const rev = c ? c.revision : 0;
  let saved = store.get(key, {});
  if (saved.revision !== rev) saved = {};
  let skeleton = null;
  const loadSkeleton = async () => {
    if (skeleton !== null) return skeleton;
    const r = await api('GET', '/api/v1/skeleton?input=' + encodeURIComponent(input) + '&output=' + encodeURIComponent(output));
    skeleton = r.ok ? r.data : '# The skeleton could not be loaded: ' + (r.data.message || r.status) + '\n';
    return skeleton;
  };
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

  const reset = h('button', { type: 'button', class: 'btn small', id: 'reset-skeleton' }, 'Reset to the generated skeleton');
  reset.addEventListener('click', act(async () => {
    // Replacing the author's code is never silent: always asked.
    const what = c && !c.generated_main ? 'your aai_main.py' : 'the editor\'s text';
    if (!window.confirm('Replace ' + what + ' in the editor with the generated skeleton? Nothing is saved until you press ' + useLabel + '.')) return;
    editor.value = await loadSkeleton();
    save();
  }));
  const useLabel = c ? 'Save as a new revision' : 'Use this code';
  const use = h('button', { type: 'button', class: 'btn primary', id: 'use-code' }, useLabel);
  if (f.busy) use.disabled = true;
  const norm = (t) => (t.endsWith('\n') || t === '' ? t : t + '\n');
  use.addEventListener('click', act(async () => {
    clearAlert(ctx.alert);
    if (!editor.value.trim()) {
      setAlert(ctx.alert, 'error', [h('p', null, 'aai_main.py is empty.' + (fc.kind === 'unreadable' ? ' Write it, or press Reset to the generated skeleton.' : ''))]);
      editor.focus();
      return;
    }
    const mainChanged = fc.kind !== 'ok' || norm(editor.value) !== norm(original);
    const reqsChanged = fc.kind !== 'ok' || reqs.value.trim() !== originalReqs.trim();
    if (c && !mainChanged && !reqsChanged) {
      // Nothing changed: no new revision, on to the test.
      store.del(key);
      app.flash = { kind: 'ok', text: 'Nothing changed: code revision ' + c.revision + ' stays as it is. Press Test Code.' };
      navigate('/ui/deployments/' + id + '/test');
      return;
    }
    use.disabled = true;
    try {
      const fd = new FormData();
      if (c) {
        // An edit of the current revision: every other file, models
        // included, is kept.
        fd.append('base_revision', String(c.revision));
        if (mainChanged) fd.append('files', new Blob([norm(editor.value)], { type: 'text/x-python' }), 'aai_main.py');
        if (reqsChanged) fd.append('files', new Blob([reqs.value.trim() ? reqs.value.trim() + '\n' : ''], { type: 'text/plain' }), 'aai_pip-requirements.txt');
      } else {
        const zip = buildZip([
          { name: 'aai_main.py', data: norm(editor.value) },
          { name: 'aai_pip-requirements.txt', data: reqs.value.trim() ? reqs.value.trim() + '\n' : '' },
        ]);
        fd.append('archive', new Blob([zip], { type: 'application/zip' }), 'aai_main.zip');
      }
      if (!(await ensureProvisioned(ctx))) return;
      const r = await ctx.runStep('fetch_code', fd, c ? 'Saving aai_main.py as a new revision' : 'Uploading aai_main.py');
      ctx.check();
      if (!r.ok) {
        const more = r.data.code === 'code_changed' ? [h('p', null, 'Your text stays in the editor; ', h('a', { href: location.pathname, id: 'reload-code' }, 'reload'), ' to see the current code (copy your changes first).')] : [];
        setAlert(ctx.alert, 'error', [h('p', null, 'The code could not be saved.'), ...apiMessage(r.data, r.data.fields), ...more]);
        return;
      }
      store.del(key);
      const nc = r.data.state.code;
      app.flash = { kind: 'ok', text: 'aai_main.py from the editor is now code revision ' + nc.revision + (c ? ' (every other file of revision ' + c.revision + ' kept)' : '') + '. Press Test Code.' };
      navigate('/ui/deployments/' + id + '/test');
    } finally {
      if (ctx.alive()) use.disabled = false;
    }
  }));

  let codeNote;
  if (!c) codeNote = h('div', { class: 'alert info', id: 'code-note' }, h('p', null, 'No code yet. Write aai_main.py below and press Use this code, or fetch it on ', link('/ui/deployments/' + id + '/code', 'Code Repo Integration'), '.'));
  else if (fc.kind === 'unreadable') codeNote = h('div', { class: 'alert warn', id: 'code-note' }, h('p', null, 'Your code (revision ' + c.revision + ', ' + codeSource(c) + ') cannot be shown here: ' + fc.message + '. Fetch it again on ', link('/ui/deployments/' + id + '/code', 'Code Repo Integration'), ' to edit it here, or write a new aai_main.py below (saving keeps every other file).'));
  else if (c.generated_main) codeNote = h('div', { class: 'alert warn', id: 'code-note' }, h('p', null, 'Your code (revision ' + c.revision + ', ' + codeSource(c) + ') had no aai_main.py, so the generated skeleton below was written into it. It runs as it is; make it yours, then press ' + useLabel + ' (every other file is kept).'));
  else codeNote = h('div', { class: 'alert ok', id: 'code-note' }, h('p', null, 'Your code (revision ' + c.revision + ', ' + codeSource(c) + ') has its own aai_main.py: it is in the editor below, and Test Code runs it. Saving a change makes a new revision that keeps every other file.'));

  const hint = fc.kind === 'ok' ? 'Your aai_main.py of revision ' + fc.revision + '.' : fc.kind === 'none' ? 'Prefilled with the generated ' + IO[input].label + ' → ' + IO[output].label + ' skeleton.' : '';
  append(body,
    h('p', null, 'Code integration in ', h('code', null, 'aai_main.py'), ': one class. ', h('code', null, '__init__'), ' loads models once (keep them on ', h('code', null, 'self'), '); ',
      h('code', null, 'predict(x)'), ' does the work for each request; ', h('code', null, 'testing_input_data()'), ' returns a sample input for Test Code.'),
    codeNote,
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
      h('span', { class: 'spacer' }), use));
}
