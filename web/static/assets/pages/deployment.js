// pages/deployment.js: every /ui/deployments/{id}/{page}: the page head,
// stepper and progress, then the page itself; a deployment's page is
// derived from its state (step, status, busy) whenever the URL does not name
// a page it can be on.
import { api, dpath } from '../api.js';
import { BUSY_LABELS, STEP_LABELS, pageTitle } from '../catalog.js';
import { h, link } from '../dom.js';
import { feedFor, logPanel, progressPanel } from '../feed.js';
import { pageCode } from './code.js';
import { facts, revisions } from './common.js';
import { pageComplete } from './complete.js';
import { pageDependencies } from './dependencies.js';
import { pageIntegrate } from './integrate.js';
import { pageJobs } from './jobs.js';
import { pageTest } from './test.js';
import { pageUse } from './use.js';
import { mount, navigate, route } from '../router.js';
import { PageGone, app } from '../state.js';
import { stepper, takeFlash } from '../ui.js';
import { sleep } from '../util.js';

// reachable maps each page the deployment can be on now to its path.
function reachable(d, f) {
  const base = '/ui/deployments/' + d.id + '/';
  const r = {};
  if (f.gone) return r;
  r.code = base + 'code';
  r.integrate = base + 'integrate';
  if (f.hasCode) { r.test = base + 'test'; r.dependencies = base + 'dependencies'; }
  if (f.testCurrent || f.everLive) { r.use = base + 'use'; r.complete = base + 'complete'; }
  if (f.everLive) r.jobs = base + 'jobs'; // async predictions and batches need an endpoint
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

// pageCtx is what a deployment page works with: the deployment (d, and
// its facts f), whether the page is still shown (alive, check), its
// progress panel and alert, and the ways to run a step and read the
// deployment again.
function pageCtx(gen, id, d, f, reach) {
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
  return ctx;
}

// pageHead is a deployment page's crumb, title, status, host and stepper.
function pageHead(page, d, f, reach) {
  const done = {
    datatype: true, server: true, code: f.hasCode, integrate: f.hasCode, test: f.testCurrent || d.step === 'completed',
    dependencies: false, use: f.everLive, complete: d.step === 'completed',
  };
  return [
    h('p', { class: 'crumb' }, link('/ui/home', 'Home'), ' / ', d.name),
    h('div', { class: 'page-head' },
      h('h1', { tabindex: -1 }, pageTitle(page)),
      h('span', null, h('span', { class: 'badge ' + d.status, id: 'status' }, d.status), ' ',
        f.busy ? h('span', { class: 'badge busy' }, 'busy: ' + f.busy) : null)),
    h('p', { class: 'lead' }, h('code', null, d.api_name + '.' + app.options.domain), ' · ', h('span', { id: 'step-label' }, STEP_LABELS[d.step] || d.step),
      reach.jobs && page !== 'jobs' ? [' · ', link(reach.jobs, 'Jobs', null, 'to-jobs')] : null),
    revisions(d, 'revisions'),
    stepper(page, reach, done),
  ];
}

// followBusy shows the progress of a step that was running when the page
// opened (a reload, another tab) and re-renders when it is over.
function followBusy(ctx, page) {
  const was = ctx.f.busy;
  ctx.waitIdle().then((cur) => {
    if (!ctx.alive()) return;
    const err = cur.state && cur.state.last_error;
    // Code fetched while the page was away: go on as the button would have.
    const next = { code: 'integrate', integrate: 'test' }[page];
    if (was === 'fetch_code' && next && !(err && err.step === 'fetch_code')) navigate('/ui/deployments/' + ctx.id + '/' + next, true);
    else route();
  }).catch(() => {});
}

// PAGE_RENDERERS render each deployment page into its card.
const PAGE_RENDERERS = { code: pageCode, integrate: pageIntegrate, test: pageTest, dependencies: pageDependencies, use: pageUse, complete: pageComplete, jobs: pageJobs };

// deploymentPage renders a deployment's page (or goes to the one its state
// allows).
export async function deploymentPage(gen, id, page) {
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
  const ctx = pageCtx(gen, id, d, f, reach);
  const body = h('div', { class: 'card', id: 'page-' + page });
  const warn = d.state_error ? h('div', { class: 'alert warn' }, h('p', null, d.state_error + '; what is shown may be behind.')) : null;
  mount(pageTitle(page) + ' · ' + d.name, [...pageHead(page, d, f, reach), takeFlash(), warn, ctx.progress.el, ctx.alert, body, logPanel(ctx.feed)]);
  await PAGE_RENDERERS[page](ctx, body);
  if (f.busy && !ctx.ownsBusy && ctx.alive()) followBusy(ctx, page);
}
