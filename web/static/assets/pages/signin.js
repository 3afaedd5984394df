// pages/signin.js: Sign in with the API token.
import { api } from '../api.js';
import { h } from '../dom.js';
import { mount, navigate, parsePath } from '../router.js';
import { app } from '../state.js';
import { act, apiMessage, field, niceMessage, setAlert, showFieldErrors } from '../ui.js';
import { TOKEN_KEY, store } from '../util.js';

// pageSignIn renders Sign in.
export function pageSignIn(gen) {
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
