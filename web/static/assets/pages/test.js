// pages/test.js: Test Your Code.
import { api, dpath } from '../api.js';
import { ONNX_CONFIG, isONNX } from '../catalog.js';
import { $, append, h, link } from '../dom.js';
import { codeSource, ensureProvisioned, facts } from './common.js';
import { route } from '../router.js';
import { PageGone, SignedOut, app } from '../state.js';
import { act, apiMessage, clearAlert, showProblem } from '../ui.js';
import { autoTestKey, store, timeOf } from '../util.js';

// bootState reads the last test's boot from the progress log.
function bootState(events) {
  let i = -1;
  for (let k = events.length - 1; k >= 0; k--) {
    if (events[k].kind === 'test' && events[k].message.startsWith('booting the inference server')) { i = k; break; }
  }
  if (i < 0) return { state: 'todo' };
  for (let k = i + 1; k < events.length; k++) {
    const m = events[k].message;
    if (events[k].kind !== 'test') continue;
    if (m.startsWith('server booted and ready')) return { state: 'ok', at: events[k].at };
    if (m.startsWith('test failed')) return { state: 'bad', message: m };
  }
  return { state: 'run' };
}

// checkItem is one line of the checklist: its state (cls), mark, what and
// a detail.
const checkItem = (cls, mark, what, small, attrs) => h('li', Object.assign({ class: cls }, attrs || {}),
  h('span', { class: 'mark', 'aria-hidden': 'true' }, mark), h('span', { class: 'what' }, what, small ? h('small', null, small) : null));

// bootItem is the checklist's boot line, from the progress log.
function bootItem(events, onnx) {
  const b = bootState(events);
  const [cls, mark, what, small] = {
    todo: ['todo', '○', 'Server booted and ready', 'shown here when Test Code boots it'],
    run: ['run', '…', 'Booting the inference server…', onnx ? 'loading ONNX Runtime, the model and ' + ONNX_CONFIG : 'importing aai_main.py and running __init__'],
    ok: ['ok', '✓', 'Server booted and ready', 'at ' + timeOf(b.at)],
    bad: ['bad', '✗', 'Server did not boot', b.message],
  }[b.state];
  return checkItem(cls, mark, what, small, { id: 'boot-status', 'data-state': b.state });
}

// checklist shows how far the deployment is: server, code, requirements,
// boot (redrawn as the progress log grows) and test.
function checklist(ctx, onnx, installFailed) {
  const { f } = ctx;
  const st = f.st;
  const el = h('ul', { class: 'checklist', id: 'checklist' },
    checkItem(st.server ? 'ok' : 'todo', st.server ? '✓' : '○', 'Server provisioned', st.server ? (st.server.provider === 'local' ? 'a local process on this machine, ' : '') + st.server.host + ', port ' + st.server.port : ''),
    checkItem(st.code ? 'ok' : 'todo', st.code ? '✓' : '○', st.code ? 'Code revision ' + st.code.revision : 'Code', st.code ? codeSource(st.code) : ''),
    checkItem(f.installCurrent ? 'ok' : installFailed ? 'bad' : 'todo', f.installCurrent ? '✓' : installFailed ? '✗' : '○', 'Requirements installed',
      f.installCurrent ? (st.install.requirements && st.install.requirements.length ? st.install.requirements.join(', ') : onnx ? 'none: an ONNX model runs without Python' : 'nothing beyond numpy and Pillow') : installFailed ? 'pip failed: see below' : 'installed when you press Test Code'),
    bootItem(ctx.feed.events, onnx),
    checkItem(f.testCurrent ? 'ok' : st.test && !st.test.ok ? 'bad' : 'todo', f.testCurrent ? '✓' : st.test && !st.test.ok ? '✗' : '○', 'Test passed',
      st.test ? (st.test.ok ? st.test.summary : 'failed: ' + (st.test.message || '')) : 'not run yet'));
  app.cleanups.push(ctx.feed.listen(() => {
    const cur = $('#boot-status');
    if (cur) cur.replaceWith(bootItem(ctx.feed.events, onnx));
  }));
  return el;
}

// testChain provisions, installs and tests, each when needed, then shows
// the page again with the outcome.
async function testChain(ctx) {
  let cur = await ctx.waitIdle();
  ctx.check();
  let cf = facts(cur);
  if (!cf.provisioned) {
    if (!(await ensureProvisioned(ctx))) return;
    cur = ctx.d;
    cf = facts(cur);
  }
  if (!cf.installCurrent) {
    const r = await ctx.runStep('install_requirements', undefined, 'Installing requirements (pip)');
    ctx.check();
    if (!r.ok) {
      app.flash = { kind: 'error', nodes: [h('p', null, 'Installing the requirements failed. Fix them on ', link('/ui/deployments/' + ctx.id + '/dependencies', 'Add More Dependencies'), ', then test again.'), ...apiMessage(r.data, r.data.fields)] };
      route();
      return;
    }
  }
  const r = await ctx.runStep('test', {}, 'Testing your code');
  ctx.check();
  if (!r.ok && r.data.code !== 'test_failed') {
    app.flash = { kind: 'error', nodes: apiMessage(r.data, r.data.fields) };
  }
  route();
}

// showResult shows the last test of this code (or pip's failure) in result.
function showResult(ctx, result, onnx, installFailed) {
  const { f, id } = ctx;
  const st = f.st;
  if (installFailed && !f.installCurrent) {
    append(result, h('div', { class: 'alert error' }, h('p', null, h('strong', null, 'pip could not install the requirements.')),
      h('pre', { class: 'wrap', tabindex: 0 }, st.last_error.message),
      h('p', null, 'Fix them on ', link('/ui/deployments/' + id + '/dependencies', 'Add More Dependencies'), ', then press Test Code.')));
  } else if (st.test && st.code && st.test.code_revision === st.code.revision) {
    const t = st.test;
    if (t.unsandboxed) {
      append(result, h('div', { class: 'alert error', id: 'test-unsandboxed' }, h('p', null, h('strong', null, 'Not sandboxed: '), t.warning || 'this code ran without a sandbox')));
    }
    if (t.ok) {
      const out = h('div', { id: 'test-output' });
      append(result, h('div', { class: 'alert ok', id: 'test-passed' },
        h('p', null, h('strong', null, 'Test passed'), ' in ' + t.duration_ms + ' ms: ' + (t.summary || '')),
        t.input_summary ? h('p', null, (onnx ? 'Test input: ' : 'testing_input_data(): ') + t.input_summary) : null), out);
      showOutput(ctx, t, out).catch(() => {});
    } else {
      append(result, h('div', { class: 'alert error', id: 'test-failed' },
        h('p', null, h('strong', null, 'Test failed'), t.status ? ' (' + t.status + (t.code ? ' ' + t.code : '') + ')' : '', ': ' + (t.message || '')),
        t.traceback ? h('pre', { class: 'wrap traceback', tabindex: 0, 'aria-label': 'Traceback' }, t.traceback) : null,
        h('p', null, 'Fix ' + (onnx ? ONNX_CONFIG + ' or the model' : 'aai_main.py') + ' (', link('/ui/deployments/' + id + '/integrate', 'in the editor', null, 'fix-in-editor'), ' or in your repository, then ',
          link('/ui/deployments/' + id + '/code', 'fetch it again'), '), or add a missing package on ',
          link('/ui/deployments/' + id + '/dependencies', 'Add More Dependencies'), '; then press Test Code.')));
    }
  } else if (st.test) {
    append(result, h('p', { class: 'hint' }, 'The last test ran on an older revision of the code.'));
  }
}

// testIntro says what Test Code does.
function testIntro(onnx) {
  return onnx
    ? h('p', null, 'Test Code boots the inference server with your model and ', h('code', null, ONNX_CONFIG), ', sends it the test input (the image ',
      h('code', null, 'testing_input'), ' names, else a generated image of the model\'s input size) and shows the answer. A configuration that does not fit the model is reported with the reason.')
    : h('p', null, 'Test Code installs the requirements when needed, boots the inference server with your code, sends it what ',
      h('code', null, 'testing_input_data()'), ' returns and shows the answer. Errors come back with their Python traceback.');
}

// pageTest renders Test Your Code.
export async function pageTest(ctx, body) {
  const { d, f, id } = ctx;
  const st = f.st;
  const onnx = isONNX((d.spec || {}).environment);
  const installFailed = st.last_error && st.last_error.step === 'install_requirements';
  const list = checklist(ctx, onnx, installFailed);

  const result = h('div', { id: 'test-result' });
  const testBtn = h('button', { type: 'button', class: 'btn primary', id: 'test-code' }, 'Test Code');
  if (f.busy) testBtn.disabled = true;
  const next = f.testCurrent ? link('/ui/deployments/' + id + '/use', 'Next: Using the Algorithm', 'btn primary', 'to-use') : null;
  if (next) testBtn.className = 'btn';

  const runChain = async () => {
    clearAlert(ctx.alert);
    result.replaceChildren();
    testBtn.disabled = true;
    ctx.ownsBusy = true;
    try {
      await testChain(ctx);
    } finally {
      if (ctx.alive()) testBtn.disabled = false;
    }
  };
  testBtn.addEventListener('click', act(runChain));
  showResult(ctx, result, onnx, installFailed);

  append(body, testIntro(onnx), list,
    h('div', { class: 'actions' }, testBtn,
      link('/ui/deployments/' + id + '/dependencies', 'Add More Dependencies', 'btn', 'to-dependencies'),
      link('/ui/deployments/' + id + '/integrate', onnx ? 'Edit ' + ONNX_CONFIG : 'Edit aai_main.py', 'btn', 'to-integrate'),
      link('/ui/deployments/' + id + '/code', 'Fetch new code', 'btn', 'to-code')),
    result,
    next ? h('div', { class: 'actions' }, h('span', { class: 'spacer' }), next) : null);

  if (store.get(autoTestKey(id), false)) {
    store.del(autoTestKey(id));
    if (!f.busy) runChain().catch((e) => { if (!(e instanceof SignedOut || e instanceof PageGone)) showProblem(e); });
  }
}

// showOutput shows the passing test's output: an image, text or JSON, or a
// link to download anything else.
async function showOutput(ctx, t, out) {
  const ct = (t.content_type || '').toLowerCase();
  const r = await api('GET', dpath(ctx.id, '/test/output'), undefined, { blob: true });
  if (!ctx.alive()) return;
  if (!r.ok) {
    append(out, h('p', { class: 'hint' }, 'The output file is not available: ' + ((r.data && r.data.message) || r.status)));
    return;
  }
  const url = URL.createObjectURL(r.data);
  app.cleanups.push(() => URL.revokeObjectURL(url));
  if (ct.startsWith('image/')) {
    const img = h('img', { src: url, alt: 'The image your algorithm returned for ' + (isONNX((ctx.d.spec || {}).environment) ? 'the test input' : 'testing_input_data()'), class: 'result-img', id: 'test-image' });
    // Small outputs are shown enlarged (pixels kept sharp), large ones fit the page.
    img.addEventListener('load', () => {
      if (img.naturalWidth && img.naturalWidth < 320) img.width = img.naturalWidth * Math.min(4, Math.floor(320 / img.naturalWidth));
    });
    append(out, h('h3', null, 'Output (' + ct + ')'), img);
  } else if (ct.includes('json') || ct.startsWith('text/')) {
    const text = await r.data.text();
    if (!ctx.alive()) return;
    let shown = text;
    if (ct.includes('json')) { try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* as sent */ } }
    append(out, h('h3', null, 'Output (' + ct + ')'), h('pre', { class: 'wrap', tabindex: 0, id: 'test-text' }, shown.length > 20000 ? shown.slice(0, 20000) + '\n…' : shown));
  } else {
    append(out, h('h3', null, 'Output'), h('p', null, (ct || 'binary') + ', ' + r.data.size + ' bytes: ', h('a', { href: url, download: 'test-output' }, 'download it')));
  }
}
