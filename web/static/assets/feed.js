// feed.js: a deployment's progress: its event stream, the panel that shows a
// long step running and the log of every event.
import { h } from './dom.js';
import { api, dpath } from './api.js';
import { token, sleep, eventLine } from './util.js';
import { app, SignedOut, signOut } from './state.js';

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
// feedFor is the event feed of deployment id, the one running when it is
// already on screen (one feed at a time).
export function feedFor(id) {
  if (app.feed && app.feed.id === id && !app.feed.stopped) return app.feed;
  if (app.feed) app.feed.stop();
  app.feed = new Feed(id);
  return app.feed;
}

// progressPanel shows a long step: what runs, for how long, its latest event.
export function progressPanel(feed) {
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
export function logPanel(feed) {
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
