// editor.js: the wizard's one code editor, used by both Integrate pages
// (aai_main.py, and aai_onnx.json for an ONNX model): a plain textarea,
// so typing, undo, selection and screen readers work as everywhere, beside a
// gutter of line numbers that scrolls with it (the API's errors and
// tracebacks name lines). There is one editor on a page: it is #editor, and
// its file opener #open-file.
import { h } from './dom.js';
import { act } from './ui.js';

// lineEditor makes the editor. name is the textarea's form name and
// describedBy the ids of its hint and error. Reading and setting value is
// the text; setting it (a file opened, a skeleton loaded) renumbers the
// gutter but, like any script's change, fires no input event: the caller
// saves what it set.
export function lineEditor({ name, describedBy }) {
  const textarea = h('textarea', { id: 'editor', name, spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', wrap: 'off', 'aria-describedby': describedBy });
  const gutter = h('pre', { class: 'gutter', 'aria-hidden': 'true' });
  const renumber = () => {
    const n = textarea.value.split('\n').length;
    let t = '';
    for (let i = 1; i <= n; i++) t += i + '\n';
    gutter.textContent = t;
    gutter.scrollTop = textarea.scrollTop;
  };
  textarea.addEventListener('scroll', () => { gutter.scrollTop = textarea.scrollTop; });
  textarea.addEventListener('input', renumber);
  renumber();
  const editor = {
    // el is the gutter and the textarea, side by side.
    el: h('div', { class: 'editor' }, gutter, textarea),
    textarea,
    get value() { return textarea.value; },
    set value(text) {
      textarea.value = text;
      renumber();
    },
    focus() { textarea.focus(); },
    // onInput calls fn after each edit the author makes (the gutter is
    // renumbered first).
    onInput(fn) { textarea.addEventListener('input', fn); },
    // opener is a button-like label (Enter and Space work) and its hidden
    // file input: a chosen file of type accept replaces the text, then
    // loaded() runs (to save it) and the editor gets the focus.
    opener(accept, label, loaded) {
      const input = h('input', { type: 'file', accept, id: 'open-file', class: 'sr-only' });
      input.addEventListener('change', act(async () => {
        const file = input.files[0];
        if (!file) return;
        editor.value = await file.text();
        loaded();
        input.value = '';
        textarea.focus();
      }));
      const button = h('label', { for: 'open-file', class: 'btn small', tabindex: 0, role: 'button',
        onkeydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); input.click(); } } }, label);
      return [button, input];
    },
  };
  return editor;
}
