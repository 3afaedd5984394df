// pages/dependencies.js: Add More Dependencies.
import { isONNX } from '../catalog.js';
import { $, append, h, link } from '../dom.js';
import { navigate, route } from '../router.js';
import { app } from '../state.js';
import { act, apiMessage, clearAlert, field, niceMessage, persist, setAlert, showFieldErrors } from '../ui.js';
import { autoTestKey, formKey, store } from '../util.js';

// pageDependencies renders Add More Dependencies into body.
export async function pageDependencies(ctx, body) {
  const { d, f, id } = ctx;
  const st = f.st;
  const reqs = h('textarea', { name: 'requirements_txt', rows: 8, spellcheck: 'false', autocapitalize: 'off', placeholder: 'mypackage==0.1.1', id: 'f-requirements_txt' });
  const submit = h('button', { type: 'submit', class: 'btn primary', id: 'update-requirements' }, 'Update Requirements');
  if (f.busy) submit.disabled = true;
  const form = h('form', { novalidate: true, id: 'deps-form' },
    field('requirements_txt', 'aai_pip-requirements.txt', reqs, 'One package a line; pin versions with ==, e.g. myPIPpackage==0.1.1. # starts a comment.'),
    h('div', { class: 'actions' }, link('/ui/deployments/' + id + '/test', 'Back to Test Your Code', 'btn'), h('span', { class: 'spacer' }), submit));
  const current = ((st.code && st.code.requirements) || []).join('\n');
  persist(form, formKey(id, 'dependencies'), { requirements_txt: current ? current + '\n' : '' });
  const specReqs = (d.spec && d.spec.requirements) || [];
  form.addEventListener('submit', act(async (ev) => {
    ev.preventDefault();
    clearAlert(ctx.alert);
    showFieldErrors(form, []);
    submit.disabled = true;
    try {
      const d2 = await ctx.waitIdle();
      ctx.check();
      ctx.d = d2;
      const r = await ctx.runStep('install_requirements', { requirements_txt: reqs.value }, 'Installing requirements (pip)');
      ctx.check();
      if (r.ok) {
        const n = (r.data.state && r.data.state.install && r.data.state.install.requirements) || [];
        store.del(formKey(id, 'dependencies'));
        app.flash = { kind: 'ok', nodes: [h('p', null, 'Requirements installed' + (n.length ? ': ' + n.join(', ') : '') + '. Now test again.'),
          h('p', null, h('button', { type: 'button', class: 'btn primary', id: 'retest', onclick: () => { store.set(autoTestKey(id), true); navigate('/ui/deployments/' + id + '/test'); } }, 'Test Code'))] };
        route();
        return;
      }
      const rest = showFieldErrors(form, r.data.fields, (fe) => {
        const m = fe.field.match(/^requirements\[line (\d+)\]$/);
        if (m) return { name: 'requirements_txt', message: 'Line ' + m[1] + ': ' + fe.message };
        return { name: fe.field === 'requirements_txt' ? 'requirements_txt' : fe.field, message: niceMessage(fe.field, fe.message) };
      });
      if (r.data.fields && !rest.length) {
        setAlert(ctx.alert, 'error', [h('p', null, 'Fix the requirements marked below, then press Update Requirements again.')]);
      } else {
        setAlert(ctx.alert, 'error', [h('p', null, h('strong', null, 'pip could not install the requirements.')), h('pre', { class: 'wrap', tabindex: 0, id: 'pip-error' }, r.data.message || ''), ...(rest.length ? apiMessage({ message: '' }, rest).slice(1) : [])]);
      }
    } finally {
      if (ctx.alive()) submit.disabled = false;
    }
  }));
  append(body, isONNX((d.spec || {}).environment)
    ? h('div', { class: 'alert info', id: 'onnx-deps-note' }, h('p', null, 'An ONNX model runs without Python: the ONNX server uses none of these packages, and with none listed no Python environment is made.'))
    : null,
    h('p', null, 'While testing, if your algorithm needs more packages (an ', h('code', null, 'ImportError'), ' or ', h('code', null, 'ModuleNotFoundError'),
      ' in the traceback), add them to ', h('code', null, 'aai_pip-requirements.txt'), ' here, click Update Requirements, then Test Code again.'),
    h('dl', { class: 'kv' },
      h('dt', null, 'Installed with the server'), h('dd', null, specReqs.length ? specReqs.join(', ') : 'nothing beyond numpy and Pillow'),
      h('dt', null, 'In aai_pip-requirements.txt now'), h('dd', null, current ? current.split('\n').join(', ') : 'nothing')),
    form);
}
