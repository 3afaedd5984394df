// pages/home.js: Home, the author's algorithms.
import { api, dpath } from '../api.js';
import { STEP_LABELS } from '../catalog.js';
import { h, link } from '../dom.js';
import { mount, route } from '../router.js';
import { app } from '../state.js';
import { act, apiMessage, setAlert, takeFlash } from '../ui.js';
import { revisions } from './common.js';

// pageHome renders Home.
export async function pageHome(gen) {
  const r = await api('GET', '/api/v1/deployments');
  if (gen !== app.gen) return;
  const alert = h('div', { class: 'alert', id: 'page-alert', hidden: true });
  const list = h('ul', { class: 'algos', id: 'algorithms' });
  const deps = (r.ok && r.data.deployments) || [];
  if (!r.ok) setAlert(alert, 'error', apiMessage(r.data));
  for (const d of deps) list.append(algoItem(d, alert));
  const flash = takeFlash();
  mount('Home', [
    h('div', { class: 'page-head' },
      h('div', null, h('h1', { tabindex: -1 }, 'Home'), h('p', { class: 'lead' }, 'Your algorithms and their APIs.')),
      link('/ui/new', 'Deploy a new algorithm', 'btn primary', 'deploy-new')),
    flash, alert,
    deps.length ? list : h('div', { class: 'card empty' },
      h('p', null, 'No algorithms yet.'),
      h('p', null, 'Bring a Python class with a predict method; algocloud turns it into an HTTPS API with a token and clients.')),
  ]);
}
function algoItem(d, alert) {
  const host = d.api_name + '.' + app.options.domain;
  const del = h('button', { type: 'button', class: 'btn small danger', 'aria-label': 'Delete ' + d.name }, 'Delete');
  del.addEventListener('click', act(async () => {
    if (!window.confirm('Delete "' + d.name + '"? Its endpoint, server, code and certificate are removed, and its API name is freed.')) return;
    del.disabled = true;
    del.textContent = 'Deleting…';
    const r = await api('DELETE', dpath(d.id));
    if (!r.ok) {
      setAlert(alert, 'error', apiMessage(r.data));
      del.disabled = false;
      del.textContent = 'Delete';
      return;
    }
    app.flash = { kind: 'ok', text: '"' + d.name + '" was deleted.' };
    route();
  }));
  return h('li', { class: 'algo', 'data-id': d.id },
    h('div', null,
      h('h2', null, link('/ui/deployments/' + d.id, d.name)),
      d.description ? h('div', { class: 'meta' }, d.description) : null,
      h('div', { class: 'meta' }, h('code', null, host), ' · ', STEP_LABELS[d.step] || d.step),
      d.endpoint ? h('div', { class: 'meta' }, 'Endpoint ', h('code', null, d.endpoint)) : null,
      revisions(d)),
    h('div', { class: 'side' },
      h('span', { class: 'badge ' + d.status }, d.status),
      h('span', null, link('/ui/deployments/' + d.id, d.status === 'draft' ? 'Continue' : 'Open', 'btn small'), ' ', del)),
    d.error ? h('div', { class: 'err' }, 'Last error: ' + d.error) : null);
}
