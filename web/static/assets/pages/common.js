// pages/common.js: what the deployment pages share: where a deployment
// stands, its server, its code's source, and provisioning.
import { STEP_LABELS } from '../catalog.js';
import { $, h } from '../dom.js';
import { app } from '../state.js';
import { setAlert, apiMessage } from '../ui.js';

const RANK = { configured: 0, provisioned: 1, code_fetched: 2, requirements_installed: 3, tested: 4, completed: 5 };
// facts derives what the pages ask of a deployment: its rank in the walk,
// whether it has code, whether its install and test are those of the
// current code, whether it is busy or gone.
export function facts(d) {
  const st = d.state || {};
  const rank = d.step in RANK ? RANK[d.step] : -1;
  const everLive = d.status === 'live' || d.status === 'stopped';
  const hasCode = !!st.code || rank >= 2;
  const installCurrent = !!(st.code && st.install && st.install.code_revision === st.code.revision);
  const testCurrent = !!(st.test && st.test.ok && st.code && st.install &&
    st.test.code_revision === st.code.revision && st.test.install_revision === st.install.revision);
  const gone = d.status === 'deleting' || d.status === 'deleted';
  return { st, rank, everLive, hasCode, installCurrent, testCurrent, gone, busy: st.busy || '', provisioned: !!(st.server && st.cert) };
}

// ensureProvisioned waits for the server (starting provisioning when nobody
// has) and returns whether it is there.
export function ensureProvisioned(ctx) {
  if (!ctx.provisioning) {
    ctx.provisioning = (async () => {
      const d = await ctx.waitIdle();
      if (facts(d).provisioned) return true;
      const r = await ctx.runStep('provision');
      ctx.check();
      if (!r.ok) {
        setAlert(ctx.alert, 'error', [h('p', null, 'The server could not be provisioned.'), ...apiMessage(r.data)]);
        return false;
      }
      ctx.d = r.data;
      return true;
    })().finally(() => { ctx.provisioning = null; });
  }
  return ctx.provisioning;
}
// refreshServerStatus redraws the server's status and the page head.
export function refreshServerStatus(ctx) {
  const cur = $('#server-status');
  if (cur) cur.replaceWith(serverStatus(Object.assign({}, ctx, { f: facts(ctx.d) })));
  showState(ctx.d);
}
// revisions says what serves (code revision, commit, install, since when)
// and what is staged for Complete, from the API's serving and staged; the
// element is empty when neither exists. id names it on a deployment's page
// (showState replaces it); the list's items have none.
export function revisions(d, id) {
  const sv = d.serving;
  const sg = d.staged;
  return h('div', { class: 'revisions meta', id },
    sv ? h('p', { class: 'serving', 'data-code-revision': sv.code_revision },
      h('strong', null, 'Serving'), ' code revision ' + sv.code_revision + originText(sv.commit, sv.source) +
      ', install ' + sv.install_revision + (sv.requirements && sv.requirements.length ? ' (' + sv.requirements.join(', ') + ')' : '') +
      ', since ' + sinceText(sv.since)) : null,
    sg ? h('p', { class: 'staged', 'data-code-revision': sg.code_revision },
      h('strong', null, 'Staged'), ' code revision ' + sg.code_revision + originText(sg.commit, '') +
      (sg.install_revision ? ', install ' + sg.install_revision : '') + ': ' + stagedText(sg)) : null);
}
function originText(commit, source) {
  if (commit) return ' (commit ' + commit.slice(0, 12) + ')';
  return source ? ' (' + source + ')' : '';
}
function sinceText(at) {
  const t = new Date(at);
  return isNaN(t) ? String(at) : t.toLocaleString([], { hour12: false });
}
function stagedText(sg) {
  if (!sg.install_revision) return 'requirements not installed yet';
  if (!sg.tested) return 'not tested yet';
  if (!sg.test_passed) return 'Test Code failed';
  return 'Test Code passed; Complete Deployment serves it';
}

// showState updates the page head after a step changed the deployment.
export function showState(d) {
  const rev = $('#revisions');
  if (rev) rev.replaceWith(revisions(d, 'revisions'));
  const label = $('#step-label');
  if (label) label.textContent = STEP_LABELS[d.step] || d.step;
  const badge = $('#status');
  if (badge) {
    badge.textContent = d.status;
    badge.className = 'badge ' + d.status;
  }
}

// serverStatus says whether the server is ready, being made or failed.
export function serverStatus(ctx) {
  const { d, f } = ctx;
  const sp = d.spec || {};
  const what = serverWhat(sp);
  if (f.provisioned) {
    const st = f.st;
    // In dev the server is a local process: say so, never pass it off as
    // the EC2 instance the spec names.
    const local = st.server.provider === 'local';
    return h('div', { class: 'alert ok', id: 'server-status', 'data-provider': st.server.provider || '' },
      h('p', null, '✓ Server ready: ' + (local ? 'a local process on this machine' : what) + ' at ', h('code', null, st.server.host),
        local ? ' (on EC2 it would be a ' + what + ')' : null,
        st.cert && st.cert.names ? [', certificate for ', h('code', null, st.cert.names.join(', '))] : null, '.'));
  }
  if (f.busy === 'provision') return h('div', { class: 'alert info', id: 'server-status' }, h('p', null, 'Creating your server (asked for: ' + what + ')…'));
  if (f.st.last_error && f.st.last_error.step === 'provision') {
    return h('div', { class: 'alert error', id: 'server-status' }, h('p', null, 'Provisioning failed: ' + f.st.last_error.message),
      h('p', null, 'It is retried when you fetch your code.'));
  }
  return h('div', { class: 'alert info', id: 'server-status' }, h('p', null, 'Creating your server (asked for: ' + what + ')…'));
}
// serverLine says where a deployment runs: in dev a local process, which
// must not pass for the EC2 instance its spec names.
export function serverLine(d) {
  const srv = d.state && d.state.server;
  if (!srv) return null;
  const what = serverWhat(d.spec || {});
  return h('p', { id: 'deployed-server', 'data-provider': srv.provider || '' }, 'It runs on ',
    srv.provider === 'local' ? ['a local process on this machine at ', h('code', null, srv.host), ' (on EC2 it would be a ' + what + ').'] : ['a ' + what + ' at ', h('code', null, srv.host), '.']);
}
// serverWhat names the server a spec asks for ("CPU server t3.small in
// N. Virginia, 1 thread(s)"): what EC2 runs; a local provider only stands in.
function serverWhat(sp) {
  const region = (app.options.regions.find((r) => r.code === sp.region) || { name: sp.region }).name;
  return sp.compute ? sp.compute.toUpperCase() + ' server ' + sp.instance_type + ' in ' + region + ', ' + sp.threads + ' thread(s)' : 'server';
}

// codeSource says where a code revision came from.
export function codeSource(c) {
  const files = c.files && c.files.length ? ' + ' + c.files.join(', ') : '';
  const git = c.git_url ? 'Git ' + c.git_url + (c.commit ? ' at ' + c.commit.slice(0, 10) : c.ref ? ' ' + c.ref : '') + (c.with_credentials ? ' with credentials' : '') : 'upload';
  if (c.source === 'edit') return 'edited in the browser from revision ' + c.base_revision + ' (' + git + files + '; changed: ' + (c.edited || []).join(', ') + ')';
  if (c.source === 'git') return git + files;
  return 'upload' + files;
}
