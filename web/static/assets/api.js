// api.js: the REST API under /api/v1, called with the token kept in
// sessionStorage. A 401 signs out; any other answer, and a server that does
// not answer, comes back as {ok, status, data, headers} for the page to show.
import { token } from './util.js';
import { SignedOut, signOut } from './state.js';

// api calls the REST API with the signed-in token (opts.token: another one; opts.allow401: a 401
// is an answer, not a sign-out; opts.blob: a successful body as a Blob).
export async function api(method, path, body, opts) {
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

// dpath is a deployment's API path.
export const dpath = (id, rest) => '/api/v1/deployments/' + encodeURIComponent(id) + (rest || '');
