// pages/jobs.js: Jobs, a live deployment's async work on the platform:
// its predictions (status, times, output download, logs, webhook
// deliveries), its batches with their progress and webhook deliveries, and
// a form that starts a batch from a zip (with an optional webhook). Each list shows one page of the list route
// (newest first); "Older" follows the route's next_cursor and "Newer" goes
// back. It reads /api/v1/endpoints/{api_name}/... with the signed-in
// (owner's) token and refreshes the pages shown while anything is running.
import { api } from '../api.js';
import { append, h, link } from '../dom.js';
import { app } from '../state.js';
import { act, apiMessage, clearAlert, field, niceMessage, setAlert, showFieldErrors } from '../ui.js';
import { sizeText } from '../util.js';

const FINAL = ['succeeded', 'failed', 'canceled'];
const epath = (d, rest) => '/api/v1/endpoints/' + encodeURIComponent(d.api_name) + (rest || '');
const when = (at) => (at ? new Date(at).toLocaleString() : '–');

// download fetches an authenticated file and hands it to the browser.
async function download(path, filename, box) {
  const r = await api('GET', path, undefined, { blob: true });
  if (!r.ok) {
    setAlert(box, 'error', apiMessage(r.data));
    return;
  }
  const url = URL.createObjectURL(r.data);
  const a = h('a', { href: url, download: filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// PAGE is how many predictions and batches one page of each list shows.
const PAGE = { predictions: 20, batches: 10 };

// deliveries lists the webhook delivery attempts of a prediction or batch
// (path: its .../webhooks route).
async function deliveries(path, box) {
  const r = await api('GET', path);
  box.replaceChildren();
  if (!r.ok) {
    append(box, h('p', { class: 'hint' }, r.status === 404 ? 'This platform records no webhook deliveries.' : (r.data.message || 'cannot read the deliveries')));
    return;
  }
  const list = r.data.attempts || r.data.deliveries || [];
  if (!list.length) {
    append(box, h('p', { class: 'hint' }, 'No webhook deliveries (no webhook, or none due yet).'));
    return;
  }
  const rows = list.map((a) => h('tr', { class: 'delivery' },
    h('td', null, when(a.at)), h('td', null, a.event || ''), h('td', null, String(a.attempt || '')),
    h('td', null, a.status_code ? String(a.status_code) : '–'), h('td', null, a.outcome || ''),
    h('td', null, a.duration_ms !== undefined ? Math.round(a.duration_ms) + ' ms' : ''), h('td', null, a.error || '')));
  append(box, h('table', { class: 'jobs-table' },
    h('thead', null, h('tr', null, ...['At', 'Event', 'Attempt', 'Status', 'Outcome', 'Took', 'Error'].map((c) => h('th', null, c)))),
    h('tbody', null, rows)));
}

// openHooks are the predictions and batches whose deliveries are shown,
// openLogs the predictions whose logs are, and openLong those whose long
// logs were expanded: a refresh re-renders the lists and keeps those open
// (and up to date).
const openHooks = new Set();
const openLogs = new Set();
const openLong = new Set();
// finalLogs caches the GET of finished predictions whose logs were shown:
// those no longer change, so a refresh does not read them again.
const finalLogs = new Map();

// toggle is a button (data-<attr>=id) that shows and hides box, which
// fill() fills each time it opens and on each refresh while open; open
// holds the ids shown.
function toggle(open, attr, id, label, box, fill) {
  box.hidden = !open.has(id);
  if (!box.hidden) fill().catch(() => {});
  return h('button', { type: 'button', class: 'btn small', ['data-' + attr]: id, 'aria-expanded': String(!box.hidden), onclick: act(async (ev) => {
    box.hidden = !box.hidden;
    ev.currentTarget.setAttribute('aria-expanded', String(!box.hidden));
    if (box.hidden) {
      open.delete(id);
      return;
    }
    open.add(id);
    await fill();
  }) }, label);
}

// hooksToggle is the "Webhooks" button of the prediction or batch id: it
// shows and hides its deliveries (path: its .../webhooks route) in box.
const hooksToggle = (id, path, box) => toggle(openHooks, 'webhooks', id, 'Webhooks', box, () => deliveries(path, box));

// LONG is when logs start collapsed: more lines or characters than this.
const LONG = { lines: 12, chars: 2000 };

// logsView shows what p's predict printed: as text in a <pre> (never as
// HTML: the algorithm's author wrote it), collapsed when long.
function logsView(p) {
  const text = p.logs || '';
  if (!text) return h('p', { class: 'hint' }, FINAL.includes(p.status) ? 'Its predict printed nothing.' : 'Its logs come when it ends.');
  const lines = text.replace(/\n$/, '').split('\n').length;
  const head = 'What predict printed: ' + lines + (lines === 1 ? ' line' : ' lines');
  const pre = h('pre', { class: 'wrap logs-text', tabindex: 0, 'aria-label': 'Logs of prediction ' + p.id }, text);
  if (lines <= LONG.lines && text.length <= LONG.chars) return h('div', { class: 'logs' }, h('p', { class: 'hint' }, head), pre);
  const box = h('details', { class: 'logs log', open: openLong.has(p.id) }, h('summary', null, head + ' (' + sizeText(text.length) + ')'), pre);
  box.addEventListener('toggle', () => (box.open ? openLong.add(p.id) : openLong.delete(p.id)));
  return box;
}

// showLogs reads p (a list leaves the logs out) and shows its logs in box.
async function showLogs(d, p, box) {
  let v = finalLogs.get(p.id);
  if (!v) {
    const r = await api('GET', epath(d, '/predictions/' + encodeURIComponent(p.id)));
    if (!r.ok) {
      box.replaceChildren(h('p', { class: 'hint' }, r.data.message || 'Its logs cannot be read.'));
      return;
    }
    v = r.data;
    if (FINAL.includes(v.status)) finalLogs.set(p.id, v);
  }
  box.replaceChildren(logsView(v));
}

// predictionRow is one prediction: status, times, output, deliveries.
function predictionRow(d, p, alert) {
  const out = p.output;
  const own = (p.urls && p.urls.output) || '';
  const stored = out && typeof out === 'object' && out.url && out.content_type && (!own || out.url === own);
  let output = '–';
  if (p.expired) {
    output = h('span', { class: 'hint' }, 'expired (retention deleted it)');
  } else if (p.status === 'succeeded' && stored) {
    output = h('button', { type: 'button', class: 'btn small', 'data-download': p.id,
      onclick: act(() => download(epath(d, '/predictions/' + encodeURIComponent(p.id) + '/output'), out.filename || ('output-' + p.id), alert)) },
    'Download' + (out.size ? ' (' + sizeText(out.size) + ')' : ''));
  } else if (p.status === 'succeeded' && out !== undefined) {
    output = h('code', null, JSON.stringify(out).slice(0, 120));
  } else if (p.error) {
    output = h('span', { class: 'field-error' }, p.error.message || 'failed');
  }
  const hooks = h('div', { class: 'deliveries' });
  const logs = h('div', { class: 'logs-box' });
  const buttons = [toggle(openLogs, 'logs', p.id, 'Logs', logs, () => showLogs(d, p, logs)), ' ',
    hooksToggle(p.id, epath(d, '/predictions/' + encodeURIComponent(p.id) + '/webhooks'), hooks)];
  const pt = p.metrics && p.metrics.predict_time ? p.metrics.predict_time.toFixed(2) + ' s' : '–';
  return [
    h('tr', { class: 'prediction', 'data-id': p.id, 'data-status': p.status },
      h('td', null, h('code', null, p.id)), h('td', null, h('span', { class: 'badge ' + p.status }, p.status)),
      h('td', null, when(p.created_at)), h('td', null, when(p.completed_at)), h('td', null, pt),
      h('td', null, output), h('td', null, buttons)),
    h('tr', { class: 'deliveries-row' }, h('td', { colspan: 7 }, logs, hooks)),
  ];
}

// pager is one list's place: the cursor of the page shown ('' is the
// newest) and those of the newer pages before it, for "Newer".
function pager() {
  return { cursor: '', back: [] };
}

// pageQuery is the list route's query for the page pg shows.
const pageQuery = (pg, limit) => '?limit=' + limit + (pg.cursor ? '&cursor=' + encodeURIComponent(pg.cursor) : '');

// pageNav is a list's "Newer" and "Older" buttons (id prefix name): Older
// follows next, Newer goes back one page; each then calls show.
function pageNav(name, pg, next, show) {
  const nav = h('div', { class: 'actions pager', id: name + '-pager' });
  if (pg.back.length) {
    append(nav, h('button', { type: 'button', class: 'btn small', id: name + '-newer', onclick: act(async () => {
      pg.cursor = pg.back.pop();
      await show();
    }) }, 'Newer'));
  }
  if (next) {
    append(nav, h('button', { type: 'button', class: 'btn small', id: name + '-older', onclick: act(async () => {
      pg.back.push(pg.cursor);
      pg.cursor = next;
      await show();
    }) }, 'Older'));
  }
  return nav.childElementCount ? nav : null;
}

// renderPredictions fills box with the page of predictions pg points at;
// it returns whether any of them is still running.
async function renderPredictions(d, box, alert, pg, show) {
  const r = await api('GET', epath(d, '/predictions' + pageQuery(pg, PAGE.predictions)));
  box.replaceChildren(h('h2', null, pg.cursor ? 'Older predictions' : 'Recent predictions'));
  if (!r.ok) {
    append(box, h('p', { class: 'hint' }, r.data.message || 'Predictions cannot be read.'));
    return false;
  }
  const list = r.data.predictions || [];
  if (!list.length && !pg.cursor) {
    append(box, h('p', { class: 'hint', id: 'no-predictions' }, 'No async predictions yet: POST ' + epath(d, '/predictions') + ', algocloud predict --async ' + d.api_name + ' INPUT, or the Python client\'s predict_async.'));
    return false;
  }
  append(box, h('table', { class: 'jobs-table', id: 'predictions' },
    h('thead', null, h('tr', null, ...['ID', 'Status', 'Created', 'Completed', 'Predict time', 'Output', ''].map((c) => h('th', null, c)))),
    h('tbody', null, list.map((p) => predictionRow(d, p, alert)))),
  pageNav('predictions', pg, r.data.next_cursor, show));
  return list.some((p) => !FINAL.includes(p.status));
}

// batchCard is one batch: a progress bar, counts, rate, ETA, downloads.
function batchCard(d, b, alert) {
  const n = b.counts || {};
  const total = n.total || (n.done || 0) + (n.failed || 0) + (n.left || 0);
  const finished = (n.done || 0) + (n.failed || 0);
  const base = '/batches/' + encodeURIComponent(b.id);
  const facts = [finished + ' of ' + total + ' items', (n.done || 0) + ' done', (n.failed || 0) + ' failed', (n.left || 0) + ' left'];
  if (b.rate) facts.push(b.rate.toFixed(1) + ' items/s');
  if (b.eta_seconds && !FINAL.includes(b.status)) facts.push('about ' + Math.ceil(b.eta_seconds) + ' s left');
  // Outputs written to the user's S3 prefix have no zip here (output.zip answers 409).
  const s3out = b.output && b.output.s3 && b.output.s3.uri;
  if (s3out) facts.push('outputs in ' + s3out);
  const buttons = [];
  if (n.done && !s3out) buttons.push(h('button', { type: 'button', class: 'btn small', 'data-batch-output': b.id, onclick: act(() => download(epath(d, base + '/output.zip'), b.id + '-outputs.zip', alert)) }, 'Download outputs'));
  if (n.failed) buttons.push(h('button', { type: 'button', class: 'btn small', onclick: act(() => download(epath(d, base + '/errors'), b.id + '-errors.jsonl', alert)) }, 'Error report'));
  if (!FINAL.includes(b.status)) {
    buttons.push(h('button', { type: 'button', class: 'btn small', onclick: act(async () => {
      const r = await api('POST', epath(d, base + '/cancel'));
      if (!r.ok) setAlert(alert, 'error', apiMessage(r.data));
    }) }, 'Cancel'));
  }
  const hooks = h('div', { class: 'deliveries' });
  buttons.push(hooksToggle(b.id, epath(d, base + '/webhooks'), hooks));
  return h('section', { class: 'batch', 'data-id': b.id, 'data-status': b.status },
    h('div', { class: 'client-head' }, h('h3', null, h('code', null, b.id), ' ', h('span', { class: 'badge ' + b.status }, b.status)), h('span', null, when(b.created_at))),
    h('progress', { max: Math.max(total, 1), value: finished, 'aria-label': 'Batch ' + b.id + ' progress' }),
    h('p', { class: 'hint batch-counts' }, facts.join(' · ')), b.error ? h('p', { class: 'field-error' }, b.error) : null,
    h('div', { class: 'actions' }, buttons), hooks);
}

// renderBatches fills box with the page of batches pg points at; it
// returns whether any of them is still running.
async function renderBatches(d, box, alert, pg, show) {
  const r = await api('GET', epath(d, '/batches' + pageQuery(pg, PAGE.batches)));
  box.replaceChildren(h('h2', null, pg.cursor ? 'Older batches' : 'Batches'));
  if (!r.ok) {
    append(box, h('p', { class: 'hint' }, r.data.message || 'Batches cannot be read.'));
    return false;
  }
  const list = r.data.batches || [];
  if (!list.length && !pg.cursor) append(box, h('p', { class: 'hint', id: 'no-batches' }, 'No batches yet.'));
  append(box, list.map((b) => batchCard(d, b, alert)), pageNav('batches', pg, r.data.next_cursor, show));
  return list.some((b) => !FINAL.includes(b.status));
}

// batchForm starts a batch from a zip or tar of inputs, with an optional
// webhook. The API checks the webhook's URL (the platform's URL policy): a
// refused one comes back as its error beside the field.
function batchForm(d, alert, refresh) {
  const file = h('input', { type: 'file', id: 'batch-archive', accept: '.zip,.tar,.tar.gz,.tgz,application/zip,application/x-tar' });
  const hook = h('input', { type: 'url', id: 'batch-webhook', name: 'webhook', autocomplete: 'off' });
  const form = h('form', { id: 'batch-form', class: 'card-inner', novalidate: true },
    h('h2', null, 'Start a batch'),
    h('p', { class: 'hint' }, 'A .zip or .tar of inputs: each file is one input; the outputs come back as one zip, with a report of the items that failed.'),
    field('archive', 'Archive of inputs', file),
    field('webhook', 'Webhook (optional)', hook, 'An https URL the platform tells when the batch starts and when it ends (signed, Standard Webhooks).'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary', id: 'start-batch' }, 'Start batch')));
  form.addEventListener('submit', act(async (ev) => {
    ev.preventDefault();
    clearAlert(alert);
    showFieldErrors(form, []);
    if (!file.files.length) {
      showFieldErrors(form, [{ field: 'archive', message: 'Choose a .zip or .tar of inputs first.' }]);
      setAlert(alert, 'error', [h('p', null, 'Choose a .zip or .tar of inputs first.')]);
      return;
    }
    const body = new FormData();
    if (hook.value.trim()) body.append('webhook', hook.value.trim());
    body.append('archive', file.files[0], file.files[0].name);
    const r = await api('POST', epath(d, '/batches'), body);
    if (!r.ok) {
      const rest = showFieldErrors(form, r.data.fields, (fe) => ({ name: fe.field, message: niceMessage(fe.field, fe.message) }));
      setAlert(alert, 'error', [h('p', null, 'The batch was not started.'), ...apiMessage(r.data, rest)]);
      return;
    }
    form.reset();
    setAlert(alert, 'ok', [h('p', null, 'Batch ' + r.data.id + ' started.')]);
    await refresh();
  }));
  return form;
}

// pageJobs renders Jobs: predictions, batches and the batch form, and
// refreshes them every 2 s while something runs (every 10 s otherwise).
export async function pageJobs(ctx, body) {
  const { d, id } = ctx;
  const alert = h('div', { class: 'alert', id: 'jobs-alert', hidden: true });
  const preds = h('div', { id: 'jobs-predictions' });
  const batches = h('div', { id: 'jobs-batches' });
  let timer = null;
  let stopped = false;
  app.cleanups.push(() => { stopped = true; if (timer) clearTimeout(timer); });
  const predPages = pager();
  const batchPages = pager();
  openHooks.clear();
  openLogs.clear();
  openLong.clear();
  finalLogs.clear();
  const refresh = async () => {
    if (timer) clearTimeout(timer);
    const [a, b] = await Promise.all([
      renderPredictions(d, preds, alert, predPages, refresh), renderBatches(d, batches, alert, batchPages, refresh)]);
    if (stopped || !ctx.alive()) return;
    timer = setTimeout(() => { refresh().catch(() => {}); }, a || b ? 2000 : 10000);
  };
  append(body,
    h('p', null, 'Async predictions and batch jobs of ', h('code', null, d.api_name), ' run on the platform, durably: they finish even when the platform restarts. ',
      'Create them with the API, ', h('code', null, 'algocloud predict --async'), ', ', h('code', null, 'algocloud batch'), ' or the Python client (', link('/ui/deployments/' + id + '/use', 'Using the Algorithm'), ').'),
    alert, batchForm(d, alert, () => { batchPages.cursor = ''; batchPages.back = []; return refresh(); }), batches, preds);
  await refresh();
}
