// pages/code-files.js: a code revision's files as the API keeps them, read
// for the Integrate pages' editors and listed beside them.
import { api, dpath } from '../api.js';
import { h } from '../dom.js';
import { act } from '../ui.js';
import { sizeText, store } from '../util.js';

// keptDraft is what the author typed into the editor of revision rev (a
// draft is kept per revision: one typed over an older revision must not
// pass for an edit of the current one).
export function keptDraft(key, rev) {
  const saved = store.get(key, {});
  return saved.revision !== rev ? {} : saved;
}

// fetchedCode reads the current code revision as the API keeps it: the
// listing, its main file (aai_main.py, or aai_onnx.json for ONNX) and its
// requirements, so the Integrate page edits the author's own file. kind:
// 'none' (no code yet), 'ok', or 'unreadable' (a revision fetched before
// the platform kept a copy, or a main file it cannot show; message says why).
export async function fetchedCode(id, c, mainName) {
  if (!c) return { kind: 'none', files: [] };
  const l = await api('GET', dpath(id, '/code'));
  if (!l.ok) return { kind: 'unreadable', files: [], message: l.data.message || ('HTTP ' + l.status) };
  const out = { kind: 'ok', revision: l.data.revision, files: l.data.files || [], main: null, reqs: null };
  const read = async (name) => {
    const f = out.files.find((x) => x.path === name);
    if (!f || !f.viewable) return null;
    const r = await api('GET', dpath(id, '/code/file?path=' + encodeURIComponent(name)));
    return r.ok && typeof r.data === 'string' ? r.data : null;
  };
  out.main = await read(mainName);
  out.reqs = await read('aai_pip-requirements.txt');
  if (out.main === null) {
    const f = out.files.find((x) => x.path === mainName);
    return Object.assign(out, { kind: 'unreadable', message: f ? mainName + ' (' + sizeText(f.size) + ') is too large or not text to show here' : 'revision ' + out.revision + ' has no ' + mainName });
  }
  return out;
}

// codeFiles lists a revision's files, the text ones viewable (read-only):
// saving an edit keeps every one of them.
export function codeFiles(id, fc, mainName) {
  const title = h('h3', { id: 'file-view-title' });
  const viewer = h('pre', { class: 'traceback', id: 'file-view', tabindex: 0 });
  const box = h('div', { id: 'file-view-box' }, title, viewer);
  box.hidden = true;
  const items = fc.files.map((f) => {
    const note = f.path === mainName ? ', in the editor' : !f.viewable ? (f.text ? ', too large to show' : ', binary') : '';
    const li = h('li', { 'data-path': f.path }, h('code', null, f.path), ' ', h('small', null, sizeText(f.size) + note));
    if (f.viewable && f.path !== mainName) {
      const view = h('button', { type: 'button', class: 'btn small', 'data-view': f.path, 'aria-controls': 'file-view' }, 'View');
      view.addEventListener('click', act(async () => {
        const r = await api('GET', dpath(id, '/code/file?path=' + encodeURIComponent(f.path)));
        title.textContent = f.path + ' (revision ' + fc.revision + ', read-only)';
        viewer.textContent = r.ok ? r.data : (r.data.message || 'HTTP ' + r.status);
        box.hidden = false;
        viewer.focus();
      }));
      li.append(' ', view);
    }
    return li;
  });
  return h('details', { id: 'code-files', open: fc.files.length <= 20 },
    h('summary', null, 'The files of revision ' + fc.revision + ' (' + fc.files.length + (fc.files.length === 1 ? ' file' : ' files') + '): saving keeps every one not changed here'),
    h('ul', { class: 'code-files' }, items), box);
}
