// util.js: what every module may need and none of them owns: the tab's
// storage (the API token and the form entries live in sessionStorage, so a
// failed step, a reload or a trip to another page loses nothing) and a few
// formatting helpers.

// The sessionStorage keys: the API token, the new deployment's draft, a
// deployment page's form entries, and a test to run when Test Your Code opens.
export const TOKEN_KEY = 'algocloud.token';
export const DRAFT_KEY = 'algocloud.draft';
export const formKey = (id, page) => 'algocloud.form.' + id + '.' + page;
export const autoTestKey = (id) => 'algocloud.autotest.' + id;

// store reads and writes JSON values in sessionStorage; a storage that is
// full or switched off only loses what would have been kept.
export const store = {
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
// token is the API token the author signed in with.
export const token = () => store.get(TOKEN_KEY, '');

// sleep resolves after ms milliseconds.
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// timeOf is the local time of an event's timestamp.
export const timeOf = (at) => {
  const d = new Date(at);
  return isNaN(d) ? '' : d.toLocaleTimeString([], { hour12: false });
};
// eventLine is a progress event as a line of the log.
export const eventLine = (ev) => timeOf(ev.at) + '  ' + ev.kind + ': ' + ev.message;

// sizeText is a byte count for people.
export function sizeText(n) {
  if (n < 1024) return n + ' bytes';
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KiB';
  return (n / 1024 / 1024).toFixed(1) + ' MiB';
}
