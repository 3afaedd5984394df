// ui.js: the pieces pages are made of: alerts, labelled fields with their
// errors beside them, forms kept in sessionStorage, copy buttons, choice
// cards, the wizard's stepper and the one-time flash message.
import { h, $, append } from './dom.js';
import { store } from './util.js';
import { app, SignedOut, PageGone } from './state.js';
import { PAGES } from './catalog.js';

// act wraps an event handler: errors land in the page, never the console.
export function act(fn) {
  return async function (ev) {
    try {
      await fn.call(this, ev);
    } catch (e) {
      if (e instanceof SignedOut || e instanceof PageGone) return;
      showProblem(e);
    }
  };
}
// showProblem shows an error of the page's own code in its alert.
export function showProblem(e) {
  const box = $('#page-alert');
  if (box) setAlert(box, 'error', [h('p', null, 'Something went wrong in the page: ' + (e && e.message ? e.message : String(e)))]);
}

// setAlert shows content in an alert box of kind (ok, info, warn, error).
export function setAlert(box, kind, content) {
  box.className = 'alert ' + kind;
  box.replaceChildren();
  append(box, [content]);
  box.hidden = false;
}
// clearAlert empties and hides an alert box.
export function clearAlert(box) {
  box.replaceChildren();
  box.hidden = true;
}
// apiMessage renders an error answer: its message, and its traceback or
// unplaced field messages.
export function apiMessage(data, extraFields) {
  const out = [h('p', null, h('strong', null, (data && data.message) || 'The request failed.'))];
  if (data && data.traceback) out.push(h('pre', { class: 'wrap traceback', tabindex: 0, 'aria-label': 'Traceback' }, data.traceback));
  if (extraFields && extraFields.length) {
    out.push(h('ul', null, extraFields.map((f) => h('li', null, h('code', null, f.field), ' ' + f.message))));
  }
  return out;
}

// field builds a labelled form row whose error message shows beside it.
export function field(name, label, control, hint) {
  const id = control.id || 'f-' + name;
  control.id = id;
  const hintEl = hint ? h('span', { class: 'hint', id: id + '-hint' }, hint) : null;
  const err = h('p', { class: 'field-error', id: id + '-error', 'aria-live': 'polite' });
  control.setAttribute('aria-describedby', [hintEl ? id + '-hint' : '', id + '-error'].filter(Boolean).join(' '));
  const row = h('div', { class: 'field', 'data-field': name }, h('label', { for: id }, label), hintEl, control, err);
  control.addEventListener('input', () => clearFieldError(row));
  return row;
}
// clearFieldError removes a field row's error.
export function clearFieldError(row) {
  const err = $('.field-error', row);
  if (err) err.textContent = '';
  row.querySelectorAll('[aria-invalid]').forEach((c) => c.removeAttribute('aria-invalid'));
}
// showFieldErrors places each {field, message} beside its row (map turns an
// API field name into a row name and message) and returns those with no row.
export function showFieldErrors(form, fields, map) {
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
// niceMessage turns an API field message into a sentence shown beside the
// field.
export const niceMessage = (field, msg) => {
  // The API says "is required"; beside a labelled field that reads well as
  // "This is required". Messages that name their subject stay as they are.
  return /^(is|must)\b/.test(msg) ? 'This ' + msg + '.' : msg.charAt(0).toUpperCase() + msg.slice(1);
};

// persist keeps a form's named fields (not files, not passwords) in
// sessionStorage under key, and fills them back in.
export function persist(form, key, defaults) {
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
export function copyButton(get, label) {
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
// codeBlock shows text (a command, code) with a copy button.
export function codeBlock(text, label, copyLabel) {
  return h('div', { class: 'codeblock' },
    h('div', { class: 'client-head' }, h('span', { class: 'hint' }, label || ''), copyButton(() => text, copyLabel || 'Copy')),
    h('pre', { class: 'wrap', tabindex: 0, 'aria-label': label || null }, text));
}

// takeFlash returns the message left for this render (app.flash), once.
export function takeFlash() {
  const f = app.flash;
  app.flash = null;
  if (!f) return null;
  return h('div', { class: 'alert ' + f.kind, role: 'status' }, f.nodes || h('p', null, f.text));
}

// stepper lists the wizard's pages: current, the ones reach links to, and
// those done.
export function stepper(current, reach, done) {
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

// choice is a radio card: a title, a description and extra content.
export function choice(name, value, title, desc, extra) {
  return h('label', { class: 'choice' },
    h('input', { type: 'radio', name, value }),
    h('span', { class: 'check', 'aria-hidden': 'true' }, '✓'),
    h('span', { class: 'title' }, title), extra || null, desc ? h('span', { class: 'desc' }, desc) : null);
}
