// dom.js: pages are built with DOM calls, never HTML strings, so every value
// from the API lands as text.

// The SVG namespace is a name, not an address: nothing is loaded from it.
const SVG_NS = 'http://www.w3.org/2000/svg';

function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'hidden' || k === 'selected' || k === 'multiple') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

// append adds kids (nested arrays flattened; null, undefined and false
// skipped; anything not a Node as text) and returns el.
export function append(el, ...kids) {
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
}

// h makes an HTML element: attributes (on* functions become listeners) and kids.
export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  return append(el, kids);
}

// s makes an SVG element.
export function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return append(el, kids);
}

// $ is the first element matching sel, in root or the document.
export const $ = (sel, root) => (root || document).querySelector(sel);

// link is an in-app link: the router follows it without a page load.
export const link = (href, text, cls, id) => h('a', { href, class: cls, 'data-nav': true, id }, text);
