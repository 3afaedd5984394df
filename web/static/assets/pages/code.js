// pages/code.js: Code Repo Integration: fetch the code from Git or an archive.
import { ONNX_CONFIG, isONNX } from '../catalog.js';
import { $, append, h, link } from '../dom.js';
import { codeSource, ensureProvisioned, refreshServerStatus, serverStatus } from './common.js';
import { navigate } from '../router.js';
import { act, choice, clearAlert, field, niceMessage, persist, setAlert, showFieldErrors, apiMessage } from '../ui.js';
import { formKey } from '../util.js';

// gitAuthBox holds a private repository's credentials: never saved in the
// browser (the password is a password input, the key a file), sent once as
// git_auth and never shown back by the platform. read() is git_auth (null
// without a password or key); forget() empties the secret inputs.
function gitAuthBox() {
  const gitUser = h('input', { type: 'text', name: 'git_username', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off', placeholder: 'optional with a token' });
  const gitPass = h('input', { type: 'password', autocomplete: 'new-password', spellcheck: 'false', placeholder: 'password or access token' });
  const gitKey = h('input', { type: 'file' });
  const gitHosts = h('textarea', { name: 'git_known_hosts', rows: 2, spellcheck: 'false', placeholder: 'git.example.com ssh-ed25519 AAAA… (from ssh-keyscan)' });
  const el = h('details', { id: 'git-auth' }, h('summary', null, 'Private repository: credentials'),
    h('p', { class: 'hint' }, 'HTTPS URL: a password or access token. SSH URL (git@host:repo.git): a deploy key without a passphrase and the server’s known_hosts line. They are kept sealed, used only to fetch, and never shown again; put none in the URL.'),
    h('div', { class: 'row' }, field('git_auth.username', 'Username', gitUser), field('git_auth.password', 'Password or token', gitPass)),
    h('div', { class: 'row' }, field('git_auth.ssh_private_key', 'SSH deploy key (file)', gitKey), field('git_auth.known_hosts', 'known_hosts', gitHosts)),
    h('div', { class: 'field', 'data-field': 'git_auth' }, h('p', { class: 'field-error', 'aria-live': 'polite' })));
  const read = async () => {
    if (!gitPass.value && !gitKey.files[0]) return null;
    const a = {};
    if (gitUser.value.trim()) a.username = gitUser.value.trim();
    if (gitPass.value) a.password = gitPass.value;
    if (gitKey.files[0]) a.ssh_private_key = await gitKey.files[0].text();
    if (gitKey.files[0] && gitHosts.value.trim()) a.known_hosts = gitHosts.value.trim() + '\n';
    return a;
  };
  const forget = () => {
    gitPass.value = '';
    gitKey.value = '';
  };
  return { el, read, forget };
}

// codeControls are the code form's inputs: where the code comes from and
// the extra files.
function codeControls() {
  return {
    gitUrl: h('input', { type: 'text', name: 'git_url', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off', placeholder: 'a Git URL, or a local path in dev' }),
    ref: h('input', { type: 'text', name: 'ref', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off', placeholder: 'main' }),
    archive: h('input', { type: 'file', name: 'archive', accept: '.zip,.tar.gz,.tgz,.tar,application/zip,application/gzip' }),
    files: h('input', { type: 'file', name: 'files', multiple: true }),
    folder: h('input', { type: 'text', name: 'folder', autocomplete: 'off', spellcheck: 'false', placeholder: 'models/' }),
  };
}

// codeForm is the form of Code Repo Integration: Git (gitBox, with the
// credentials) or an upload (upBox), and extra files.
function codeForm(id, onnx, c, gitBox, upBox, submit) {
  const srcGit = choice('source', 'git', 'Git repository', 'A URL (or a local path in dev) and a branch, tag or commit.');
  const srcUp = choice('source', 'upload', 'Upload an archive', onnx ? 'A .zip or .tar.gz holding the .onnx model (or upload the model below) and optionally aai_onnx.json.' : 'A .zip or .tar.gz holding aai_main.py.');
  return h('form', { novalidate: true, id: 'code-form' },
    h('fieldset', null, h('legend', null, 'Select code from Git or upload it'), h('div', { class: 'choices two' }, srcGit, srcUp)),
    gitBox, upBox,
    h('fieldset', null, h('legend', null, 'Extra model files (optional)'),
      h('p', { class: 'hint' }, onnx ? 'The .onnx model when the repository or archive lacks it, a labels file, a sample image: added next to aai_onnx.json.'
        : 'Trained models or data your algorithm loads, added next to aai_main.py.'),
      h('div', { class: 'row' }, field('files', 'Files', c.files), field('folder', 'Into the folder', c.folder, 'Relative, e.g. models/; empty: beside ' + (onnx ? ONNX_CONFIG : 'aai_main.py') + '.'))),
    h('div', { class: 'actions' },
      link('/ui/deployments/' + id + '/integrate', onnx ? 'No repository? Upload the model and write aai_onnx.json in the browser' : 'No repository? Write aai_main.py in the browser'),
      h('span', { class: 'spacer' }), submit));
}

// fetchRequest is fetch_code's body: JSON for a Git repository alone, a
// multipart form with an archive or extra files.
function fetchRequest(c, up, auth) {
  const dir = c.folder.value.trim().replace(/^\/+/, '').replace(/\/*$/, '');
  if (!up && !c.files.files.length) {
    const req = { git_url: c.gitUrl.value.trim(), ref: c.ref.value.trim() };
    if (auth) req.git_auth = auth;
    return req;
  }
  const req = new FormData();
  if (up) {
    if (c.archive.files[0]) req.append('archive', c.archive.files[0], c.archive.files[0].name);
  } else {
    req.append('git_url', c.gitUrl.value.trim());
    req.append('ref', c.ref.value.trim());
    if (auth) req.append('git_auth', JSON.stringify(auth));
  }
  for (const file of c.files.files) req.append('files', file, (dir ? dir + '/' : '') + file.name);
  return req;
}

// fetchCode provisions the server when needed, then fetches the code and
// goes on to Integrate; errors land beside their fields.
async function fetchCode(ctx, form, c, auth) {
  const up = form.elements.source.value === 'upload';
  const req = fetchRequest(c, up, up ? null : await auth.read());
  if (up && !c.archive.files[0]) {
    showFieldErrors(form, [{ field: 'archive', message: 'Choose a .zip or .tar.gz archive.' }]);
    return;
  }
  if (!(await ensureProvisioned(ctx))) return;
  refreshServerStatus(ctx);
  const r = await ctx.runStep('fetch_code', req, 'Fetching your code');
  ctx.check();
  if (r.ok) {
    auth.forget();
    navigate('/ui/deployments/' + ctx.id + '/integrate');
    return;
  }
  if ((r.data.fields || []).some((fe) => fe.field.startsWith('git_auth'))) auth.el.open = true;
  const rest = showFieldErrors(form, r.data.fields, (fe) => ({
    name: up && fe.field === 'git_url' ? 'archive' : fe.field,
    message: niceMessage(fe.field, fe.message),
  }));
  setAlert(ctx.alert, 'error', [h('p', null, 'Your code could not be fetched.'), ...apiMessage(r.data, rest)]);
}

// codeIntro says what the code folder must hold.
function codeIntro(onnx) {
  return onnx
    ? h('p', { id: 'code-intro' }, 'Select code from Git or upload it: for an ONNX model the folder holds the ', h('code', null, '.onnx'), ' model and optionally ',
      h('code', null, ONNX_CONFIG), ', its preprocessing and postprocessing (without one, a generated configuration naming the model is written for you; adapt it on the next page). No Python code runs.')
    : h('p', null, 'Select code from Git or upload it: the folder must hold ', h('code', null, 'aai_main.py'),
      ' (without one, the generated skeleton is written for you) and may hold ', h('code', null, 'aai_pip-requirements.txt'), '.');
}

// pageCode renders Code Repo Integration into body.
export async function pageCode(ctx, body) {
  const { d, f, id } = ctx;
  const onnx = isONNX((d.spec || {}).environment);
  const status = serverStatus(ctx);
  const c = codeControls();
  const auth = gitAuthBox();
  const gitBox = h('div', { id: 'git-fields' }, h('div', { class: 'row' },
    field('git_url', 'Git URL', c.gitUrl), field('ref', 'Branch, tag or commit', c.ref, 'Empty: the default branch.')), auth.el);
  const upBox = h('div', { id: 'upload-fields' }, field('archive', 'Code archive', c.archive, 'A single top folder (as GitHub archives have) is stripped.'));
  const submit = h('button', { type: 'submit', class: 'btn primary', id: 'fetch' }, 'Interface Your Algorithm');
  const form = codeForm(id, onnx, c, gitBox, upBox, submit);
  const save = persist(form, formKey(id, 'code'), { source: 'git', git_url: '', ref: 'main', folder: '' });
  const showSource = () => {
    const up = form.elements.source.value === 'upload';
    gitBox.hidden = up;
    upBox.hidden = !up;
  };
  form.addEventListener('change', showSource);
  showSource();
  if (f.busy) submit.disabled = true;

  form.addEventListener('submit', act(async (ev) => {
    ev.preventDefault();
    save();
    clearAlert(ctx.alert);
    showFieldErrors(form, []);
    submit.disabled = true;
    try {
      await fetchCode(ctx, form, c, auth);
    } finally {
      if (ctx.alive()) submit.disabled = false;
    }
  }));

  append(body, codeIntro(onnx), status, form);
  if (f.st.code) {
    append(body, h('p', { class: 'hint' }, 'Fetched now: revision ' + f.st.code.revision + ' (' + codeSource(f.st.code) + '). Fetching again makes a new revision.'));
  }
  // The server is created as soon as the author reaches this page.
  if (!f.provisioned && !f.busy && !(f.st.last_error && f.st.last_error.step === 'provision')) {
    ctx.ownsBusy = true;
    ensureProvisioned(ctx).then((ok) => {
      if (ok && ctx.alive()) refreshServerStatus(ctx);
    }).catch(() => {});
  }
}
