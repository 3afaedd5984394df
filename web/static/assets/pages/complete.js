// pages/complete.js: Complete Deployment and its endpoint token.
import { api, dpath } from '../api.js';
import { append, h, link } from '../dom.js';
import { serverLine, showState } from './common.js';
import { curlFor } from './use.js';
import { act, clearAlert, codeBlock, copyButton, setAlert, apiMessage } from '../ui.js';

// pageComplete renders Complete Deployment into body.
export async function pageComplete(ctx, body) {
  const { d, f, id } = ctx;
  const sp = d.spec || {};
  const result = h('div', { id: 'complete-result' });
  if (d.next_step === 'complete') {
    const btn = h('button', { type: 'button', class: 'btn primary', id: 'complete' }, 'Complete Deployment');
    if (f.busy) btn.disabled = true;
    btn.addEventListener('click', act(async () => {
      clearAlert(ctx.alert);
      btn.disabled = true;
      ctx.ownsBusy = true;
      const d2 = await ctx.waitIdle();
      ctx.check();
      ctx.d = d2;
      const r = await ctx.runStep('complete', undefined, 'Completing the deployment: starting the endpoint');
      ctx.check();
      if (!r.ok) {
        btn.disabled = false;
        setAlert(ctx.alert, 'error', [h('p', null, 'The deployment could not be completed.'), ...apiMessage(r.data, r.data.fields)]);
        return;
      }
      btn.remove();
      intro.remove();
      showCompleted(ctx, r.data, result);
      showState(r.data);
    }));
    const intro = h('div', null,
      h('p', null, 'Your algorithm passed Test Code. ', h('strong', null, 'It is not deployed until you click Complete Deployment.'),
        d.status === 'live' ? ' The endpoint keeps serving what you completed before until then, and keeps its token.' : ' Completing starts the endpoint and makes its token, shown once.'),
      h('div', { class: 'actions' }, link('/ui/deployments/' + id + '/use', 'Back: Using the Algorithm', 'btn'), h('span', { class: 'spacer' }), btn));
    append(body, intro, result);
    return;
  }
  if (f.everLive) {
    showCompleted(ctx, d, result);
    append(body, result);
    return;
  }
  append(body, h('p', null, 'Test Your Code must pass before the deployment can be completed. ', link('/ui/deployments/' + id + '/test', 'Go to Test Your Code'), '.'));
}

function showCompleted(ctx, r, box) {
  const sp = r.spec || (ctx.d && ctx.d.spec) || {};
  const st = r.state || {};
  const url = r.endpoint || (st.live && st.live.endpoint) || '';
  const nodes = [];
  nodes.push(h('div', { class: 'alert ok', id: 'deployed' }, h('p', null, h('strong', null, r.status === 'live' ? 'Deployed: your algorithm is live.' : 'This deployment is ' + r.status + '.')),
    url ? h('p', null, 'Endpoint ', h('code', { id: 'live-endpoint' }, url + '/predict')) : null,
    serverLine(r)));
  if (r.token) {
    const tokenInput = h('input', { type: 'text', readonly: true, id: 'endpoint-token', value: r.token, 'aria-describedby': 'token-warning', spellcheck: 'false' });
    nodes.push(h('div', { class: 'token-box', id: 'token-box' },
      h('h2', null, 'Endpoint token'),
      h('p', { id: 'token-warning' }, h('strong', null, '⚠ Copy it now: it is shown only once.'), ' Only its hash is kept; a reload of this page cannot show it again.'),
      h('div', { class: 'copy-row' }, h('label', { for: 'endpoint-token', class: 'sr-only' }, 'Endpoint token'), tokenInput, copyButton(() => r.token, 'Copy token')),
      r.token_note ? h('p', { class: 'hint' }, r.token_note) : null));
    // Complete's answer has ca_url when the platform's CA signs the
    // endpoint's certificate; without it the certificate is publicly
    // trusted (ACME) and curl uses the system's roots.
    nodes.push(h('h2', null, 'Try it'), r.ca_url
      ? codeBlock('curl -sS -o algocloud-ca.pem ' + location.origin + r.ca_url + '\n' +
        curlFor(sp.input, sp.output, url, r.token), 'Download the CA root, then call the endpoint', 'Copy commands')
      : codeBlock(curlFor(sp.input, sp.output, url, r.token, true), 'Call the endpoint (its certificate is publicly trusted: no CA file needed)', 'Copy command'));
    tokenInput.addEventListener('focus', () => tokenInput.select());
  } else {
    nodes.push(h('p', null, r.token_note || 'The endpoint token was shown once, when it was made. Send it as Authorization: Bearer <token>.'));
    if (r.status === 'live') nodes.push(newTokenBox(ctx, box));
  }
  nodes.push(h('div', { class: 'actions' },
    link('/ui/deployments/' + ctx.id + '/use', 'Using the Algorithm', 'btn'),
    h('span', { class: 'spacer' }), link('/ui/home', 'Return to Home', 'btn primary')));
  box.replaceChildren();
  append(box, nodes);
}

// newTokenBox offers a new endpoint token to whoever lost theirs (the token
// is shown once and only its hash is kept, so a reload during Complete
// Deployment loses it). The rotation reaches a live endpoint before the API
// answers (no restart): the old token is refused from then on; a stopped
// endpoint takes it when it starts.
function newTokenBox(ctx, box) {
  const btn = h('button', { type: 'button', class: 'btn', id: 'new-token' }, 'Make a new token');
  const out = h('div', { id: 'new-token-result', 'aria-live': 'polite' });
  btn.addEventListener('click', act(async () => {
    if (!window.confirm('Make a new endpoint token? The current token stops working at once.')) return;
    clearAlert(ctx.alert);
    btn.disabled = true;
    try {
      const rot = await api('POST', dpath(ctx.id, '/token'), {});
      ctx.check();
      if (!rot.ok) {
        setAlert(ctx.alert, 'error', [h('p', null, 'No new token was made.'), ...apiMessage(rot.data, rot.data.fields)]);
        return;
      }
      const note = rot.data.token_note && rot.data.token_note.indexOf('refuses the previous token') >= 0
        ? 'The endpoint now accepts only this token.'
        : 'The endpoint accepts only this token once it starts.';
      const input = h('input', { type: 'text', readonly: true, id: 'endpoint-token', value: rot.data.token, 'aria-describedby': 'token-warning', spellcheck: 'false' });
      input.addEventListener('focus', () => input.select());
      out.replaceChildren();
      append(out, [h('div', { class: 'token-box', id: 'token-box' },
        h('h2', null, 'New endpoint token'),
        h('p', { id: 'token-warning' }, h('strong', null, '⚠ Copy it now: it is shown only once.'), ' ' + note),
        h('div', { class: 'copy-row' }, h('label', { for: 'endpoint-token', class: 'sr-only' }, 'Endpoint token'), input, copyButton(() => rot.data.token, 'Copy token')))]);
      btn.remove();
    } finally {
      if (ctx.alive()) btn.disabled = false;
    }
  }));
  return h('div', { class: 'field', id: 'lost-token' },
    h('p', null, 'Lost the token? A new one replaces it.'), btn, out);
}
