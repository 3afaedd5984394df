// app.js: the algocloud wizard. One document; this script routes on the path
// (/ui/home, /ui/new, /ui/deployments/{id}/{page}), renders each page with DOM
// calls (never HTML strings: every value from the API lands as text) and talks
// to the REST API with the token kept in sessionStorage. Form entries are kept
// in sessionStorage too, so a failed step, a reload or a trip to another page
// loses nothing. A deployment's page is derived from its state (step, status,
// busy) whenever the URL does not name a page it can be on.
'use strict';

(function () {
  // The SVG namespace is a name, not an address: nothing is loaded from it.
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const TOKEN_KEY = 'algocloud.token';
  const DRAFT_KEY = 'algocloud.draft';
  const formKey = (id, page) => 'algocloud.form.' + id + '.' + page;
  const autoTestKey = (id) => 'algocloud.autotest.' + id;

  // The wizard's pages, in the walkthrough's order and with its names.
  const PAGES = [
    { key: 'datatype', title: 'Select Data Type, Environment Type' },
    { key: 'server', title: 'Select Server, Naming, Dependencies' },
    { key: 'code', title: 'Code Repo Integration' },
    { key: 'integrate', title: 'Integrate Algorithm into API' },
    { key: 'test', title: 'Test Your Code' },
    { key: 'dependencies', title: 'Add More Dependencies' },
    { key: 'use', title: 'Using the Algorithm' },
    { key: 'complete', title: 'Complete Deployment' },
  ];
  const pageTitle = (key) => (PAGES.find((p) => p.key === key) || { title: key }).title;

  // The eight image API types of the walkthrough come first on the data type
  // page; the rest of what /ui/options.json lists follows.
  const IMAGE_APIS = ['image:image', 'image:json', 'image:numpy', 'image:file', 'numpy:image', 'numpy:numpy', 'file:image', 'json:image'];

  const IO = {
    image: {
      label: 'image',
      short: 'PNG/JPEG',
      input: 'The client sends PNG, JPEG or GIF bytes (raw, multipart field "image", base64 in JSON, or a URL to download). predict(x) gets x: numpy.ndarray of shape (height, width, 3), dtype uint8, RGB. For PIL: Image.fromarray(x).',
      output: 'Return a numpy array (height, width) for grayscale, (height, width, 3) RGB or (height, width, 4) RGBA: uint8, bool (0/255) or floats in [0, 1]; a PIL image works too. The client gets a lossless PNG.',
    },
    numpy: {
      label: 'numpy',
      short: '.npy array',
      input: 'The client sends a .npy file (raw, or multipart field "array"). predict(x) gets x: numpy.ndarray with the file\'s dtype and shape (native byte order, C order, writable).',
      output: 'Return a numpy array (or a list or scalar) of any shape; bool, int, uint and float dtypes. The client gets a .npy file, what np.save writes.',
    },
    json: {
      label: 'JSON',
      short: 'JSON',
      input: 'The client sends any JSON value. predict(x) gets what json.loads returns: dict, list, str, int, float, bool or None.',
      output: 'Return anything json.dumps can write (numpy scalars and arrays are converted). The client gets application/json.',
    },
    file: {
      label: 'file',
      short: 'any file',
      input: 'The client uploads a file (multipart field "file", or raw bytes with ?filename=). predict(x) gets an object with x.name (str), x.data (bytes) and x.content_type (str).',
      output: 'Return (name, data) or (name, data, content_type), data being bytes or str. The client gets the file as an attachment.',
    },
  };

  // Environment onnx: a .onnx model served by ONNX Runtime with the
  // preprocessing and postprocessing its aai_onnx.json declares.
  const ONNX = 'onnx';
  const ONNX_CONFIG = 'aai_onnx.json';
  const isONNX = (env) => env === ONNX;
  const envLabel = (env) => (env === 'python' ? 'Python 3' : isONNX(env) ? 'ONNX model' : env);
  const envSubject = (env) => (isONNX(env) ? 'An ONNX model' : envLabel(env));
  // servedPairs lists the API types ("input:output") env serves; null: all
  // of them (/ui/options.json's environment_pairs names only the others).
  function servedPairs(env) {
    const ep = (app.options && app.options.environment_pairs) || {};
    return ep[env] ? ep[env].map((p) => p.input + ':' + p.output) : null;
  }
  const pairsText = (keys) => keys.map((k) => { const [i, o] = k.split(':'); return IO[i].label + ' → ' + IO[o].label; }).join(' and ');

  const STEP_LABELS = {
    configured: 'Configured', provisioned: 'Server ready', code_fetched: 'Code fetched',
    requirements_installed: 'Requirements installed', tested: 'Tested', completed: 'Completed', deleted: 'Deleted',
  };
  const BUSY_LABELS = {
    provision: 'Provisioning the server and its certificate', fetch_code: 'Fetching your code',
    install_requirements: 'Installing requirements (pip)', test: 'Testing your code', complete: 'Completing the deployment: starting the endpoint',
    stop: 'Stopping the endpoint', start: 'Starting the endpoint', configure: 'Saving the configuration',
    reconcile: 'Bringing the endpoint back', delete: 'Deleting the deployment', renew_certificate: 'Renewing the certificate',
  };

  const app = {
    options: null, // /ui/options.json
    me: null, // GET /api/v1/me
    gen: 0, // bumped on every render: work of a page no longer shown stops
    feed: null, // the event stream of the deployment on screen
    cleanups: [],
    flash: null, // one message shown by the next render
    signinMessage: '',
    clientsRoute: undefined, // whether the API serves generated clients
    first: true,
  };

  class SignedOut extends Error {}
  class PageGone extends Error {}

  // ---------- storage ----------
  const store = {
    get(k, def) {
      try {
        const v = sessionStorage.getItem(k);
        return v === null ? def : JSON.parse(v);
      } catch (e) {
        return def;
      }
    },
    set(k, v) {
      try { sessionStorage.setItem(k, JSON.stringify(v)); } catch (e) { /* storage full or off: the page still works */ }
    },
    del(k) {
      try { sessionStorage.removeItem(k); } catch (e) { /* nothing to do */ }
    },
    clearAll() {
      try {
        for (let i = sessionStorage.length - 1; i >= 0; i--) {
          const k = sessionStorage.key(i);
          if (k && k.startsWith('algocloud.')) sessionStorage.removeItem(k);
        }
      } catch (e) { /* nothing to do */ }
    },
  };
  const token = () => store.get(TOKEN_KEY, '');

  // ---------- DOM ----------
  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'hidden' || k === 'selected' || k === 'multiple') el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  function append(el, ...kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      el.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return el;
  }
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    return append(el, kids);
  }
  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    return append(el, kids);
  }
  const $ = (sel, root) => (root || document).querySelector(sel);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const link = (href, text, cls, id) => h('a', { href, class: cls, 'data-nav': true, id }, text);

  // ---------- API ----------
  async function api(method, path, body, opts) {
    opts = opts || {};
    const headers = { Authorization: 'Bearer ' + (opts.token || token()) };
    let payload;
    if (body instanceof FormData) payload = body;
    else if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, { method, headers, body: payload });
    } catch (e) {
      return { ok: false, status: 0, data: { code: 'network', message: 'The algocloud server did not answer (' + e.message + '). Check that it runs, then try again.' } };
    }
    if (res.status === 401 && !opts.allow401) {
      signOut('You were signed out: the API token is unknown or revoked. Sign in again.');
      throw new SignedOut();
    }
    if (opts.blob && res.ok) return { ok: true, status: res.status, data: await res.blob(), headers: res.headers };
    const text = await res.text();
    let data = text;
    if ((res.headers.get('Content-Type') || '').includes('json')) {
      try { data = JSON.parse(text); } catch (e) { data = { message: text }; }
    }
    if (!res.ok && typeof data !== 'object') data = { message: text || res.statusText };
    return { ok: res.ok, status: res.status, data, headers: res.headers };
  }
  const dpath = (id, rest) => '/api/v1/deployments/' + encodeURIComponent(id) + (rest || '');

  // act wraps an event handler: errors land in the page, never the console.
  function act(fn) {
    return async function (ev) {
      try {
        await fn.call(this, ev);
      } catch (e) {
        if (e instanceof SignedOut || e instanceof PageGone) return;
        showProblem(e);
      }
    };
  }
  function showProblem(e) {
    const box = $('#page-alert');
    if (box) setAlert(box, 'error', [h('p', null, 'Something went wrong in the page: ' + (e && e.message ? e.message : String(e)))]);
  }

  // ---------- alerts and fields ----------
  function setAlert(box, kind, content) {
    box.className = 'alert ' + kind;
    box.replaceChildren();
    append(box, [content]);
    box.hidden = false;
  }
  function clearAlert(box) {
    box.replaceChildren();
    box.hidden = true;
  }
  // apiMessage renders an error answer: its message, and its traceback or
  // unplaced field messages.
  function apiMessage(data, extraFields) {
    const out = [h('p', null, h('strong', null, (data && data.message) || 'The request failed.'))];
    if (data && data.traceback) out.push(h('pre', { class: 'wrap traceback', tabindex: 0, 'aria-label': 'Traceback' }, data.traceback));
    if (extraFields && extraFields.length) {
      out.push(h('ul', null, extraFields.map((f) => h('li', null, h('code', null, f.field), ' ' + f.message))));
    }
    return out;
  }

  // field builds a labelled form row whose error message shows beside it.
  function field(name, label, control, hint) {
    const id = control.id || 'f-' + name;
    control.id = id;
    const hintEl = hint ? h('span', { class: 'hint', id: id + '-hint' }, hint) : null;
    const err = h('p', { class: 'field-error', id: id + '-error', 'aria-live': 'polite' });
    control.setAttribute('aria-describedby', [hintEl ? id + '-hint' : '', id + '-error'].filter(Boolean).join(' '));
    const row = h('div', { class: 'field', 'data-field': name }, h('label', { for: id }, label), hintEl, control, err);
    control.addEventListener('input', () => clearFieldError(row));
    return row;
  }
  function clearFieldError(row) {
    const err = $('.field-error', row);
    if (err) err.textContent = '';
    row.querySelectorAll('[aria-invalid]').forEach((c) => c.removeAttribute('aria-invalid'));
  }
  // showFieldErrors places each {field, message} beside its row (map turns an
  // API field name into a row name and message) and returns those with no row.
  function showFieldErrors(form, fields, map) {
    form.querySelectorAll('.field[data-field]').forEach(clearFieldError);
    const rest = [];
    let first = null;
    for (const f of fields || []) {
      const m = map ? map(f) : { name: f.field, message: f.message };
      const row = form.querySelector('[data-field="' + CSS.escape(m.name) + '"]');
      if (!row) {
        rest.push(f);
        continue;
      }
      const err = $('.field-error', row);
      err.textContent = err.textContent ? err.textContent + '; ' + m.message : m.message;
      row.querySelectorAll('input, select, textarea').forEach((c) => c.setAttribute('aria-invalid', 'true'));
      if (!first) first = row.querySelector('input:not([type=radio]), select, textarea') || row.querySelector('input');
    }
    if (first) first.focus();
    return rest;
  }
  const niceMessage = (field, msg) => {
    // The API says "is required"; beside a labelled field that reads well as
    // "This is required". Messages that name their subject stay as they are.
    return /^(is|must)\b/.test(msg) ? 'This ' + msg + '.' : msg.charAt(0).toUpperCase() + msg.slice(1);
  };

  // persist keeps a form's named fields (not files, not passwords) in
  // sessionStorage under key, and fills them back in.
  function persist(form, key, defaults) {
    const saved = Object.assign({}, defaults || {}, store.get(key, {}));
    for (const el of form.elements) {
      if (!el.name || el.type === 'file' || el.type === 'password' || !(el.name in saved)) continue;
      if (el.type === 'radio') el.checked = saved[el.name] === el.value;
      else if (el.type === 'checkbox') el.checked = !!saved[el.name];
      else el.value = saved[el.name];
    }
    const save = () => {
      const v = store.get(key, {});
      for (const el of form.elements) {
        if (!el.name || el.type === 'file' || el.type === 'password') continue;
        if (el.type === 'radio') { if (el.checked) v[el.name] = el.value; } else if (el.type === 'checkbox') v[el.name] = el.checked;
        else v[el.name] = el.value;
      }
      store.set(key, v);
    };
    form.addEventListener('input', save);
    form.addEventListener('change', save);
    return save;
  }

  // copyButton copies what get() returns.
  function copyButton(get, label) {
    const b = h('button', { type: 'button', class: 'btn small' }, label || 'Copy');
    const status = h('span', { class: 'sr-only', 'aria-live': 'polite' });
    b.addEventListener('click', act(async () => {
      const text = get();
      let ok = false;
      try {
        await navigator.clipboard.writeText(text);
        ok = true;
      } catch (e) {
        // No clipboard permission (or not a secure context): copy through a
        // selected textarea, the way browsers have always allowed.
        const ta = h('textarea', { class: 'sr-only', 'aria-hidden': 'true' });
        ta.value = text;
        document.body.append(ta);
        ta.select();
        try { ok = document.execCommand('copy'); } catch (e2) { ok = false; }
        ta.remove();
      }
      b.textContent = ok ? 'Copied' : 'Select and copy (Ctrl+C)';
      status.textContent = ok ? 'Copied to the clipboard' : 'Copying failed: select the text and press Ctrl+C';
      b.dataset.copied = ok ? 'yes' : 'no';
      setTimeout(() => { b.textContent = label || 'Copy'; }, 2500);
    }));
    return h('span', null, b, status);
  }
  function codeBlock(text, label, copyLabel) {
    return h('div', { class: 'codeblock' },
      h('div', { class: 'client-head' }, h('span', { class: 'hint' }, label || ''), copyButton(() => text, copyLabel || 'Copy')),
      h('pre', { class: 'wrap', tabindex: 0, 'aria-label': label || null }, text));
  }

  // ---------- data flow pictures ----------
  function ioIcon(type, x, y) {
    const g = s('g', { transform: 'translate(' + x + ' ' + y + ')' });
    const stroke = { fill: 'none', stroke: '#1f4fd1', 'stroke-width': 2, 'stroke-linejoin': 'round', 'stroke-linecap': 'round' };
    if (type === 'image') {
      g.append(s('rect', Object.assign({ x: 1, y: 3, width: 30, height: 24, rx: 3 }, stroke)),
        s('circle', { cx: 10, cy: 11, r: 3, fill: '#f0a500' }),
        s('path', { d: 'M3 25l8-9 6 6 5-4 8 7', fill: 'none', stroke: '#11743a', 'stroke-width': 2, 'stroke-linejoin': 'round' }));
    } else if (type === 'numpy') {
      for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) {
        g.append(s('rect', { x: 2 + c * 10, y: 2 + r * 9, width: 8, height: 7, rx: 1.5, fill: (r + c) % 2 ? '#9fb3e6' : '#1f4fd1' }));
      }
    } else if (type === 'json') {
      g.append(s('text', { x: 16, y: 22, 'text-anchor': 'middle', 'font-size': 20, 'font-family': 'monospace', 'font-weight': 700, fill: '#1f4fd1' }, '{ }'));
    } else {
      g.append(s('path', Object.assign({ d: 'M6 2h14l7 7v19H6z' }, stroke)), s('path', Object.assign({ d: 'M20 2v7h7' }, stroke)),
        s('path', { d: 'M10 15h12M10 20h12', stroke: '#9fb3e6', 'stroke-width': 2 }));
    }
    return g;
  }
  // flowPicture draws client → input → predict() → output → client (for
  // environment onnx: → the ONNX model and its aai_onnx.json →).
  function flowPicture(input, output, env) {
    const onnx = isONNX(env);
    const arrow = (x1, x2) => s('path', { d: 'M' + x1 + ' 30h' + (x2 - x1 - 4) + 'm-4 -4l4 4-4 4', fill: 'none', stroke: '#5a6275', 'stroke-width': 1.6, 'stroke-linecap': 'round', 'stroke-linejoin': 'round' });
    return s('svg', { viewBox: '0 0 230 60', role: 'img', 'aria-label': IO[input].label + ' in, ' + IO[output].label + ' out' },
      ioIcon(input, 2, 15), arrow(38, 64),
      s('rect', { x: 66, y: 12, width: 98, height: 36, rx: 8, fill: '#e8eefc', stroke: '#1f4fd1', 'stroke-width': 1.5 }),
      s('text', { x: 115, y: 28, 'text-anchor': 'middle', 'font-size': 11, 'font-family': 'sans-serif', fill: '#173ba0', 'font-weight': 700 }, onnx ? 'ONNX model' : 'aai_main.py'),
      s('text', { x: 115, y: 41, 'text-anchor': 'middle', 'font-size': 10, 'font-family': 'monospace', fill: '#173ba0' }, onnx ? 'aai_onnx.json' : 'predict(x)'),
      arrow(166, 192), ioIcon(output, 196, 15));
  }

  // ---------- events and progress ----------
  // Feed follows a deployment's progress log: GET .../events/stream read with
  // fetch (EventSource cannot send the Authorization header), falling back to
  // polling GET .../events, reconnecting until stopped.
  class Feed {
    constructor(id) {
      this.id = id;
      this.after = 0;
      this.events = [];
      this.listeners = new Set();
      this.stopped = false;
      this.ctrl = null;
      this.run();
    }
    async run() {
      while (!this.stopped) {
        try {
          await this.stream();
        } catch (e) {
          if (e instanceof SignedOut) return;
        }
        if (this.stopped) return;
        await sleep(1500);
      }
    }
    async stream() {
      this.ctrl = new AbortController();
      const res = await fetch(dpath(this.id, '/events/stream?after=' + this.after), {
        headers: { Authorization: 'Bearer ' + token(), Accept: 'text/event-stream' }, signal: this.ctrl.signal,
      });
      if (res.status === 401) { signOut('You were signed out: the API token is unknown or revoked. Sign in again.'); throw new SignedOut(); }
      if (!res.ok || !res.body || !window.TextDecoderStream) {
        if (res.body) await res.body.cancel().catch(() => {});
        return this.poll();
      }
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done || this.stopped) return;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          this.block(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
    }
    async poll() {
      for (let n = 0; n < 60 && !this.stopped; n++) {
        const r = await api('GET', dpath(this.id, '/events?after=' + this.after));
        if (r.ok && r.data.events) this.add(r.data.events);
        await sleep(1000);
      }
    }
    block(text) {
      let event = 'message';
      let data = '';
      for (const line of text.split('\n')) {
        if (!line || line.startsWith(':')) continue;
        const c = line.indexOf(':');
        const name = c < 0 ? line : line.slice(0, c);
        let val = c < 0 ? '' : line.slice(c + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (name === 'event') event = val;
        else if (name === 'data') data += (data ? '\n' : '') + val;
      }
      if (event !== 'message' || !data) return;
      try { this.add([JSON.parse(data)]); } catch (e) { /* not an event */ }
    }
    add(evs) {
      const fresh = evs.filter((ev) => ev.id > this.after);
      if (!fresh.length) return;
      this.after = fresh[fresh.length - 1].id;
      this.events.push(...fresh);
      if (this.events.length > 3000) this.events.splice(0, this.events.length - 3000);
      this.listeners.forEach((fn) => fn(fresh));
    }
    listen(fn) {
      this.listeners.add(fn);
      return () => this.listeners.delete(fn);
    }
    stop() {
      this.stopped = true;
      if (this.ctrl) this.ctrl.abort();
    }
  }
  function feedFor(id) {
    if (app.feed && app.feed.id === id && !app.feed.stopped) return app.feed;
    if (app.feed) app.feed.stop();
    app.feed = new Feed(id);
    return app.feed;
  }
  const timeOf = (at) => {
    const d = new Date(at);
    return isNaN(d) ? '' : d.toLocaleTimeString([], { hour12: false });
  };
  const eventLine = (ev) => timeOf(ev.at) + '  ' + ev.kind + ': ' + ev.message;

  // progressPanel shows a long step: what runs, for how long, its latest event.
  function progressPanel(feed) {
    const label = h('span', { class: 'what' });
    const clock = h('span', { class: 'clock' });
    const last = h('p', { class: 'last' });
    const el = h('div', { class: 'progress', role: 'status', 'aria-live': 'polite', hidden: true, id: 'progress' },
      h('div', { class: 'label' }, label, clock), h('div', { class: 'bar', 'aria-hidden': 'true' }), last);
    let timer = null;
    let since = 0;
    const off = feed ? feed.listen((evs) => { if (!el.hidden) last.textContent = evs[evs.length - 1].message; }) : null;
    app.cleanups.push(() => { if (timer) clearInterval(timer); if (off) off(); });
    return {
      el,
      start(text) {
        label.textContent = text + '…';
        since = Date.now();
        last.textContent = '';
        clock.textContent = '0 s';
        el.hidden = false;
        el.dataset.running = text;
        if (timer) clearInterval(timer);
        timer = setInterval(() => { clock.textContent = Math.round((Date.now() - since) / 1000) + ' s'; }, 1000);
      },
      stop() {
        el.hidden = true;
        delete el.dataset.running;
        if (timer) clearInterval(timer);
        timer = null;
      },
    };
  }
  // logPanel lists the deployment's progress events as they arrive.
  function logPanel(feed) {
    const pre = h('pre', { role: 'log', 'aria-label': 'Progress log', tabindex: 0, class: 'wrap' });
    const count = h('span');
    const det = h('details', { class: 'log' }, h('summary', null, 'Progress log ', count), pre);
    const render = () => {
      const evs = feed.events.slice(-400);
      pre.textContent = evs.length ? evs.map(eventLine).join('\n') : 'No events yet.';
      count.textContent = '(' + feed.events.length + ' events)';
      pre.scrollTop = pre.scrollHeight;
    };
    render();
    const off = feed.listen(render);
    app.cleanups.push(off);
    return det;
  }

  // ---------- routing ----------
  function navigate(path, replace) {
    if (replace) history.replaceState(null, '', path);
    else history.pushState(null, '', path);
    route();
  }
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest && ev.target.closest('a[href]');
    if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    if (a.target || a.hasAttribute('download')) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || !(url.pathname === '/' || url.pathname.startsWith('/ui'))) return;
    if (url.pathname === location.pathname && url.hash) return;
    ev.preventDefault();
    navigate(url.pathname + url.search);
  });
  window.addEventListener('popstate', () => route());

  function parsePath(p) {
    p = p.replace(/\/+$/, '') || '/';
    if (p === '/' || p === '/ui' || p === '/ui/home') return { page: 'home' };
    if (p === '/ui/signin') return { page: 'signin' };
    if (p === '/ui/new') return { page: 'datatype' };
    if (p === '/ui/new/server') return { page: 'server' };
    const m = p.match(/^\/ui\/deployments\/([A-Za-z0-9_-]+)(?:\/([a-z]+))?$/);
    if (m) return { page: m[2] || '', id: m[1] };
    return { page: 'notfound' };
  }

  function cleanup() {
    const fns = app.cleanups;
    app.cleanups = [];
    fns.forEach((fn) => { try { fn(); } catch (e) { /* best effort */ } });
  }

  async function route() {
    const gen = ++app.gen;
    cleanup();
    const r = parsePath(location.pathname);
    if (!r.id && app.feed) { app.feed.stop(); app.feed = null; }
    try {
      if (!token()) {
        renderAccount();
        return pageSignIn(gen);
      }
      if (r.page === 'signin') return navigate('/ui/home', true);
      await basics();
      if (gen !== app.gen) return;
      renderAccount();
      switch (r.page) {
        case 'home': return await pageHome(gen);
        case 'datatype': return pageDataType(gen);
        case 'server': return pageServer(gen);
        case 'notfound': return pageNotFound();
        default: return await deploymentPage(gen, r.id, r.page);
      }
    } catch (e) {
      if (e instanceof SignedOut || e instanceof PageGone) return;
      mount('Something went wrong', [h('div', { class: 'card' }, h('h1', { tabindex: -1 }, 'Something went wrong'),
        h('div', { class: 'alert error', id: 'page-alert' }, h('p', null, String(e && e.message ? e.message : e))),
        h('p', null, link('/ui/home', 'Back to Home')))]);
    }
  }

  async function basics() {
    if (!app.options) {
      const res = await fetch('/ui/options.json');
      app.options = await res.json();
    }
    if (!app.me) {
      const r = await api('GET', '/api/v1/me');
      if (!r.ok) throw new Error(r.data.message || 'cannot read the signed-in user');
      app.me = r.data;
    }
  }

  function mount(title, nodes) {
    document.title = title + ' · algocloud';
    const main = $('#main');
    main.replaceChildren();
    append(main, nodes);
    const h1 = $('h1', main);
    if (h1 && !app.first) h1.focus();
    app.first = false;
    window.scrollTo(0, 0);
  }

  function renderAccount() {
    const nav = $('#account');
    if (!token() || !app.me) {
      nav.replaceChildren();
      return;
    }
    nav.replaceChildren(
      link('/ui/home', 'Home'),
      h('span', null, 'Signed in as ', h('strong', { id: 'me' }, app.me.name)),
      h('button', { type: 'button', class: 'btn small', id: 'sign-out', onclick: () => signOut('You signed out.') }, 'Sign out'));
  }

  function signOut(message) {
    store.clearAll();
    app.me = null;
    if (app.feed) { app.feed.stop(); app.feed = null; }
    app.signinMessage = message || '';
    app.gen++;
    history.pushState(null, '', '/');
    route();
  }

  // ---------- Sign in ----------
  function pageSignIn(gen) {
    const input = h('input', { type: 'password', name: 'token', autocomplete: 'current-password', spellcheck: 'false', autocapitalize: 'off', id: 'token' });
    const alert = h('div', { class: 'alert', id: 'page-alert', hidden: true });
    // Password managers want a user name beside a password; the token names its user.
    const user = h('input', { type: 'text', name: 'username', autocomplete: 'username', hidden: true, value: 'algocloud' });
    const form = h('form', { class: 'card narrow', novalidate: true },
      h('h1', { tabindex: -1 }, 'Sign in'), user,
      h('p', { class: 'lead' }, 'Deploy a Python image algorithm as an HTTPS API. Sign in with your algocloud API token.'),
      alert,
      field('token', 'API token', input, 'algocloud dev prints one at its first start; "algocloud token <user>" prints a new one. It is kept in this tab only (sessionStorage).'),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary', id: 'sign-in' }, 'Sign in')));
    if (app.signinMessage) setAlert(alert, 'info', [h('p', null, app.signinMessage)]);
    form.addEventListener('submit', act(async (ev) => {
      ev.preventDefault();
      const t = input.value.trim();
      if (!t) {
        showFieldErrors(form, [{ field: 'token', message: 'Paste your API token.' }]);
        return;
      }
      const r = await api('GET', '/api/v1/me', undefined, { token: t, allow401: true });
      if (gen !== app.gen) return;
      if (r.status === 401) {
        showFieldErrors(form, [{ field: 'token', message: niceMessage('token', r.data.message || 'unknown token') }]);
        return;
      }
      if (!r.ok) {
        setAlert(alert, 'error', apiMessage(r.data));
        return;
      }
      store.set(TOKEN_KEY, t);
      app.me = r.data;
      app.signinMessage = '';
      const p = parsePath(location.pathname);
      navigate(p.page === 'signin' || p.page === 'notfound' || location.pathname === '/' ? '/ui/home' : location.pathname, true);
    }));
    mount('Sign in', [form]);
  }

  // ---------- Home ----------
  async function pageHome(gen) {
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
        d.endpoint ? h('div', { class: 'meta' }, 'Endpoint ', h('code', null, d.endpoint)) : null),
      h('div', { class: 'side' },
        h('span', { class: 'badge ' + d.status }, d.status),
        h('span', null, link('/ui/deployments/' + d.id, d.status === 'draft' ? 'Continue' : 'Open', 'btn small'), ' ', del)),
      d.error ? h('div', { class: 'err' }, 'Last error: ' + d.error) : null);
  }
  function takeFlash() {
    const f = app.flash;
    app.flash = null;
    if (!f) return null;
    return h('div', { class: 'alert ' + f.kind, role: 'status' }, f.nodes || h('p', null, f.text));
  }

  function pageNotFound() {
    mount('Not found', [h('div', { class: 'card' }, h('h1', { tabindex: -1 }, 'Page not found'),
      h('p', null, 'There is no page at ', h('code', null, location.pathname), '.'), h('p', null, link('/ui/home', 'Back to Home')))]);
  }

  // ---------- stepper ----------
  function stepper(current, reach, done) {
    const ol = h('ol', { class: 'steps', 'aria-label': 'Wizard steps' });
    PAGES.forEach((p, i) => {
      const inner = [h('span', { class: 'num', 'aria-hidden': 'true' }, done[p.key] ? '✓' : String(i + 1)),
        h('span', { class: 'label' }, p.title, done[p.key] ? h('span', { class: 'sr-only' }, ' (done)') : null)];
      let el;
      if (p.key === current) el = h('span', { class: 'pill', 'aria-current': 'step' }, inner);
      else if (reach[p.key]) el = h('a', { href: reach[p.key], 'data-nav': true, title: p.title }, inner);
      else el = h('span', { class: 'pill locked', title: p.title }, inner);
      ol.append(h('li', { class: done[p.key] ? 'done' : '' }, el));
    });
    return ol;
  }

  // ---------- new deployment: data type ----------
  const draftDefaults = () => ({
    environment: (app.options.environments || ['python'])[0], compute: 'cpu', apitype: 'image:image',
    name: '', description: '', api_name: '', instance_type: '', region: 'us-east-1', threads: '1', requirements: '',
  });
  function draft() {
    return Object.assign(draftDefaults(), store.get(DRAFT_KEY, {}));
  }
  function newStepper(current) {
    return stepper(current, { datatype: '/ui/new', server: '/ui/new/server' }, { datatype: current === 'server' });
  }

  function choice(name, value, title, desc, extra) {
    return h('label', { class: 'choice' },
      h('input', { type: 'radio', name, value }),
      h('span', { class: 'check', 'aria-hidden': 'true' }, '✓'),
      h('span', { class: 'title' }, title), extra || null, desc ? h('span', { class: 'desc' }, desc) : null);
  }

  function pageDataType() {
    const o = app.options;
    const envDesc = (e) => {
      if (e === 'python') return 'numpy and Pillow preinstalled; add your own pip dependencies on the next page.';
      const served = servedPairs(e);
      if (isONNX(e)) return 'A .onnx model run in the server by ONNX Runtime, no Python code: ' + pairsText(served || []) + '.';
      return '';
    };
    const envs = o.environments.map((e) => choice('environment', e, envLabel(e), envDesc(e)));
    const computes = [
      choice('compute', 'cpu', 'CPU server', 'General-purpose instances (' + o.instance_types.cpu.slice(0, 3).join(', ') + ' …). Most image algorithms.'),
      choice('compute', 'gpu', 'GPU server', 'NVIDIA GPU instances (' + o.instance_types.gpu.slice(0, 3).join(', ') + ' …) for deep-learning models.'),
    ];
    const pairs = o.pairs.map((p) => p.input + ':' + p.output);
    // Each API type card has a reason line, shown (and read with the choice)
    // when the chosen environment does not serve the type.
    const card = (key) => {
      const [i, out] = key.split(':');
      const el = choice('apitype', key, IO[i].label + ' → ' + IO[out].label, IO[i].short + ' in, ' + IO[out].short + ' out', flowPicture(i, out));
      const reasonId = 'reason-' + key.replace(':', '-');
      el.append(h('span', { class: 'reason', id: reasonId, hidden: true }));
      $('input', el).setAttribute('aria-describedby', reasonId);
      return el;
    };
    const imageAPIs = IMAGE_APIS.filter((k) => pairs.includes(k));
    const more = pairs.filter((k) => !IMAGE_APIS.includes(k));
    const typeNote = h('p', { class: 'hint', id: 'apitype-note', hidden: true });
    const typeErr = h('p', { class: 'field-error', id: 'apitype-error', 'aria-live': 'polite' });
    const form = h('form', { class: 'card', novalidate: true, id: 'datatype-form' },
      h('fieldset', null, h('legend', null, 'Environment'), h('div', { class: 'choices two' }, envs)),
      h('fieldset', null, h('legend', null, 'Server'), h('div', { class: 'choices two' }, computes)),
      h('fieldset', { class: 'field', 'data-field': 'apitype', 'aria-describedby': 'apitype-note apitype-error' }, h('legend', null, 'API type: what your algorithm takes and returns'),
        h('p', { class: 'hint', id: 'apitype-hint' }, 'Each picture is the data flow: what a client sends, what your predict(x) works on, what the client gets back.'),
        typeNote, typeErr,
        h('p', { class: 'group-title' }, 'The 8 image API types'), h('div', { class: 'choices' }, imageAPIs.map(card)),
        more.length ? [h('p', { class: 'group-title' }, 'More API types'), h('div', { class: 'choices' }, more.map(card))] : null),
      h('div', { class: 'actions' }, link('/ui/home', 'Cancel', 'btn'), h('span', { class: 'spacer' }),
        h('button', { type: 'submit', class: 'btn primary', id: 'to-server' }, 'To Server Configuration')));
    const save = persist(form, DRAFT_KEY, draft());
    // An environment that serves only some API types (onnx) disables the
    // others, each saying why; a chosen type it does not serve stays chosen
    // (switching back keeps it) and is explained beside the API types.
    const typeProblem = () => {
      const env = form.elements.environment.value;
      const served = servedPairs(env);
      const chosen = form.elements.apitype.value;
      if (!served || !chosen || served.includes(chosen)) return '';
      return envSubject(env) + ' serves ' + pairsText(served) + ' only: ' + pairsText([chosen]) + ' is not one of them. Choose one of those, or choose Python 3 to keep ' + pairsText([chosen]) + '.';
    };
    const showTypes = () => {
      const env = form.elements.environment.value;
      const served = servedPairs(env);
      form.querySelectorAll('input[name=apitype]').forEach((input) => {
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
      });
      typeNote.hidden = !served;
      typeNote.textContent = served ? envSubject(env) + ' serves ' + pairsText(served) + '; the other API types are disabled.' : '';
      $('#apitype-hint', form).textContent = isONNX(env)
        ? 'Each picture is the data flow: what a client sends, what the model and its aai_onnx.json make of it, what the client gets back.'
        : 'Each picture is the data flow: what a client sends, what your predict(x) works on, what the client gets back.';
      const problem = typeProblem();
      typeErr.textContent = problem;
      form.querySelectorAll('input[name=apitype]').forEach((input) => {
        if (problem && input.checked) input.setAttribute('aria-invalid', 'true');
        else input.removeAttribute('aria-invalid');
      });
    };
    form.addEventListener('change', showTypes);
    showTypes();
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      save();
      if (typeProblem()) {
        showTypes();
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

  // ---------- new deployment: server ----------
  function pageServer(gen) {
    const o = app.options;
    const dr = draft();
    if (!o.pairs.some((p) => p.input + ':' + p.output === dr.apitype)) dr.apitype = 'image:image';
    const [input, output] = dr.apitype.split(':');
    const types = o.instance_types[dr.compute] || o.instance_types.cpu;
    if (!types.includes(dr.instance_type)) dr.instance_type = dr.compute === 'gpu' ? (types.includes('g4dn.xlarge') ? 'g4dn.xlarge' : types[0]) : (types.includes('t3.small') ? 't3.small' : types[0]);
    store.set(DRAFT_KEY, dr);

    const hostOut = h('output', { class: 'host', id: 'host-preview', for: 'f-api_name', 'aria-live': 'polite' });
    const apiName = h('input', { type: 'text', name: 'api_name', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off', maxlength: 63, id: 'f-api_name' });
    const showHost = () => { hostOut.textContent = 'https://' + (apiName.value.trim() || '<api-name>') + '.' + o.domain; };
    apiName.addEventListener('input', showHost);
    const reqs = h('textarea', { name: 'requirements', rows: 4, spellcheck: 'false', placeholder: 'scikit-image==0.22.0', id: 'f-requirements' });
    const summaryErr = h('p', { class: 'field-error', id: 'summary-error' });
    const summary = h('div', { class: 'field', 'data-field': 'summary' },
      h('div', { class: 'types summary-types' },
        h('div', null, h('h3', null, 'Environment and server'), h('p', null, envLabel(dr.environment) + ', ' + dr.compute.toUpperCase() + ' server')),
        h('div', null, h('h3', null, 'API type: ' + IO[input].label + ' → ' + IO[output].label), flowPicture(input, output, dr.environment))),
      h('p', null, link('/ui/new', 'Change the data type or environment')), summaryErr);
    const alert = h('div', { class: 'alert', id: 'page-alert', hidden: true });
    const submit = h('button', { type: 'submit', class: 'btn primary', id: 'create' }, 'Create Server');
    const form = h('form', { class: 'card', novalidate: true, id: 'server-form' },
      summary, alert,
      h('div', { class: 'row' },
        field('name', 'Algorithm Reference Name', h('input', { type: 'text', name: 'name', maxlength: 100, autocomplete: 'off' }), 'Shown when you manage the algorithm.'),
        field('api_name', 'API name', apiName, 'Names the endpoint and its signed certificate: lowercase letters, digits and single hyphens, starting with a letter.')),
      field('description', 'Short description', h('textarea', { name: 'description', rows: 2, maxlength: 2000, class: 'short' }), 'A reminder of what the algorithm does.'),
      h('div', { class: 'row3' },
        field('instance_type', 'Server type', h('select', { name: 'instance_type' }, types.map((t) => h('option', { value: t }, t))),
          dr.compute === 'gpu' ? 'GPU instances.' : 't2.small or t3.small are enough for most algorithms (more network speed and RAM than micro).'),
        field('region', 'Region', h('select', { name: 'region' }, o.regions.map((r) => h('option', { value: r.code }, r.name + ' (' + r.code + ')'))), 'Where the algorithm runs.'),
        field('threads', 'Threads', h('input', { type: 'number', name: 'threads', min: 1, max: o.max_threads, step: 1, inputmode: 'numeric' }), '1–' + o.max_threads + ' workers.')),
      field('requirements', 'Python dependencies (pip)', reqs, isONNX(dr.environment)
        ? 'An ONNX model runs without Python: leave this empty (nothing of the ONNX server uses packages listed here).'
        : 'One per line, versions with ==, e.g. mypackage==0.1.1. Installed when the server is created; you can add more after testing.'),
      h('div', { class: 'actions' }, link('/ui/new', 'Back', 'btn'), h('span', { class: 'spacer' }), submit));
    // The API name's row also shows the host name being made.
    form.querySelector('[data-field="api_name"]').append(hostOut);
    persist(form, DRAFT_KEY, dr);
    showHost();

    form.addEventListener('submit', act(async (ev) => {
      ev.preventDefault();
      clearAlert(alert);
      const v = draft();
      const lines = [];
      const reqList = [];
      v.requirements.split('\n').forEach((l, i) => {
        if (l.trim()) { reqList.push(l.trim()); lines.push(i + 1); }
      });
      const body = {
        name: v.name, description: v.description, api_name: v.api_name.trim(), environment: v.environment, compute: v.compute,
        instance_type: v.instance_type, region: v.region, threads: v.threads === '' ? 0 : Number(v.threads),
        input, output, requirements: reqList,
      };
      if (!Number.isInteger(body.threads)) body.threads = -1; // the API explains the range
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
      const rest = showFieldErrors(form, r.data.fields, (f) => {
        const m = f.field.match(/^requirements\[(\d+)\]$/);
        if (m) return { name: 'requirements', message: 'Line ' + lines[Number(m[1])] + ': ' + f.message };
        if (['environment', 'compute', 'input', 'output'].includes(f.field)) return { name: 'summary', message: f.field + ' ' + f.message };
        return { name: f.field, message: niceMessage(f.field, f.message) };
      });
      setAlert(alert, 'error', apiMessage(r.data.fields && !rest.length ? { message: 'Fix the fields marked below, then press Create Server again.' } : r.data, rest));
    }));
    mount(pageTitle('server'), [
      h('p', { class: 'crumb' }, link('/ui/home', 'Home'), ' / New algorithm'),
      h('h1', { tabindex: -1 }, pageTitle('server')),
      h('p', { class: 'lead' }, 'Name the algorithm and its API, pick the server and list the Python packages it needs.'),
      newStepper('server'), form]);
  }

  // ---------- deployment pages ----------
  const RANK = { configured: 0, provisioned: 1, code_fetched: 2, requirements_installed: 3, tested: 4, completed: 5 };
  function facts(d) {
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
  function reachable(d, f) {
    const base = '/ui/deployments/' + d.id + '/';
    const r = {};
    if (f.gone) return r;
    r.code = base + 'code';
    r.integrate = base + 'integrate';
    if (f.hasCode) { r.test = base + 'test'; r.dependencies = base + 'dependencies'; }
    if (f.testCurrent || f.everLive) { r.use = base + 'use'; r.complete = base + 'complete'; }
    return r;
  }
  // derivedPage is where a deployment is: where a reload with no page (or a
  // page it cannot be on yet) lands.
  function derivedPage(d, f) {
    switch (f.busy) {
      case 'provision': case 'fetch_code': return 'code';
      case 'install_requirements': case 'test': return 'test';
      case 'complete': return 'complete';
    }
    switch (d.step) {
      case 'configured': case 'provisioned': return 'code';
      case 'code_fetched': return 'integrate';
      case 'requirements_installed': return 'test';
      case 'tested': return 'use';
      case 'completed': return 'complete';
    }
    return f.hasCode ? 'test' : 'code';
  }

  async function deploymentPage(gen, id, page) {
    const r = await api('GET', dpath(id));
    if (gen !== app.gen) return;
    if (r.status === 404) {
      mount('Not found', [h('div', { class: 'card' }, h('h1', { tabindex: -1 }, 'Algorithm not found'),
        h('p', null, 'No algorithm of yours has this address; it may have been deleted.'), h('p', null, link('/ui/home', 'Back to Home')))]);
      return;
    }
    if (!r.ok) throw new Error(r.data.message || 'cannot read the deployment');
    const d = r.data;
    const f = facts(d);
    if (f.gone) {
      app.flash = { kind: 'info', text: '"' + d.name + '" is ' + d.status + '.' };
      return navigate('/ui/home', true);
    }
    const reach = reachable(d, f);
    if (!page || !reach[page]) {
      const to = derivedPage(d, f);
      if (to !== page) return navigate('/ui/deployments/' + id + '/' + to, true);
    }
    const feed = feedFor(id);
    const ctx = {
      d, f, gen, id, feed, reach,
      alive: () => gen === app.gen,
      check() { if (gen !== app.gen) throw new PageGone(); },
      progress: progressPanel(feed),
      alert: h('div', { class: 'alert', id: 'page-alert', hidden: true }),
    };
    // runStep posts a wizard step and shows its progress until it answers.
    ctx.runStep = async (step, body, label) => {
      ctx.progress.start(label || BUSY_LABELS[step] || step);
      try {
        return await api('POST', dpath(id, '/steps/' + step), body);
      } finally {
        if (ctx.alive()) ctx.progress.stop();
      }
    };
    // fresh reads the deployment again.
    ctx.fresh = async () => {
      const g = await api('GET', dpath(id));
      ctx.check();
      if (g.ok) ctx.d = g.data;
      return ctx.d;
    };
    // waitIdle waits for a step someone else started (another tab, or this
    // page before a reload) and returns the deployment once it is idle.
    ctx.waitIdle = async () => {
      let cur = await ctx.fresh();
      if (!(cur.state && cur.state.busy)) return cur;
      ctx.progress.start(BUSY_LABELS[cur.state.busy] || cur.state.busy);
      try {
        for (;;) {
          await sleep(1000);
          cur = await ctx.fresh();
          if (!(cur.state && cur.state.busy)) return cur;
        }
      } finally {
        if (ctx.alive()) ctx.progress.stop();
      }
    };
    const done = {
      datatype: true, server: true, code: f.hasCode, integrate: f.hasCode, test: f.testCurrent || d.step === 'completed',
      dependencies: false, use: f.everLive, complete: d.step === 'completed',
    };
    const title = pageTitle(page);
    const head = [
      h('p', { class: 'crumb' }, link('/ui/home', 'Home'), ' / ', d.name),
      h('div', { class: 'page-head' },
        h('h1', { tabindex: -1 }, title),
        h('span', null, h('span', { class: 'badge ' + d.status, id: 'status' }, d.status), ' ',
          f.busy ? h('span', { class: 'badge busy' }, 'busy: ' + f.busy) : null)),
      h('p', { class: 'lead' }, h('code', null, d.api_name + '.' + app.options.domain), ' · ', h('span', { id: 'step-label' }, STEP_LABELS[d.step] || d.step)),
      stepper(page, reach, done),
    ];
    const body = h('div', { class: 'card', id: 'page-' + page });
    const warn = d.state_error ? h('div', { class: 'alert warn' }, h('p', null, d.state_error + '; what is shown may be behind.')) : null;
    mount(title + ' · ' + d.name, [...head, takeFlash(), warn, ctx.progress.el, ctx.alert, body, logPanel(feed)]);
    const pages = { code: pageCode, integrate: pageIntegrate, test: pageTest, dependencies: pageDependencies, use: pageUse, complete: pageComplete };
    await pages[page](ctx, body);
    // A step running when the page opened (a reload, another tab): show its
    // progress and re-render when it is over.
    if (f.busy && !ctx.ownsBusy && ctx.alive()) {
      const was = f.busy;
      ctx.waitIdle().then((cur) => {
        if (!ctx.alive()) return;
        const err = cur.state && cur.state.last_error;
        // Code fetched while the page was away: go on as the button would have.
        const next = { code: 'integrate', integrate: 'test' }[page];
        if (was === 'fetch_code' && next && !(err && err.step === 'fetch_code')) navigate('/ui/deployments/' + id + '/' + next, true);
        else route();
      }).catch(() => {});
    }
  }

  // ---------- Code Repo Integration ----------
  // ensureProvisioned waits for the server (starting provisioning when nobody
  // has) and returns whether it is there.
  function ensureProvisioned(ctx) {
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
  function refreshServerStatus(ctx) {
    const cur = $('#server-status');
    if (cur) cur.replaceWith(serverStatus(Object.assign({}, ctx, { f: facts(ctx.d) })));
    showState(ctx.d);
  }
  // showState updates the page head after a step changed the deployment.
  function showState(d) {
    const label = $('#step-label');
    if (label) label.textContent = STEP_LABELS[d.step] || d.step;
    const badge = $('#status');
    if (badge) {
      badge.textContent = d.status;
      badge.className = 'badge ' + d.status;
    }
  }

  function serverStatus(ctx) {
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
  function serverLine(d) {
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

  async function pageCode(ctx, body) {
    const { d, f, id } = ctx;
    const onnx = isONNX((d.spec || {}).environment);
    const status = serverStatus(ctx);
    const srcGit = choice('source', 'git', 'Git repository', 'A URL (or a local path in dev) and a branch, tag or commit.');
    const srcUp = choice('source', 'upload', 'Upload an archive', onnx ? 'A .zip or .tar.gz holding the .onnx model (or upload the model below) and optionally aai_onnx.json.' : 'A .zip or .tar.gz holding aai_main.py.');
    const gitUrl = h('input', { type: 'text', name: 'git_url', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off', placeholder: 'a Git URL, or a local path in dev' });
    const ref = h('input', { type: 'text', name: 'ref', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off', placeholder: 'main' });
    const archive = h('input', { type: 'file', name: 'archive', accept: '.zip,.tar.gz,.tgz,.tar,application/zip,application/gzip' });
    const files = h('input', { type: 'file', name: 'files', multiple: true });
    const folder = h('input', { type: 'text', name: 'folder', autocomplete: 'off', spellcheck: 'false', placeholder: 'models/' });
    // A private repository's credentials: never saved in the browser (the
    // password is a password input, the key a file), sent once as git_auth
    // and never shown back by the platform.
    const gitUser = h('input', { type: 'text', name: 'git_username', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off', placeholder: 'optional with a token' });
    const gitPass = h('input', { type: 'password', autocomplete: 'new-password', spellcheck: 'false', placeholder: 'password or access token' });
    const gitKey = h('input', { type: 'file' });
    const gitHosts = h('textarea', { name: 'git_known_hosts', rows: 2, spellcheck: 'false', placeholder: 'git.example.com ssh-ed25519 AAAA… (from ssh-keyscan)' });
    const authBox = h('details', { id: 'git-auth' }, h('summary', null, 'Private repository: credentials'),
      h('p', { class: 'hint' }, 'HTTPS URL: a password or access token. SSH URL (git@host:repo.git): a deploy key without a passphrase and the server’s known_hosts line. They are kept sealed, used only to fetch, and never shown again; put none in the URL.'),
      h('div', { class: 'row' }, field('git_auth.username', 'Username', gitUser), field('git_auth.password', 'Password or token', gitPass)),
      h('div', { class: 'row' }, field('git_auth.ssh_private_key', 'SSH deploy key (file)', gitKey), field('git_auth.known_hosts', 'known_hosts', gitHosts)),
      h('div', { class: 'field', 'data-field': 'git_auth' }, h('p', { class: 'field-error', 'aria-live': 'polite' })));
    const gitAuth = async () => {
      if (!gitPass.value && !gitKey.files[0]) return null;
      const a = {};
      if (gitUser.value.trim()) a.username = gitUser.value.trim();
      if (gitPass.value) a.password = gitPass.value;
      if (gitKey.files[0]) a.ssh_private_key = await gitKey.files[0].text();
      if (gitKey.files[0] && gitHosts.value.trim()) a.known_hosts = gitHosts.value.trim() + '\n';
      return a;
    };
    const gitBox = h('div', { id: 'git-fields' }, h('div', { class: 'row' },
      field('git_url', 'Git URL', gitUrl), field('ref', 'Branch, tag or commit', ref, 'Empty: the default branch.')), authBox);
    const upBox = h('div', { id: 'upload-fields' }, field('archive', 'Code archive', archive, 'A single top folder (as GitHub archives have) is stripped.'));
    const submit = h('button', { type: 'submit', class: 'btn primary', id: 'fetch' }, 'Interface Your Algorithm');
    const form = h('form', { novalidate: true, id: 'code-form' },
      h('fieldset', null, h('legend', null, 'Select code from Git or upload it'), h('div', { class: 'choices two' }, srcGit, srcUp)),
      gitBox, upBox,
      h('fieldset', null, h('legend', null, 'Extra model files (optional)'),
        h('p', { class: 'hint' }, onnx ? 'The .onnx model when the repository or archive lacks it, a labels file, a sample image: added next to aai_onnx.json.'
          : 'Trained models or data your algorithm loads, added next to aai_main.py.'),
        h('div', { class: 'row' }, field('files', 'Files', files), field('folder', 'Into the folder', folder, 'Relative, e.g. models/; empty: beside ' + (onnx ? ONNX_CONFIG : 'aai_main.py') + '.'))),
      h('div', { class: 'actions' },
        link('/ui/deployments/' + id + '/integrate', onnx ? 'No repository? Upload the model and write aai_onnx.json in the browser' : 'No repository? Write aai_main.py in the browser'),
        h('span', { class: 'spacer' }), submit));
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
      const up = form.elements.source.value === 'upload';
      submit.disabled = true;
      try {
        const dir = folder.value.trim().replace(/^\/+/, '').replace(/\/*$/, '');
        let req;
        const auth = up ? null : await gitAuth();
        if (!up && !files.files.length) {
          req = { git_url: gitUrl.value.trim(), ref: ref.value.trim() };
          if (auth) req.git_auth = auth;
        } else {
          req = new FormData();
          if (up) {
            if (archive.files[0]) req.append('archive', archive.files[0], archive.files[0].name);
          } else {
            req.append('git_url', gitUrl.value.trim());
            req.append('ref', ref.value.trim());
            if (auth) req.append('git_auth', JSON.stringify(auth));
          }
          for (const file of files.files) req.append('files', file, (dir ? dir + '/' : '') + file.name);
        }
        if (up && !archive.files[0]) {
          showFieldErrors(form, [{ field: 'archive', message: 'Choose a .zip or .tar.gz archive.' }]);
          return;
        }
        if (!(await ensureProvisioned(ctx))) return;
        refreshServerStatus(ctx);
        const r = await ctx.runStep('fetch_code', req, 'Fetching your code');
        ctx.check();
        if (r.ok) {
          gitPass.value = '';
          gitKey.value = '';
          navigate('/ui/deployments/' + id + '/integrate');
          return;
        }
        if ((r.data.fields || []).some((fe) => fe.field.startsWith('git_auth'))) authBox.open = true;
        const rest = showFieldErrors(form, r.data.fields, (fe) => ({
          name: up && fe.field === 'git_url' ? 'archive' : fe.field,
          message: niceMessage(fe.field, fe.message),
        }));
        setAlert(ctx.alert, 'error', [h('p', null, 'Your code could not be fetched.'), ...apiMessage(r.data, rest)]);
      } finally {
        if (ctx.alive()) submit.disabled = false;
      }
    }));

    append(body, onnx
      ? h('p', { id: 'code-intro' }, 'Select code from Git or upload it: for an ONNX model the folder holds the ', h('code', null, '.onnx'), ' model and optionally ',
        h('code', null, ONNX_CONFIG), ', its preprocessing and postprocessing (without one, a generated configuration naming the model is written for you; adapt it on the next page). No Python code runs.')
      : h('p', null, 'Select code from Git or upload it: the folder must hold ', h('code', null, 'aai_main.py'),
        ' (without one, the generated skeleton is written for you) and may hold ', h('code', null, 'aai_pip-requirements.txt'), '.'),
      status, form);
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
  function codeSource(c) {
    const files = c.files && c.files.length ? ' + ' + c.files.join(', ') : '';
    const git = c.git_url ? 'Git ' + c.git_url + (c.commit ? ' at ' + c.commit.slice(0, 10) : c.ref ? ' ' + c.ref : '') + (c.with_credentials ? ' with credentials' : '') : 'upload';
    if (c.source === 'edit') return 'edited in the browser from revision ' + c.base_revision + ' (' + git + files + '; changed: ' + (c.edited || []).join(', ') + ')';
    if (c.source === 'git') return git + files;
    return 'upload' + files;
  }

  // ---------- Integrate Algorithm into API ----------
  // fetchedCode reads the current code revision as the API keeps it: the
  // listing, its main file (aai_main.py, or aai_onnx.json for ONNX) and its
  // requirements, so the Integrate page edits the author's own file. kind:
  // 'none' (no code yet), 'ok', or 'unreadable' (a revision fetched before
  // the platform kept a copy, or a main file it cannot show; message says why).
  async function fetchedCode(id, c, mainName) {
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
  function sizeText(n) {
    if (n < 1024) return n + ' bytes';
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KiB';
    return (n / 1024 / 1024).toFixed(1) + ' MiB';
  }
  // codeFiles lists a revision's files, the text ones viewable (read-only):
  // saving an edit keeps every one of them.
  function codeFiles(id, fc, mainName) {
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

  async function pageIntegrate(ctx, body) {
    const { d, f, id } = ctx;
    const sp = d.spec || {};
    if (isONNX(sp.environment)) return pageIntegrateONNX(ctx, body);
    const input = sp.input || 'image';
    const output = sp.output || 'image';
    const key = formKey(id, 'integrate');
    const c = f.st.code;
    const fc = await fetchedCode(id, c, 'aai_main.py');
    ctx.check();
    // A draft is kept per revision: one typed over an older revision must
    // not pass for an edit of the current one.
    const rev = c ? c.revision : 0;
    let saved = store.get(key, {});
    if (saved.revision !== rev) saved = {};
    let skeleton = null;
    const loadSkeleton = async () => {
      if (skeleton !== null) return skeleton;
      const r = await api('GET', '/api/v1/skeleton?input=' + encodeURIComponent(input) + '&output=' + encodeURIComponent(output));
      skeleton = r.ok ? r.data : '# The skeleton could not be loaded: ' + (r.data.message || r.status) + '\n';
      return skeleton;
    };
    // What the code holds now: the editor starts from it, and saving without
    // a change makes no new revision.
    const original = fc.kind === 'ok' ? fc.main : fc.kind === 'none' ? await loadSkeleton() : '';
    const originalReqs = fc.kind === 'ok' ? (fc.reqs !== null ? fc.reqs : '') : ((c && c.requirements) || []).join('\n');
    const editor = h('textarea', { id: 'editor', name: 'main', spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', wrap: 'off', 'aria-describedby': 'editor-hint' });
    const gutter = h('pre', { class: 'gutter', 'aria-hidden': 'true' });
    const renumber = () => {
      const n = editor.value.split('\n').length;
      let t = '';
      for (let i = 1; i <= n; i++) t += i + '\n';
      gutter.textContent = t;
      gutter.scrollTop = editor.scrollTop;
    };
    editor.addEventListener('scroll', () => { gutter.scrollTop = editor.scrollTop; });
    editor.value = saved.main !== undefined ? saved.main : original;
    ctx.check();
    renumber();
    const reqs = h('textarea', { name: 'requirements_txt', rows: 3, spellcheck: 'false', id: 'f-zip-requirements' });
    reqs.value = saved.requirements_txt !== undefined ? saved.requirements_txt : originalReqs;
    const save = () => store.set(key, { revision: rev, main: editor.value, requirements_txt: reqs.value });
    editor.addEventListener('input', () => { renumber(); save(); });
    reqs.addEventListener('input', save);

    const opener = h('input', { type: 'file', accept: '.py,text/x-python,text/plain', id: 'open-file', class: 'sr-only' });
    opener.addEventListener('change', act(async () => {
      const file = opener.files[0];
      if (!file) return;
      editor.value = await file.text();
      renumber();
      save();
      opener.value = '';
      editor.focus();
    }));
    const reset = h('button', { type: 'button', class: 'btn small', id: 'reset-skeleton' }, 'Reset to the generated skeleton');
    reset.addEventListener('click', act(async () => {
      // Replacing the author's code is never silent: always asked.
      const what = c && !c.generated_main ? 'your aai_main.py' : 'the editor\'s text';
      if (!window.confirm('Replace ' + what + ' in the editor with the generated skeleton? Nothing is saved until you press ' + useLabel + '.')) return;
      editor.value = await loadSkeleton();
      renumber();
      save();
    }));
    const useLabel = c ? 'Save as a new revision' : 'Use this code';
    const use = h('button', { type: 'button', class: 'btn primary', id: 'use-code' }, useLabel);
    if (f.busy) use.disabled = true;
    const norm = (t) => (t.endsWith('\n') || t === '' ? t : t + '\n');
    use.addEventListener('click', act(async () => {
      clearAlert(ctx.alert);
      if (!editor.value.trim()) {
        setAlert(ctx.alert, 'error', [h('p', null, 'aai_main.py is empty.' + (fc.kind === 'unreadable' ? ' Write it, or press Reset to the generated skeleton.' : ''))]);
        editor.focus();
        return;
      }
      const mainChanged = fc.kind !== 'ok' || norm(editor.value) !== norm(original);
      const reqsChanged = fc.kind !== 'ok' || reqs.value.trim() !== originalReqs.trim();
      if (c && !mainChanged && !reqsChanged) {
        // Nothing changed: no new revision, on to the test.
        store.del(key);
        app.flash = { kind: 'ok', text: 'Nothing changed: code revision ' + c.revision + ' stays as it is. Press Test Code.' };
        navigate('/ui/deployments/' + id + '/test');
        return;
      }
      use.disabled = true;
      try {
        const fd = new FormData();
        if (c) {
          // An edit of the current revision: every other file, models
          // included, is kept.
          fd.append('base_revision', String(c.revision));
          if (mainChanged) fd.append('files', new Blob([norm(editor.value)], { type: 'text/x-python' }), 'aai_main.py');
          if (reqsChanged) fd.append('files', new Blob([reqs.value.trim() ? reqs.value.trim() + '\n' : ''], { type: 'text/plain' }), 'aai_pip-requirements.txt');
        } else {
          const zip = window.AlgoZip.build([
            { name: 'aai_main.py', data: norm(editor.value) },
            { name: 'aai_pip-requirements.txt', data: reqs.value.trim() ? reqs.value.trim() + '\n' : '' },
          ]);
          fd.append('archive', new Blob([zip], { type: 'application/zip' }), 'aai_main.zip');
        }
        if (!(await ensureProvisioned(ctx))) return;
        const r = await ctx.runStep('fetch_code', fd, c ? 'Saving aai_main.py as a new revision' : 'Uploading aai_main.py');
        ctx.check();
        if (!r.ok) {
          const more = r.data.code === 'code_changed' ? [h('p', null, 'Your text stays in the editor; ', h('a', { href: location.pathname, id: 'reload-code' }, 'reload'), ' to see the current code (copy your changes first).')] : [];
          setAlert(ctx.alert, 'error', [h('p', null, 'The code could not be saved.'), ...apiMessage(r.data, r.data.fields), ...more]);
          return;
        }
        store.del(key);
        const nc = r.data.state.code;
        app.flash = { kind: 'ok', text: 'aai_main.py from the editor is now code revision ' + nc.revision + (c ? ' (every other file of revision ' + c.revision + ' kept)' : '') + '. Press Test Code.' };
        navigate('/ui/deployments/' + id + '/test');
      } finally {
        if (ctx.alive()) use.disabled = false;
      }
    }));

    let codeNote;
    if (!c) codeNote = h('div', { class: 'alert info', id: 'code-note' }, h('p', null, 'No code yet. Write aai_main.py below and press Use this code, or fetch it on ', link('/ui/deployments/' + id + '/code', 'Code Repo Integration'), '.'));
    else if (fc.kind === 'unreadable') codeNote = h('div', { class: 'alert warn', id: 'code-note' }, h('p', null, 'Your code (revision ' + c.revision + ', ' + codeSource(c) + ') cannot be shown here: ' + fc.message + '. Fetch it again on ', link('/ui/deployments/' + id + '/code', 'Code Repo Integration'), ' to edit it here, or write a new aai_main.py below (saving keeps every other file).'));
    else if (c.generated_main) codeNote = h('div', { class: 'alert warn', id: 'code-note' }, h('p', null, 'Your code (revision ' + c.revision + ', ' + codeSource(c) + ') had no aai_main.py, so the generated skeleton below was written into it. It runs as it is; make it yours, then press ' + useLabel + ' (every other file is kept).'));
    else codeNote = h('div', { class: 'alert ok', id: 'code-note' }, h('p', null, 'Your code (revision ' + c.revision + ', ' + codeSource(c) + ') has its own aai_main.py: it is in the editor below, and Test Code runs it. Saving a change makes a new revision that keeps every other file.'));

    const hint = fc.kind === 'ok' ? 'Your aai_main.py of revision ' + fc.revision + '.' : fc.kind === 'none' ? 'Prefilled with the generated ' + IO[input].label + ' → ' + IO[output].label + ' skeleton.' : '';
    append(body,
      h('p', null, 'Code integration in ', h('code', null, 'aai_main.py'), ': one class. ', h('code', null, '__init__'), ' loads models once (keep them on ', h('code', null, 'self'), '); ',
        h('code', null, 'predict(x)'), ' does the work for each request; ', h('code', null, 'testing_input_data()'), ' returns a sample input for Test Code.'),
      codeNote,
      h('div', { class: 'types', id: 'types' },
        h('div', null, h('h3', null, 'Input: ' + IO[input].label), h('p', null, IO[input].input)),
        h('div', null, h('h3', null, 'Output: ' + IO[output].label), h('p', null, IO[output].output))),
      h('div', { class: 'field' },
        h('label', { for: 'editor' }, 'aai_main.py'),
        h('span', { class: 'hint', id: 'editor-hint' }, hint + ' Tab moves to the next control; indent with spaces.'),
        h('div', { class: 'editor' }, gutter, editor)),
      h('div', { class: 'actions' }, reset, h('label', { for: 'open-file', class: 'btn small', tabindex: 0, role: 'button',
        onkeydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); opener.click(); } } }, 'Open a .py file…'), opener),
      fc.kind === 'ok' ? codeFiles(id, fc, 'aai_main.py') : null,
      field('zip_requirements', 'aai_pip-requirements.txt', reqs, c
        ? 'One package a line. Saved with aai_main.py when changed; every other file of your code is kept.'
        : 'One package a line. Uploaded with aai_main.py as your first code revision.'),
      h('div', { class: 'actions' },
        f.hasCode ? link('/ui/deployments/' + id + '/test', c && !c.generated_main ? 'Keep my code as it is: Test Your Code' : 'Continue to Test Your Code', 'btn', 'to-test') : null,
        h('span', { class: 'spacer' }), use));
  }

  // ---------- Integrate Algorithm into API: environment onnx ----------
  // ONNX_FIELDS explains aai_onnx.json beside its editor, in short
  // (docs/onnx.md has every field); the postprocess line shown is the
  // deployment's output type's.
  const ONNX_FIELDS = {
    model: 'The .onnx file: its path inside the code folder.',
    preprocess: 'How each request image (RGB, 0–255) becomes the model\'s input: resized to width × height (resize "stretch", or "letterbox" keeping the aspect ratio, with anchor "center" or "topleft" and pad_value), channel_order "RGB" or "BGR", then (pixel × scale − mean) ÷ std per channel, in layout "NCHW" or "NHWC". Without width and height: the model\'s fixed size (a dynamic model takes each image at its own size).',
    image: 'kind "image": the output (output names it; layout, channel_order) drawn as a PNG: activation "sigmoid" for logits, scaling "unit" [0,1], "symmetric" [−1,1], "raw" 0–255 or "minmax" to 0–255; restore_size crops the letterbox and resizes back to the request\'s size.',
    json: 'kind "json": the outputs named in outputs (all when absent) as nested arrays, one item per image; softmax over the last axis; top_k > 0 gives the K best as {index, label, score}, labels naming a text file in the folder with one label a line.',
    testing_input: 'Optional: an image in the folder that Test Code sends; else a generated image of the model\'s input size.',
    max_batch_size: 'The most images one model run gets (default 8).',
  };

  // onnxFileName is where a chosen file lands in the code folder: the
  // configuration's model path for the one .onnx file, its labels or
  // testing_input path for a file of that base name, else its own name.
  function onnxFileName(cfg, file, onnxCount) {
    const base = (p) => (typeof p === 'string' ? p.split('/').pop() : '');
    if (/\.onnx$/i.test(file.name) && onnxCount === 1 && typeof cfg.model === 'string' && /\.onnx$/i.test(cfg.model)) return cfg.model;
    const labels = cfg.postprocess && cfg.postprocess.labels;
    if (base(labels) === file.name) return labels;
    if (base(cfg.testing_input) === file.name) return cfg.testing_input;
    return file.name;
  }

  async function pageIntegrateONNX(ctx, body) {
    const { d, f, id } = ctx;
    const sp = d.spec || {};
    const input = sp.input || 'image';
    const output = sp.output || 'image';
    const c = f.st.code;
    const key = formKey(id, 'integrate-onnx');
    const fc = await fetchedCode(id, c, ONNX_CONFIG);
    ctx.check();
    const rev = c ? c.revision : 0;
    let saved = store.get(key, {});
    if (saved.revision !== rev) saved = {};
    // The model the generated configuration names: the folder's .onnx file
    // (fetch_code names the folder's one .onnx file the same way).
    const model = (fc.files.find((x) => /\.onnx$/i.test(x.path)) || {}).path || ((c && c.files) || []).find((n) => /\.onnx$/i.test(n)) || '';
    // With code, saving is an edit of the current revision: the model and
    // every other file are kept. Without, the model must be chosen.
    const carry = !!c;
    let skeleton = null;
    const loadSkeleton = async () => {
      if (skeleton !== null) return skeleton;
      const q = '?environment=onnx&input=' + encodeURIComponent(input) + '&output=' + encodeURIComponent(output) + (model ? '&model=' + encodeURIComponent(model) : '');
      // As text: the generated file's own layout, not a re-serialisation.
      const r = await api('GET', '/api/v1/skeleton' + q, undefined, { blob: true });
      if (r.ok) {
        skeleton = await r.data.text();
        return skeleton;
      }
      setAlert(ctx.alert, 'error', [h('p', null, 'The generated ' + ONNX_CONFIG + ' could not be loaded.'), ...apiMessage(r.data, r.data.fields)]);
      return '';
    };
    const editor = h('textarea', { id: 'editor', name: 'config', spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', wrap: 'off', 'aria-describedby': 'editor-hint editor-error' });
    const gutter = h('pre', { class: 'gutter', 'aria-hidden': 'true' });
    const renumber = () => {
      const n = editor.value.split('\n').length;
      let t = '';
      for (let i = 1; i <= n; i++) t += i + '\n';
      gutter.textContent = t;
      gutter.scrollTop = editor.scrollTop;
    };
    editor.addEventListener('scroll', () => { gutter.scrollTop = editor.scrollTop; });
    const original = fc.kind === 'ok' ? fc.main : fc.kind === 'none' ? await loadSkeleton() : '';
    editor.value = saved.config !== undefined ? saved.config : original;
    ctx.check();
    renumber();
    const editorErr = h('p', { class: 'field-error', id: 'editor-error', 'aria-live': 'polite' });
    const editorRow = h('div', { class: 'field', 'data-field': 'config' },
      h('label', { for: 'editor' }, ONNX_CONFIG),
      h('span', { class: 'hint', id: 'editor-hint' }, (fc.kind === 'ok' ? 'Your ' + ONNX_CONFIG + ' of revision ' + fc.revision + '.'
        : fc.kind === 'none' ? 'Prefilled with the generated ' + IO[input].label + ' → ' + IO[output].label + ' configuration' + (model ? ' for ' + model : '') + '.' : '') + ' JSON; Tab moves to the next control.'),
      h('div', { class: 'editor' }, gutter, editor), editorErr);
    const save = () => store.set(key, { revision: rev, config: editor.value });
    editor.addEventListener('input', () => { renumber(); save(); clearFieldError(editorRow); });

    const files = h('input', { type: 'file', name: 'files', multiple: true, id: 'f-onnx-files' });
    const filesRow = field('onnx_files', carry ? 'More files (optional)' : 'The model and the files ' + ONNX_CONFIG + ' names', files, carry
      ? 'Saving makes a new revision from revision ' + c.revision + ' with this ' + ONNX_CONFIG + ': its model and every other file are kept. Files chosen here are added (or replace files of the same path).'
      : 'Using this code replaces the code folder, and an upload keeps nothing of the last one: choose the .onnx model (it is saved at the path "model" names) and any labels file or sample image the configuration names.');

    const opener = h('input', { type: 'file', accept: '.json,application/json,text/plain', id: 'open-file', class: 'sr-only' });
    opener.addEventListener('change', act(async () => {
      const file = opener.files[0];
      if (!file) return;
      editor.value = await file.text();
      renumber();
      save();
      opener.value = '';
      editor.focus();
    }));
    const reset = h('button', { type: 'button', class: 'btn small', id: 'reset-skeleton' }, 'Reset to the generated configuration');
    reset.addEventListener('click', act(async () => {
      // Replacing the author's file is never silent: always asked.
      if (!window.confirm('Replace ' + (c && !c.generated_main ? 'your ' + ONNX_CONFIG : 'the editor\'s text') + ' in the editor with the generated configuration? Nothing is saved until you press the save button.')) return;
      editor.value = await loadSkeleton();
      renumber();
      save();
    }));
    const use = h('button', { type: 'button', class: 'btn primary', id: 'use-code' }, c ? 'Save as a new revision' : 'Use this code');
    if (f.busy) use.disabled = true;
    use.addEventListener('click', act(async () => {
      clearAlert(ctx.alert);
      clearFieldError(editorRow);
      clearFieldError(filesRow);
      let cfg;
      try {
        cfg = JSON.parse(editor.value);
      } catch (e) {
        cfg = e;
      }
      const editorProblem = !editor.value.trim() ? ONNX_CONFIG + ' is empty.'
        : cfg instanceof Error ? ONNX_CONFIG + ' is not valid JSON: ' + cfg.message
          : !cfg || typeof cfg !== 'object' || Array.isArray(cfg) ? ONNX_CONFIG + ' must be a JSON object ({"model": ..., "preprocess": ..., "postprocess": ...}).' : '';
      const chosen = [...files.files];
      const onnxCount = chosen.filter((file) => /\.onnx$/i.test(file.name)).length;
      // An edit keeps the model only where it is: a "model" naming a path
      // the revision does not hold needs the model chosen (saved there).
      const modelHeld = fc.kind !== 'ok' || editorProblem || typeof cfg.model !== 'string' || fc.files.some((x) => x.path === cfg.model);
      const filesProblem = !carry && !onnxCount ? 'Choose the .onnx model: the upload replaces the code folder and keeps nothing of the last one.'
        : carry && !onnxCount && !modelHeld ? '"model" names ' + cfg.model + ', which revision ' + c.revision + ' does not hold: choose the .onnx model (it is saved at that path), or name the model the code holds.' : '';
      if (editorProblem || filesProblem) {
        showFieldErrors(body, [editorProblem ? { field: 'config', message: editorProblem } : null, filesProblem ? { field: 'onnx_files', message: filesProblem } : null].filter(Boolean));
        return;
      }
      const text = editor.value.endsWith('\n') ? editor.value : editor.value + '\n';
      const changed = fc.kind !== 'ok' || text !== (fc.main.endsWith('\n') ? fc.main : fc.main + '\n');
      if (carry && !changed && !chosen.length) {
        // Nothing changed: no new revision, on to the test.
        store.del(key);
        app.flash = { kind: 'ok', text: 'Nothing changed: code revision ' + c.revision + ' stays as it is. Press Test Code.' };
        navigate('/ui/deployments/' + id + '/test');
        return;
      }
      use.disabled = true;
      try {
        const fd = new FormData();
        if (carry) {
          fd.append('base_revision', String(c.revision));
          if (changed) fd.append('files', new Blob([text], { type: 'application/json' }), ONNX_CONFIG);
        } else {
          const zip = window.AlgoZip.build([{ name: ONNX_CONFIG, data: text }]);
          fd.append('archive', new Blob([zip], { type: 'application/zip' }), 'aai_onnx.zip');
        }
        const names = [];
        for (const file of chosen) {
          const name = onnxFileName(cfg, file, onnxCount);
          names.push(name);
          fd.append('files', file, name);
        }
        if (!(await ensureProvisioned(ctx))) return;
        const r = await ctx.runStep('fetch_code', fd, 'Uploading ' + ONNX_CONFIG);
        ctx.check();
        if (!r.ok) {
          const rest = showFieldErrors(body, r.data.fields, (fe) => ({ name: fe.field === 'files' ? 'onnx_files' : fe.field, message: niceMessage(fe.field, fe.message) }));
          setAlert(ctx.alert, 'error', [h('p', null, 'The code could not be used.'), ...apiMessage(r.data, rest)]);
          return;
        }
        store.del(key);
        app.flash = { kind: 'ok', text: ONNX_CONFIG + ' from the editor is now code revision ' + r.data.state.code.revision +
          (carry ? ' (every other file of revision ' + c.revision + ' kept)' : '') + (names.length ? ', with ' + names.join(', ') : '') + '. Press Test Code.' };
        navigate('/ui/deployments/' + id + '/test');
      } finally {
        if (ctx.alive()) use.disabled = false;
      }
    }));

    let codeNote;
    if (!c) codeNote = h('div', { class: 'alert info', id: 'code-note' }, h('p', null, 'No code yet. Choose the model, write ' + ONNX_CONFIG + ' below and press Use this code, or fetch a repository or archive on ', link('/ui/deployments/' + id + '/code', 'Code Repo Integration'), '.'));
    else if (c.generated_main) codeNote = h('div', { class: 'alert warn', id: 'code-note' }, h('p', null, 'Your code (revision ' + c.revision + ', ' + codeSource(c) + ') had no ' + ONNX_CONFIG + ', so the generated one was written into it' + (model ? ', naming ' + model : '') + '. It may run as it is (Test Code tells); adapt preprocess to what the model was trained with, then press Save as a new revision (the model and every other file are kept).'));
    else if (fc.kind === 'unreadable') codeNote = h('div', { class: 'alert warn', id: 'code-note' }, h('p', null, 'Your code (revision ' + c.revision + ', ' + codeSource(c) + ') cannot be shown here: ' + fc.message + '. Fetch it again on ', link('/ui/deployments/' + id + '/code', 'Code Repo Integration'), ' to edit it here, or write a new ' + ONNX_CONFIG + ' below (saving keeps every other file).'));
    else codeNote = h('div', { class: 'alert ok', id: 'code-note' }, h('p', null, 'Your code (revision ' + c.revision + ', ' + codeSource(c) + ') has its own ' + ONNX_CONFIG + ': it is in the editor below, and Test Code runs it. Saving a change makes a new revision that keeps the model and every other file.'));

    const fieldList = h('dl', { class: 'kv onnx-fields', id: 'onnx-fields' },
      ['model', 'preprocess', output === 'json' ? 'json' : 'image', 'testing_input', 'max_batch_size'].map((k) => [
        h('dt', null, h('code', null, k === 'image' || k === 'json' ? 'postprocess' : k)), h('dd', null, ONNX_FIELDS[k])]));
    append(body,
      h('p', null, 'An ONNX model needs no code: ', h('code', null, ONNX_CONFIG), ' beside it says how each request image becomes the model\'s input (',
        h('code', null, 'preprocess'), ') and how its outputs become the answer (', h('code', null, 'postprocess'), '). The server runs it with ONNX Runtime; unknown fields are errors.'),
      codeNote,
      h('div', { class: 'types', id: 'types' },
        h('div', null, h('h3', null, 'Input: ' + IO[input].label), h('p', null, 'The client sends PNG, JPEG or GIF bytes (raw, multipart field "image", base64 in JSON, or a URL). The model gets it through preprocess.')),
        h('div', null, h('h3', null, 'Output: ' + IO[output].label), h('p', null, output === 'json'
          ? 'The client gets application/json: an object with one entry per output postprocess includes.'
          : 'The client gets a lossless PNG (grayscale or RGB) drawn from the model\'s output.'))),
      h('div', { class: 'onnx-editor' }, editorRow, h('div', null, h('h3', null, 'Its fields'), fieldList)),
      h('div', { class: 'actions' }, reset, h('label', { for: 'open-file', class: 'btn small', tabindex: 0, role: 'button',
        onkeydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); opener.click(); } } }, 'Open a .json file…'), opener),
      fc.kind === 'ok' ? codeFiles(id, fc, ONNX_CONFIG) : null,
      filesRow,
      h('div', { class: 'actions' },
        f.hasCode ? link('/ui/deployments/' + id + '/test', c && !c.generated_main ? 'Keep my code\'s ' + ONNX_CONFIG + ': Test Your Code' : 'Continue to Test Your Code', 'btn', 'to-test') : null,
        h('span', { class: 'spacer' }), use));
  }

  // ---------- Test Your Code ----------
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

  async function pageTest(ctx, body) {
    const { d, f, id } = ctx;
    const st = f.st;
    const onnx = isONNX((d.spec || {}).environment);
    const item = (cls, mark, what, small, attrs) => h('li', Object.assign({ class: cls }, attrs || {}),
      h('span', { class: 'mark', 'aria-hidden': 'true' }, mark), h('span', { class: 'what' }, what, small ? h('small', null, small) : null));
    const installFailed = st.last_error && st.last_error.step === 'install_requirements';
    const bootLi = () => {
      const b = bootState(ctx.feed.events);
      const [cls, mark, what, small] = {
        todo: ['todo', '○', 'Server booted and ready', 'shown here when Test Code boots it'],
        run: ['run', '…', 'Booting the inference server…', onnx ? 'loading ONNX Runtime, the model and ' + ONNX_CONFIG : 'importing aai_main.py and running __init__'],
        ok: ['ok', '✓', 'Server booted and ready', 'at ' + timeOf(b.at)],
        bad: ['bad', '✗', 'Server did not boot', b.message],
      }[b.state];
      return item(cls, mark, what, small, { id: 'boot-status', 'data-state': b.state });
    };
    const checklist = h('ul', { class: 'checklist', id: 'checklist' },
      item(st.server ? 'ok' : 'todo', st.server ? '✓' : '○', 'Server provisioned', st.server ? (st.server.provider === 'local' ? 'a local process on this machine, ' : '') + st.server.host + ', port ' + st.server.port : ''),
      item(st.code ? 'ok' : 'todo', st.code ? '✓' : '○', st.code ? 'Code revision ' + st.code.revision : 'Code', st.code ? codeSource(st.code) : ''),
      item(f.installCurrent ? 'ok' : installFailed ? 'bad' : 'todo', f.installCurrent ? '✓' : installFailed ? '✗' : '○', 'Requirements installed',
        f.installCurrent ? (st.install.requirements && st.install.requirements.length ? st.install.requirements.join(', ') : onnx ? 'none: an ONNX model runs without Python' : 'nothing beyond numpy and Pillow') : installFailed ? 'pip failed: see below' : 'installed when you press Test Code'),
      bootLi(),
      item(f.testCurrent ? 'ok' : st.test && !st.test.ok ? 'bad' : 'todo', f.testCurrent ? '✓' : st.test && !st.test.ok ? '✗' : '○', 'Test passed',
        st.test ? (st.test.ok ? st.test.summary : 'failed: ' + (st.test.message || '')) : 'not run yet'));
    app.cleanups.push(ctx.feed.listen(() => {
      const cur = $('#boot-status');
      if (cur) cur.replaceWith(bootLi());
    }));

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
            app.flash = { kind: 'error', nodes: [h('p', null, 'Installing the requirements failed. Fix them on ', link('/ui/deployments/' + id + '/dependencies', 'Add More Dependencies'), ', then test again.'), ...apiMessage(r.data, r.data.fields)] };
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
      } finally {
        if (ctx.alive()) testBtn.disabled = false;
      }
    };
    testBtn.addEventListener('click', act(runChain));

    // The result of the last test of this code.
    if (installFailed && !f.installCurrent) {
      append(result, h('div', { class: 'alert error' }, h('p', null, h('strong', null, 'pip could not install the requirements.')),
        h('pre', { class: 'wrap', tabindex: 0 }, st.last_error.message),
        h('p', null, 'Fix them on ', link('/ui/deployments/' + id + '/dependencies', 'Add More Dependencies'), ', then press Test Code.')));
    } else if (st.test && st.code && st.test.code_revision === st.code.revision) {
      const t = st.test;
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

    append(body, onnx
      ? h('p', null, 'Test Code boots the inference server with your model and ', h('code', null, ONNX_CONFIG), ', sends it the test input (the image ',
        h('code', null, 'testing_input'), ' names, else a generated image of the model\'s input size) and shows the answer. A configuration that does not fit the model is reported with the reason.')
      : h('p', null, 'Test Code installs the requirements when needed, boots the inference server with your code, sends it what ',
        h('code', null, 'testing_input_data()'), ' returns and shows the answer. Errors come back with their Python traceback.'),
      checklist,
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

  // ---------- Add More Dependencies ----------
  async function pageDependencies(ctx, body) {
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

  // ---------- Using the Algorithm ----------
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
  function curlFor(input, output, url, tokenText, systemRoots) {
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

  async function pageUse(ctx, body) {
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

  // ---------- Complete Deployment ----------
  async function pageComplete(ctx, body) {
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

  // ---------- start ----------
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', route);
  else route();
})();
