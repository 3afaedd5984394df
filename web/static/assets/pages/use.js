// pages/use.js: Using the Algorithm: its endpoint and clients.
import { api, dpath } from '../api.js';
import { IO } from '../catalog.js';
import { append, h, link } from '../dom.js';
import { app } from '../state.js';
import { codeBlock, copyButton } from '../ui.js';

async function clientsRouteExists() {
  if (app.clientsRoute !== undefined) return app.clientsRoute;
  try {
    const res = await fetch('/api/openapi.json');
    const doc = await res.json();
    app.clientsRoute = !!(doc.paths && doc.paths['/api/v1/deployments/{id}/clients']);
  } catch (e) {
    app.clientsRoute = false;
  }
  return app.clientsRoute;
}
function endpointOf(d) {
  const st = d.state || {};
  if (d.endpoint) return { url: d.endpoint, live: true };
  if (st.live && st.live.endpoint) return { url: st.live.endpoint, live: d.status === 'live' };
  if (st.server && st.server.port) return { url: 'https://' + st.server.host + ':' + st.server.port, live: false };
  return { url: 'https://' + d.api_name + '.' + app.options.domain, live: false };
}
// curlFor is the curl command calling the endpoint; with systemRoots (a
// publicly trusted certificate) curl verifies it without --cacert.
export function curlFor(input, output, url, tokenText, systemRoots) {
  const auth = '-H "Authorization: Bearer ' + tokenText + '"';
  const ca = systemRoots ? '' : '--cacert algocloud-ca.pem ';
  const send = {
    image: "-H 'Content-Type: image/png' --data-binary @photo.png",
    numpy: "-H 'Content-Type: application/x-npy' --data-binary @x.npy",
    json: "-H 'Content-Type: application/json' -d '{\"text\": \"hello\"}'",
    file: '-F file=@data.csv',
  }[input];
  const save = { image: ' -o output.png', numpy: ' -o output.npy', json: '', file: ' -OJ' }[output];
  return 'curl -sS ' + ca + auth + ' ' + send + ' "' + url + '/predict"' + save;
}
function pythonFor(input, output, url) {
  const body = {
    image: "body, ctype = open('photo.png', 'rb').read(), 'image/png'",
    numpy: "buf = io.BytesIO(); np.save(buf, np.random.rand(64, 64).astype(np.float32))\nbody, ctype = buf.getvalue(), 'application/x-npy'",
    json: "body, ctype = json.dumps({'text': 'hello'}).encode(), 'application/json'",
    file: "body, ctype = open('data.csv', 'rb').read(), 'text/csv'",
  }[input];
  const q = input === 'file' ? '?filename=data.csv' : '';
  const handle = {
    image: "open('output.png', 'wb').write(answer)",
    numpy: 'print(np.load(io.BytesIO(answer)))',
    json: 'print(json.loads(answer))',
    file: "open(res.headers.get_filename() or 'output', 'wb').write(answer)",
  }[output];
  return [
    '# The endpoint token (shown once by Complete Deployment) is read from the environment.',
    'import io, json, os, ssl, urllib.request',
    input === 'numpy' || output === 'numpy' ? 'import numpy as np' : null,
    '',
    "URL = '" + url + "/predict" + q + "'",
    "TOKEN = os.environ['ALGOCLOUD_ENDPOINT_TOKEN']",
    "ctx = ssl.create_default_context(cafile='algocloud-ca.pem')",
    body,
    "req = urllib.request.Request(URL, data=body, headers={'Authorization': 'Bearer ' + TOKEN, 'Content-Type': ctype})",
    'with urllib.request.urlopen(req, context=ctx) as res:',
    '    answer = res.read()',
    '    ' + handle,
  ].filter((l) => l !== null).join('\n');
}

// pageUse renders Using the Algorithm.
export async function pageUse(ctx, body) {
  const { d, f, id } = ctx;
  const sp = d.spec || {};
  const ep = endpointOf(d);
  const origin = location.origin;
  const nextBtn = d.next_step === 'complete' ? link('/ui/deployments/' + id + '/complete', 'Next: Complete Deployment', 'btn primary', 'to-complete') : null;
  append(body, 
    h('p', null, 'Clients call your algorithm over HTTPS with a bearer token. ',
      ep.live ? 'It is live now.' : 'It answers once you click Complete Deployment, which also makes its token (shown once).'),
    h('dl', { class: 'kv', id: 'endpoint-facts' },
      h('dt', null, 'Endpoint'), h('dd', null, h('code', { id: 'endpoint' }, ep.url + '/predict'), ep.live ? '' : ' (after Complete Deployment)'),
      h('dt', null, 'Host name'), h('dd', null, h('code', null, d.api_name + '.' + app.options.domain)),
      h('dt', null, 'API type'), h('dd', null, IO[sp.input].label + ' → ' + IO[sp.output].label),
      h('dt', null, 'Its OpenAPI document'), h('dd', null, h('code', null, ep.url + '/openapi.json'), ' (for Swagger and client generators)'),
      h('dt', null, 'Token'), h('dd', null, 'Authorization: Bearer <token>. Complete Deployment shows it once; only its hash is kept.')));
  const clientsBox = h('div', { id: 'clients' });
  append(body, clientsBox);
  let shown = false;
  const served = await clientsRouteExists();
  ctx.check();
  if (f.everLive && served) {
    ctx.check();
    shown = await renderClients(ctx, clientsBox);
  }
  ctx.check();
  if (!shown) {
    const caNote = h('p', null, 'The endpoint\'s certificate is signed by this platform\'s CA: download its root once and verify with it (never skip verification).');
    append(clientsBox, 
      h('h2', null, 'curl'),
      caNote,
      codeBlock('curl -sS -o algocloud-ca.pem ' + origin + '/api/ca.pem', 'Download the CA root', 'Copy command'),
      codeBlock('export ALGOCLOUD_ENDPOINT_TOKEN=ep_...   # the endpoint token Complete Deployment shows once\n' +
        curlFor(sp.input, sp.output, ep.url, '$ALGOCLOUD_ENDPOINT_TOKEN'), 'Call the endpoint', 'Copy commands'),
      h('h2', null, 'Python'),
      codeBlock(pythonFor(sp.input, sp.output, ep.url), 'Python 3, standard library', 'Copy code'),
      h('p', { class: 'hint' }, served ? 'The generated clients (a Python module and example, curl, a jQuery page, the OpenAPI file) appear here once the deployment is complete.'
        : 'Generated clients (Python package, jQuery page, OpenAPI file) appear here once this platform serves them.'));
  }
  append(body, h('div', { class: 'actions' }, link('/ui/home', 'Return to Home', 'btn'), h('span', { class: 'spacer' }), nextBtn));
}

// renderClients shows each generated client with a copy button; it returns
// false when the API offers none for this deployment.
async function renderClients(ctx, box) {
  const r = await api('GET', dpath(ctx.id, '/clients'));
  if (!ctx.alive() || !r.ok || typeof r.data !== 'object') return false;
  // {order: [names], clients: {name: {title, filename, content_type, content}}}
  const all = r.data.clients || {};
  let list = Array.isArray(all) ? all : Object.entries(all).map(([name, c]) => Object.assign({ name }, typeof c === 'object' ? c : {}));
  if (Array.isArray(r.data.order)) {
    const rank = (c) => { const i = r.data.order.indexOf(c.name); return i < 0 ? 1e9 : i; };
    list.sort((x, y) => rank(x) - rank(y));
  }
  if (!list.length) return false;
  append(box, h('h2', null, 'Generated clients'),
    h('p', null, 'Each reads the endpoint token from ', h('code', null, r.data.token_env || 'ALGOCLOUD_ENDPOINT_TOKEN'),
      r.data.ca_url ? [' and verifies the endpoint with the CA root from ', h('a', { href: r.data.ca_url, download: 'algocloud-ca.pem' }, r.data.ca_url)] : null, '.'));
  for (const c of list) {
    const name = c.name || c.key || c.filename;
    let content = c.content;
    if (content === undefined && name) {
      const g = await api('GET', dpath(ctx.id, '/clients/' + encodeURIComponent(name)));
      if (!ctx.alive()) return true;
      content = g.ok ? (typeof g.data === 'string' ? g.data : JSON.stringify(g.data, null, 2)) : '(' + (g.data.message || g.status) + ')';
    }
    const blobURL = URL.createObjectURL(new Blob([content || ''], { type: c.content_type || 'text/plain' }));
    app.cleanups.push(() => URL.revokeObjectURL(blobURL));
    append(box, h('section', { class: 'client', 'data-client': name },
      h('div', { class: 'client-head' },
        h('h3', null, (c.title || name) + (c.filename ? ' · ' : ''), c.filename ? h('code', null, c.filename) : null),
        h('span', null, copyButton(() => content || '', 'Copy'), ' ', h('a', { href: blobURL, download: c.filename || name, class: 'btn small' }, 'Download'))),
      h('pre', { tabindex: 0 }, (content || '').length > 30000 ? content.slice(0, 30000) + '\n… (download for the whole file)' : content)));
  }
  return true;
}
