// pages/new.js: a new deployment's first two pages, Select Data Type,
// Environment Type and Select Server, Naming, Dependencies; what is typed is
// kept as a draft until the deployment is created.
import { api } from '../api.js';
import { IMAGE_APIS, IO, envLabel, envSubject, isONNX, pageTitle, pairsText, servedPairs } from '../catalog.js';
import { $, h, link } from '../dom.js';
import { flowPicture } from '../picture.js';
import { mount, navigate } from '../router.js';
import { app } from '../state.js';
import { act, apiMessage, choice, clearAlert, field, niceMessage, persist, setAlert, showFieldErrors, stepper } from '../ui.js';
import { DRAFT_KEY, store } from '../util.js';

// draftDefaults are a new deployment's first choices.
const draftDefaults = () => ({
  environment: (app.options.environments || ['python'])[0], compute: 'cpu', apitype: 'image:image',
  name: '', description: '', api_name: '', instance_type: '', region: 'us-east-1', threads: '1', requirements: '',
  network: 'outbound',
});
// draft is what the author chose so far on the two pages (sessionStorage).
function draft() {
  return Object.assign(draftDefaults(), store.get(DRAFT_KEY, {}));
}
// newStepper is the stepper of the two pages before the deployment exists.
function newStepper(current) {
  return stepper(current, { datatype: '/ui/new', server: '/ui/new/server' }, { datatype: current === 'server' });
}

// environmentDescription is an environment card's description.
function environmentDescription(e) {
  if (e === 'python') return 'numpy and Pillow preinstalled; add your own pip dependencies on the next page.';
  const served = servedPairs(e);
  if (isONNX(e)) return 'A .onnx model run in the server by ONNX Runtime, no Python code: ' + pairsText(served || []) + '.';
  return '';
}

// apiTypeCard is the choice of one API type ("input:output") with its data
// flow picture and a reason line, shown (and read with the choice) when the
// chosen environment does not serve the type.
function apiTypeCard(key) {
  const [i, out] = key.split(':');
  const el = choice('apitype', key, IO[i].label + ' → ' + IO[out].label, IO[i].short + ' in, ' + IO[out].short + ' out', flowPicture(i, out));
  const reasonId = 'reason-' + key.replace(':', '-');
  el.append(h('span', { class: 'reason', id: reasonId, hidden: true }));
  $('input', el).setAttribute('aria-describedby', reasonId);
  return el;
}

// dataTypeForm is the form of Select Data Type, Environment Type: the
// environments, the servers and the API types, the walkthrough's eight image
// types first.
function dataTypeForm(o) {
  const envs = o.environments.map((e) => choice('environment', e, envLabel(e), environmentDescription(e)));
  const computes = [
    choice('compute', 'cpu', 'CPU server', 'General-purpose instances (' + o.instance_types.cpu.slice(0, 3).join(', ') + ' …). Most image algorithms.'),
    choice('compute', 'gpu', 'GPU server', 'NVIDIA GPU instances (' + o.instance_types.gpu.slice(0, 3).join(', ') + ' …) for deep-learning models.'),
  ];
  const pairs = o.pairs.map((p) => p.input + ':' + p.output);
  const imageAPIs = IMAGE_APIS.filter((k) => pairs.includes(k));
  const more = pairs.filter((k) => !IMAGE_APIS.includes(k));
  return h('form', { class: 'card', novalidate: true, id: 'datatype-form' },
    h('fieldset', null, h('legend', null, 'Environment'), h('div', { class: 'choices two' }, envs)),
    h('fieldset', null, h('legend', null, 'Server'), h('div', { class: 'choices two' }, computes)),
    h('fieldset', { class: 'field', 'data-field': 'apitype', 'aria-describedby': 'apitype-note apitype-error' }, h('legend', null, 'API type: what your algorithm takes and returns'),
      h('p', { class: 'hint', id: 'apitype-hint' }, 'Each picture is the data flow: what a client sends, what your predict(x) works on, what the client gets back.'),
      h('p', { class: 'hint', id: 'apitype-note', hidden: true }),
      h('p', { class: 'field-error', id: 'apitype-error', 'aria-live': 'polite' }),
      h('p', { class: 'group-title' }, 'The 8 image API types'), h('div', { class: 'choices' }, imageAPIs.map(apiTypeCard)),
      more.length ? [h('p', { class: 'group-title' }, 'More API types'), h('div', { class: 'choices' }, more.map(apiTypeCard))] : null),
    h('div', { class: 'actions' }, link('/ui/home', 'Cancel', 'btn'), h('span', { class: 'spacer' }),
      h('button', { type: 'submit', class: 'btn primary', id: 'to-server' }, 'To Server Configuration')));
}

// An environment that serves only some API types (onnx) disables the
// others, each saying why; a chosen type it does not serve stays chosen
// (switching back keeps it) and is explained beside the API types.

// typeProblem says why the chosen API type cannot be deployed with the
// chosen environment ('' when it can).
function typeProblem(form) {
  const env = form.elements.environment.value;
  const served = servedPairs(env);
  const chosen = form.elements.apitype.value;
  if (!served || !chosen || served.includes(chosen)) return '';
  return envSubject(env) + ' serves ' + pairsText(served) + ' only: ' + pairsText([chosen]) + ' is not one of them. Choose one of those, or choose Python 3 to keep ' + pairsText([chosen]) + '.';
}

// showTypes enables the API types the chosen environment serves, redraws
// their pictures for it and explains the rest.
function showTypes(form) {
  const env = form.elements.environment.value;
  const served = servedPairs(env);
  form.querySelectorAll('input[name=apitype]').forEach((input) => showTypeServed(input, env, served));
  const typeNote = $('#apitype-note', form);
  typeNote.hidden = !served;
  typeNote.textContent = served ? envSubject(env) + ' serves ' + pairsText(served) + '; the other API types are disabled.' : '';
  $('#apitype-hint', form).textContent = isONNX(env)
    ? 'Each picture is the data flow: what a client sends, what the model and its aai_onnx.json make of it, what the client gets back.'
    : 'Each picture is the data flow: what a client sends, what your predict(x) works on, what the client gets back.';
  const problem = typeProblem(form);
  $('#apitype-error', form).textContent = problem;
  form.querySelectorAll('input[name=apitype]').forEach((input) => {
    if (problem && input.checked) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  });
}

// showTypeServed enables or disables one API type's card for env.
function showTypeServed(input, env, served) {
  const off = !!served && !served.includes(input.value);
  const label = input.closest('.choice');
  const reason = $('.reason', label);
  const [i, out] = input.value.split(':');
  input.disabled = off;
  label.classList.toggle('off', off);
  reason.hidden = !off;
  reason.textContent = !off ? '' : isONNX(env) ? 'Not served by an ONNX model (image in; image or JSON out).' : 'Not served by ' + envLabel(env) + '.';
  const pic = $('svg', label);
  if (pic) pic.replaceWith(flowPicture(i, out, env));
}

// pageDataType renders Select Data Type, Environment Type.
export function pageDataType() {
  const form = dataTypeForm(app.options);
  const save = persist(form, DRAFT_KEY, draft());
  form.addEventListener('change', () => showTypes(form));
  showTypes(form);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    save();
    if (typeProblem(form)) {
      showTypes(form);
      const first = form.querySelector('input[name=apitype]:not(:disabled)');
      if (first) first.focus();
      return;
    }
    navigate('/ui/new/server');
  });
  mount(pageTitle('datatype'), [
    h('p', { class: 'crumb' }, link('/ui/home', 'Home'), ' / New algorithm'),
    h('h1', { tabindex: -1 }, pageTitle('datatype')),
    h('p', { class: 'lead' }, 'Choose the environment, the kind of server and the API type of your algorithm.'),
    newStepper('datatype'), form]);
}

// serverDraft is the draft the server page starts from: an API type and a
// server type that the options offer (kept, so the form shows them).
function serverDraft(o) {
  const dr = draft();
  if (!o.pairs.some((p) => p.input + ':' + p.output === dr.apitype)) dr.apitype = 'image:image';
  const types = o.instance_types[dr.compute] || o.instance_types.cpu;
  if (!types.includes(dr.instance_type)) dr.instance_type = dr.compute === 'gpu' ? (types.includes('g4dn.xlarge') ? 'g4dn.xlarge' : types[0]) : (types.includes('t3.small') ? 't3.small' : types[0]);
  store.set(DRAFT_KEY, dr);
  return dr;
}

// draftSummary shows what the data type page chose; errors of those fields
// land in its row.
function draftSummary(dr, input, output) {
  return h('div', { class: 'field', 'data-field': 'summary' },
    h('div', { class: 'types summary-types' },
      h('div', null, h('h3', null, 'Environment and server'), h('p', null, envLabel(dr.environment) + ', ' + dr.compute.toUpperCase() + ' server')),
      h('div', null, h('h3', null, 'API type: ' + IO[input].label + ' → ' + IO[output].label), flowPicture(input, output, dr.environment))),
    h('p', null, link('/ui/new', 'Change the data type or environment')), h('p', { class: 'field-error', id: 'summary-error' }));
}

// apiNameField is the API name's row, which also shows the host name being
// made.
function apiNameField(domain) {
  const hostOut = h('output', { class: 'host', id: 'host-preview', for: 'f-api_name', 'aria-live': 'polite' });
  const apiName = h('input', { type: 'text', name: 'api_name', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off', maxlength: 63, id: 'f-api_name' });
  const showHost = () => { hostOut.textContent = 'https://' + (apiName.value.trim() || '<api-name>') + '.' + domain; };
  apiName.addEventListener('input', showHost);
  const row = field('api_name', 'API name', apiName, 'Names the endpoint and its signed certificate: lowercase letters, digits and single hyphens, starting with a letter.');
  row.append(hostOut);
  return { row, showHost };
}

// serverForm is the form of Select Server, Naming, Dependencies.
function serverForm(o, dr, summary, alert, apiNameRow, submit) {
  const types = o.instance_types[dr.compute] || o.instance_types.cpu;
  const reqs = h('textarea', { name: 'requirements', rows: 4, spellcheck: 'false', placeholder: 'scikit-image==0.22.0', id: 'f-requirements' });
  return h('form', { class: 'card', novalidate: true, id: 'server-form' },
    summary, alert,
    h('div', { class: 'row' },
      field('name', 'Algorithm Reference Name', h('input', { type: 'text', name: 'name', maxlength: 100, autocomplete: 'off' }), 'Shown when you manage the algorithm.'),
      apiNameRow),
    field('description', 'Short description', h('textarea', { name: 'description', rows: 2, maxlength: 2000, class: 'short' }), 'A reminder of what the algorithm does.'),
    h('div', { class: 'row3' },
      field('instance_type', 'Server type', h('select', { name: 'instance_type' }, types.map((t) => h('option', { value: t }, t))),
        dr.compute === 'gpu' ? 'GPU instances.' : 't2.small or t3.small are enough for most algorithms (more network speed and RAM than micro).'),
      field('region', 'Region', h('select', { name: 'region' }, o.regions.map((r) => h('option', { value: r.code }, r.name + ' (' + r.code + ')'))), 'Where the algorithm runs.'),
      field('threads', 'Threads', h('input', { type: 'number', name: 'threads', min: 1, max: o.max_threads, step: 1, inputmode: 'numeric' }), '1–' + o.max_threads + ' workers.')),
    field('requirements', 'Python dependencies (pip)', reqs, isONNX(dr.environment)
      ? 'An ONNX model runs without Python: leave this empty (nothing of the ONNX server uses packages listed here).'
      : 'One per line, versions with ==, e.g. mypackage==0.1.1. Installed when the server is created; you can add more after testing.'),
    field('network', 'Network', h('select', { name: 'network' },
      h('option', { value: 'outbound' }, 'Internet (for pip and model downloads)'),
      h('option', { value: 'none' }, 'None (the code reaches nothing)')),
    'Your code runs sandboxed; this is what it may reach while it installs, tests and serves. Never the platform itself.'),
    h('div', { class: 'actions' }, link('/ui/new', 'Back', 'btn'), h('span', { class: 'spacer' }), submit));
}

// createRequest is POST /api/v1/deployments's body from the draft, and the
// line of the requirements box each listed requirement came from (the API
// numbers the non-empty ones).
function createRequest(v, input, output) {
  const lines = [];
  const reqList = [];
  v.requirements.split('\n').forEach((l, i) => {
    if (l.trim()) { reqList.push(l.trim()); lines.push(i + 1); }
  });
  const body = {
    name: v.name, description: v.description, api_name: v.api_name.trim(), environment: v.environment, compute: v.compute,
    instance_type: v.instance_type, region: v.region, threads: v.threads === '' ? 0 : Number(v.threads),
    input, output, requirements: reqList, network: v.network || 'outbound',
  };
  if (!Number.isInteger(body.threads)) body.threads = -1; // the API explains the range
  return { body, lines };
}

// createFieldError places an API field error of the create request: a
// requirement on its line, the data type page's choices in the summary.
function createFieldError(f, lines) {
  const m = f.field.match(/^requirements\[(\d+)\]$/);
  if (m) return { name: 'requirements', message: 'Line ' + lines[Number(m[1])] + ': ' + f.message };
  if (['environment', 'compute', 'input', 'output'].includes(f.field)) return { name: 'summary', message: f.field + ' ' + f.message };
  return { name: f.field, message: niceMessage(f.field, f.message) };
}

// pageServer renders Select Server, Naming, Dependencies; its submit creates
// the deployment.
export function pageServer(gen) {
  const o = app.options;
  const dr = serverDraft(o);
  const [input, output] = dr.apitype.split(':');
  const apiName = apiNameField(o.domain);
  const alert = h('div', { class: 'alert', id: 'page-alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn primary', id: 'create' }, 'Create Server');
  const form = serverForm(o, dr, draftSummary(dr, input, output), alert, apiName.row, submit);
  persist(form, DRAFT_KEY, dr);
  apiName.showHost();

  form.addEventListener('submit', act(async (ev) => {
    ev.preventDefault();
    clearAlert(alert);
    const { body, lines } = createRequest(draft(), input, output);
    submit.disabled = true;
    submit.textContent = 'Creating…';
    const r = await api('POST', '/api/v1/deployments', body);
    if (gen !== app.gen) return;
    submit.disabled = false;
    submit.textContent = 'Create Server';
    if (r.ok) {
      store.del(DRAFT_KEY);
      navigate('/ui/deployments/' + r.data.id + '/code');
      return;
    }
    const rest = showFieldErrors(form, r.data.fields, (f) => createFieldError(f, lines));
    setAlert(alert, 'error', apiMessage(r.data.fields && !rest.length ? { message: 'Fix the fields marked below, then press Create Server again.' } : r.data, rest));
  }));
  mount(pageTitle('server'), [
    h('p', { class: 'crumb' }, link('/ui/home', 'Home'), ' / New algorithm'),
    h('h1', { tabindex: -1 }, pageTitle('server')),
    h('p', { class: 'lead' }, 'Name the algorithm and its API, pick the server and list the Python packages it needs.'),
    newStepper('server'), form]);
}
