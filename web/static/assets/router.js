// router.js: one document for every page. The router follows in-app links
// without a page load, routes on the path (/ui/home, /ui/new,
// /ui/deployments/{id}/{page}), mounts the page it names and signs out.
// The pages are given to it by app.js (setPages), so that pages may import
// the router and not the other way round.
import { h, $, append, link } from './dom.js';
import { api } from './api.js';
import { store, token } from './util.js';
import { app, SignedOut, PageGone, onSignOut } from './state.js';

// pages are the page functions app.js gives setPages: signin, home,
// datatype, server and deployment (every /ui/deployments/{id}/... page).
let pages = null;

// setPages names the page functions route mounts.
export function setPages(p) {
  pages = p;
}

// navigate goes to an in-app path (replace: without a history entry).
export function navigate(path, replace) {
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

// parsePath names the page a path shows (and the deployment's id).
export function parsePath(p) {
  p = p.replace(/\/+$/, '') || '/';
  if (p === '/' || p === '/ui' || p === '/ui/home') return { page: 'home' };
  if (p === '/ui/signin') return { page: 'signin' };
  if (p === '/ui/new') return { page: 'datatype' };
  if (p === '/ui/new/server') return { page: 'server' };
  const m = p.match(/^\/ui\/deployments\/([A-Za-z0-9_-]+)(?:\/([a-z]+))?$/);
  if (m) return { page: m[2] || '', id: m[1] };
  return { page: 'notfound' };
}

// cleanup runs what the page on screen left to undo (timers, listeners).
function cleanup() {
  const fns = app.cleanups;
  app.cleanups = [];
  fns.forEach((fn) => { try { fn(); } catch (e) { /* best effort */ } });
}

// route renders the page the location names; work of the page it replaces
// stops (app.gen).
export async function route() {
  const gen = ++app.gen;
  cleanup();
  const r = parsePath(location.pathname);
  if (!r.id && app.feed) { app.feed.stop(); app.feed = null; }
  try {
    if (!token()) {
      renderAccount();
      return pages.signin(gen);
    }
    if (r.page === 'signin') return navigate('/ui/home', true);
    await basics();
    if (gen !== app.gen) return;
    renderAccount();
    switch (r.page) {
      case 'home': return await pages.home(gen);
      case 'datatype': return pages.datatype(gen);
      case 'server': return pages.server(gen);
      case 'notfound': return pageNotFound();
      default: return await pages.deployment(gen, r.id, r.page);
    }
  } catch (e) {
    if (e instanceof SignedOut || e instanceof PageGone) return;
    mount('Something went wrong', [h('div', { class: 'card' }, h('h1', { tabindex: -1 }, 'Something went wrong'),
      h('div', { class: 'alert error', id: 'page-alert' }, h('p', null, String(e && e.message ? e.message : e))),
      h('p', null, link('/ui/home', 'Back to Home')))]);
  }
}

function pageNotFound() {
  mount('Not found', [h('div', { class: 'card' }, h('h1', { tabindex: -1 }, 'Page not found'),
    h('p', null, 'There is no page at ', h('code', null, location.pathname), '.'), h('p', null, link('/ui/home', 'Back to Home')))]);
}

// basics loads what every page needs: the options and the signed-in user.
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

// mount shows a page: its title and nodes, focus on its heading.
export function mount(title, nodes) {
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
  // A platform started with --sandbox=none says so on every page.
  let banner = $('#sandbox-off');
  if (app.me.sandbox === 'none' && !banner) {
    banner = h('div', { class: 'alert error', id: 'sandbox-off', role: 'alert' },
      h('p', null, h('strong', null, 'Sandbox off: '), app.me.warning || 'author code runs unsandboxed on this platform'));
    $('#main').before(banner);
  } else if (app.me.sandbox !== 'none' && banner) {
    banner.remove();
  }
  nav.replaceChildren(
    link('/ui/home', 'Home'),
    h('span', null, 'Signed in as ', h('strong', { id: 'me' }, app.me.name)),
    h('button', { type: 'button', class: 'btn small', id: 'sign-out', onclick: () => signOut('You signed out.') }, 'Sign out'));
}

// signOut forgets the token and everything typed, and shows Sign in with
// message.
function signOut(message) {
  store.clearAll();
  app.me = null;
  if (app.feed) { app.feed.stop(); app.feed = null; }
  app.signinMessage = message || '';
  app.gen++;
  history.pushState(null, '', '/');
  route();
}
onSignOut(signOut);
