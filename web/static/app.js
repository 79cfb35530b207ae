// healproxy diagnostics UI. Plain JavaScript, no build step, no framework.
//
// Data: GET /api/diagnostics/health (the health document), the live
// stream GET /api/diagnostics/events (Server-Sent Events) and
// GET /api/diagnostics/history (per-interval buckets for the sparklines).
// Actions: POST /api/diagnostics/self-heal[?model_key=K|?provider_id=P],
// operator controls POST /api/admin/providers/{id}/{drain|force-open|resume}
// and the audit log GET /api/admin/audit (admin). The health report
// (/api/diagnostics/report) is a plain download link.
//
// Every string that comes from the server is inserted with textContent or
// setAttribute, never as HTML. The page's CSP forbids inline scripts and
// style attributes: presentation goes through classes only.
'use strict';

(() => {
  const STATUS = {
    healthy: { icon: '✅', label: 'healthy' },
    degraded: { icon: '⚠️', label: 'degraded' },
    unavailable: { icon: '❌', label: 'unavailable' },
    unknown: { icon: '❔', label: 'unknown' },
  };
  const KINDS = ['provider', 'model'];
  // An operator's action on an upstream, as diagnostics names it.
  const OPERATOR = {
    drain: { icon: '🚧', label: 'drained' },
    force_open: { icon: '⛔', label: 'forced open' },
  };
  // The operator controls, by the action of their endpoint.
  const CONTROLS = {
    drain: {
      label: 'Drain', title: 'Drain upstream', done: 'Drained', reason: true, ttl: true,
      help: 'No new requests go to this upstream; requests in flight finish. The provider\'s other upstreams take the traffic.',
    },
    'force-open': {
      label: 'Force open', title: 'Force upstream open', done: 'Forced open', reason: true, ttl: true,
      help: 'The upstream is unavailable, whatever its health says, until the duration ends or it is resumed; then recovery trials decide.',
    },
    resume: {
      label: 'Resume', title: 'Resume upstream', done: 'Resumed', reason: false, ttl: false,
      help: 'Ends a drain, a forced open or a cooldown now. Recovery trials decide when it is healthy again.',
    },
  };
  const TOKEN_KEY = 'healproxy.admin-token';
  const HEAL_REFRESH_DELAY = 2000; // refresh again this long after a heal
  // The status filters, by their value in the URL.
  const FILTERS = {
    all: 'all', problems: 'problems', unavailable: 'unavailable', degraded: 'degraded', healthy: 'healthy', unknown: 'unknown',
  };
  const SORTS = { problems: 'Problems first', name: 'Name', error: 'Last error' };
  const PAGE_SIZE = 50; // rows per page and kind: the page never holds more
  // Up to this many entries the page reads every entry's history (a
  // sparkline on every row); beyond, only that of the entries opened.
  const SMALL_FLEET = 200;
  const VIEW_DELAY = 100; // ms: a small fleet's page is read again this long after an event
  const RELOAD_DELAY = 500; // ms: a large fleet's, at most this often during a burst of events
  const SEARCH_DELAY = 150; // ms: the search box asks the server once typing pauses this long
  const TRAILS = 2000; // entries whose status changes the page remembers
  const ROW_CHUNK = 12; // new rows built in one task
  const HOUR = 3600 * 1000;
  const TRAIL = 200; // status changes kept per entry for its timeline

  const state = {
    entries: { provider: new Map(), model: new Map() }, // key -> entry, of the page's rows only
    order: { provider: [], model: [] }, // the page's keys, in the server's order
    summary: { provider: {}, model: {} }, // the whole fleet's counts by status (the cards)
    matched: { provider: 0, model: 0 }, // entries that match the view
    rows: new Map(), // kind + '\u0000' + key -> row element, rows on the page only
    liveAt: new Map(), // kind + '\u0000' + key -> performance.now() of last live update
    trail: new Map(), // kind + '\u0000' + key -> status changes seen, oldest first
    marks: new Map(), // kind + '\u0000' + key -> the server's marks of an opened entry (history ?kind=&key=)
    open: new Set(), // kind + '\u0000' + key of the entries whose details are open
    history: new Map(), // kind + '\u0000' + key + '\u0000' + upstream -> points
    intervalSeconds: 10,
    buckets: 60,
    skeleton: null,
    lastUpdated: null,
    loaded: false,
    scrollTo: null, // a kind whose first row to scroll to after the next page
    total: 0,
    since: Date.now(), // the page watches from here on
    view: { q: '', status: 'all', sort: 'problems', page: { provider: 1, model: 1 } },
  };

  const $ = (sel, root = document) => root.querySelector(sel);
  const rowId = (kind, key) => kind + '\u0000' + key;
  const histId = (kind, key, upstream) => kind + '\u0000' + key + '\u0000' + (upstream || '');
  const keyOf = (kind, e) => (kind === 'provider' ? e.provider_id : e.model_key);
  const statusOf = (s) => STATUS[s] || STATUS.unknown;

  // h builds an element. props: class, text, on<event>, or attributes.
  // Children are nodes or strings (inserted as text, never parsed).
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = String(v);
        else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    appendKids(el, kids);
    return el;
  }

  function appendKids(el, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      el.append(k instanceof Node ? k : String(k));
    }
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  function s(tag, attrs) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    return el;
  }

  // ---- time -------------------------------------------------------------

  function span(seconds) {
    if (seconds < 60) return seconds + ' s';
    if (seconds < 3600) {
      const m = Math.floor(seconds / 60);
      const r = seconds % 60;
      return m < 10 && r ? m + ' min ' + r + ' s' : m + ' min';
    }
    if (seconds < 86400) return Math.floor(seconds / 3600) + ' h ' + Math.floor((seconds % 3600) / 60) + ' min';
    return Math.floor(seconds / 86400) + ' d';
  }

  // num shows a count from the server; anything else is a dash.
  const num = (v) => (typeof v === 'number' && isFinite(v) ? String(v) : '—');

  function duration(seconds) {
    if (typeof seconds !== 'number' || !isFinite(seconds)) return '—';
    if (seconds < 1) return Math.round(seconds * 1000) + ' ms';
    return span(Math.round(seconds));
  }

  // relText says how far iso is from now: "12 s ago", "in 3 s".
  function relText(iso, mode, now) {
    const t = Date.parse(iso);
    if (isNaN(t)) return '—';
    const diff = (t - now) / 1000;
    if (mode === 'until') {
      return diff > 0 ? span(Math.ceil(diff)) + ' left' : 'ending…';
    }
    if (diff > 0.5) return 'in ' + span(Math.ceil(diff));
    const ago = Math.floor(-diff);
    return ago < 1 ? 'just now' : span(ago) + ' ago';
  }

  function exactTitle(iso) {
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString() + ' (' + iso + ')';
  }

  // timeEl is a <time> that the ticker keeps current; mode "rel" or "until".
  function timeEl(iso, mode = 'rel') {
    if (!iso) return h('span', { class: 'none', text: '—' });
    return h('time', {
      datetime: iso,
      title: exactTitle(iso),
      'data-rel': mode,
      text: relText(iso, mode, Date.now()),
    });
  }

  function tick() {
    if (document.hidden) return;
    const now = Date.now();
    for (const el of document.querySelectorAll('time[data-rel]')) {
      const text = relText(el.getAttribute('datetime'), el.dataset.rel, now);
      if (el.textContent !== text) el.textContent = text;
    }
  }

  // ---- network ----------------------------------------------------------

  async function getJSON(url) {
    const res = await fetch(url, { cache: 'no-store', headers: { Accept: 'application/json' } });
    if (!res.ok) throw new Error(url + ': HTTP ' + res.status);
    return res.json();
  }

  class ActionError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function storedToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || '';
    } catch {
      return '';
    }
  }

  function storeToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // storage disabled: the token lives for this request only
    }
  }

  const adminPost = (url, body) => adminFetch('POST', url, body);

  // adminFetch sends an admin request (body: sent as JSON). On a 401 it
  // asks for the admin token once, then retries with it; the token is kept
  // in sessionStorage only after the proxy accepted it.
  async function adminFetch(method, url, body) {
    let token = storedToken();
    let asked = false;
    for (;;) {
      const headers = { Accept: 'application/json' };
      if (token) headers.Authorization = 'Bearer ' + token;
      const init = { method, headers, cache: 'no-store' };
      if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
      let res;
      try {
        res = await fetch(url, init);
      } catch {
        throw new ActionError(0, 'The proxy could not be reached.');
      }
      if (res.status === 401) {
        storeToken('');
        if (asked) {
          throw new ActionError(401, 'The admin token was refused (401 Unauthorized). Check it and try again.');
        }
        asked = true;
        token = await askToken(token ? 'The saved admin token was refused.' : '');
        if (token === null) throw new ActionError(401, 'Cancelled: this action needs the admin token (401 Unauthorized).');
        continue;
      }
      if (res.status === 403) {
        throw new ActionError(403, 'Forbidden (403): admin actions are allowed from loopback only without a token. ' +
          'Open this page on the proxy host (127.0.0.1) or configure an admin token.');
      }
      let answer = null;
      try {
        answer = await res.json();
      } catch {
        // not JSON: reported below
      }
      if (!res.ok) {
        throw new ActionError(res.status, (answer && answer.error) || 'HTTP ' + res.status);
      }
      if (token) storeToken(token);
      return answer;
    }
  }

  // askToken shows the token dialog; resolves to the token or null.
  let pendingAsk = null;
  function askToken(error) {
    if (pendingAsk) return pendingAsk;
    const dialog = $('#token-dialog');
    const input = $('#admin-token');
    $('#token-error').textContent = error || '';
    input.value = '';
    pendingAsk = new Promise((resolve) => {
      const opener = document.activeElement;
      dialog.addEventListener('close', () => {
        pendingAsk = null;
        const value = dialog.returnValue === 'ok' ? input.value.trim() : '';
        input.value = '';
        refocus(opener);
        resolve(value ? value : null);
      }, { once: true });
      dialog.returnValue = '';
      dialog.showModal();
      input.focus();
    });
    return pendingAsk;
  }

  // sameControl finds the control button that does what el did: rows are
  // re-rendered while dialogs are open, which replaces their buttons.
  function sameControl(el) {
    if (!el || el.isConnected || !el.dataset || !el.dataset.control) return el;
    const { control, provider, upstream } = el.dataset;
    return findControl(control, provider, upstream) || el;
  }

  function findControl(control, provider, upstream) {
    for (const b of document.querySelectorAll('button[data-control]')) {
      if (b.dataset.control === control && b.dataset.provider === provider && b.dataset.upstream === upstream) return b;
    }
    return null;
  }

  // refocus gives the focus back to el (or its re-rendered twin).
  function refocus(el) {
    const target = sameControl(el);
    if (target && target.isConnected && typeof target.focus === 'function') target.focus();
  }

  // ---- health document ---------------------------------------------------
  //
  // The server filters, sorts and pages the health document
  // (?status=&q=&sort=&offset=&limit=, README "API"): the page reads one
  // page of each kind and the whole fleet's counts, whatever the fleet's
  // size, and holds only those entries. A live event patches its row and
  // the counts at once, then the page is read again, at most once per
  // RELOAD_DELAY whatever the rate of events, for the rows that moved in
  // or out of it.

  const SORT_PARAM = { problems: 'problems', name: 'name', error: 'last_error' };
  const KIND_PART = { provider: 'providers', model: 'models' };

  function healthURL(offset) {
    const v = state.view;
    const p = new URLSearchParams();
    p.set('status', v.status);
    if (v.q) p.set('q', v.q);
    p.set('sort', SORT_PARAM[v.sort] || 'problems');
    p.set('offset', String(offset));
    p.set('limit', String(PAGE_SIZE));
    return '/api/diagnostics/health?' + p.toString();
  }

  const viewSig = () => JSON.stringify(state.view);

  // fetchPage reads the view's page of each kind: one request, or two
  // when the kinds are on different pages.
  async function fetchPage() {
    const v = state.view;
    const offset = (kind) => (v.page[kind] - 1) * PAGE_SIZE;
    const doc = await getJSON(healthURL(offset('provider')));
    const models = offset('model') === offset('provider') ? doc : await getJSON(healthURL(offset('model')));
    return { provider: doc, model: models };
  }

  // partOf is a kind's part of an answer: its entries, summary and matches.
  function partOf(kind, doc) {
    const part = doc && doc[KIND_PART[kind]];
    const entries = (part && Array.isArray(part.entries) ? part.entries : [])
      .filter((e) => e && typeof e === 'object' && typeof keyOf(kind, e) === 'string');
    const pg = doc && doc.page && doc.page[KIND_PART[kind]];
    return { entries, summary: summaryOf(part && part.summary, entries), matched: pg && typeof pg.matched === 'number' ? pg.matched : entries.length };
  }

  const COUNTS = ['total', 'healthy', 'degraded', 'unavailable', 'unknown', 'in_cooldown'];

  function summaryOf(s, entries) {
    const c = {};
    for (const k of COUNTS) c[k] = s && typeof s[k] === 'number' && s[k] >= 0 ? s[k] : 0;
    if (!s) c.total = entries.length;
    return c;
  }

  let healthJob = null;
  let healthAgain = false;

  // loadHealth reads the view's page; calls while one is under way make
  // one more read after it, never two at once. An answer for a view the
  // user has left since is dropped.
  function loadHealth() {
    if (healthJob) {
      healthAgain = true;
      return healthJob;
    }
    healthJob = (async () => {
      try {
        do {
          healthAgain = false;
          const sig = viewSig();
          const started = performance.now();
          const r = await fetchPage();
          if (viewSig() !== sig) {
            healthAgain = true;
            continue;
          }
          // a page beyond the end (a shared link, a fleet that shrank): the last one
          let clamped = false;
          for (const kind of KINDS) {
            const pages = Math.max(1, Math.ceil(partOf(kind, r[kind]).matched / PAGE_SIZE));
            if (state.view.page[kind] > pages) {
              state.view.page[kind] = pages;
              clamped = true;
            }
          }
          if (clamped) {
            writeURL();
            healthAgain = true;
            continue;
          }
          applyPage(r, started);
        } while (healthAgain);
      } finally {
        healthJob = null;
      }
    })();
    return healthJob;
  }

  // applyPage shows the answer: its entries replace those of the last page.
  function applyPage(r, started) {
    for (const kind of KINDS) {
      const part = partOf(kind, r[kind]);
      const keys = part.entries.map((e) => keyOf(kind, e));
      const keep = new Set(keys);
      for (const key of state.entries[kind].keys()) {
        if (!keep.has(key)) {
          state.entries[kind].delete(key);
          state.liveAt.delete(rowId(kind, key));
        }
      }
      applyEntries(kind, part.entries, started);
      state.order[kind] = [...keep];
      state.summary[kind] = part.summary;
      state.matched[kind] = part.matched;
    }
    state.lastUpdated = typeof r.provider.timestamp === 'string' ? r.provider.timestamp : new Date().toISOString();
    const first = !state.loaded;
    state.loaded = true;
    updateView();
    if (first) performance.mark('healproxy:first-view');
    if (state.total <= SMALL_FLEET || state.open.size) scheduleHistory();
  }

  // applyEntries takes entries of the health document; a live event newer
  // than the read (started) wins over it.
  function applyEntries(kind, list, started) {
    const map = state.entries[kind];
    for (const e of list) {
      const key = keyOf(kind, e);
      const id = rowId(kind, key);
      const live = state.liveAt.get(id);
      const old = map.get(key);
      if (live !== undefined && live > started && old) continue;
      if (old && old.status !== e.status) remember(id, { t: Date.now(), from: old.status, to: e.status, seen: 'refresh' });
      map.set(key, e);
      if (state.rows.has(id)) renderRow(kind, e);
    }
  }

  // remember keeps a status change of an entry for its timeline: the
  // last hour, at most TRAIL changes, of at most TRAILS entries.
  function remember(id, change) {
    let trail = state.trail.get(id);
    if (!trail) {
      trail = [];
      state.trail.set(id, trail);
      if (state.trail.size > TRAILS) state.trail.delete(state.trail.keys().next().value);
    }
    trail.push(change);
    const hourAgo = Date.now() - HOUR;
    while (trail.length > TRAIL || (trail.length && trail[0].t < hourAgo)) trail.shift();
  }

  const known = (st) => (STATUS[st] ? st : 'unknown');

  // recount moves an entry of the page from one status's count to
  // another's, so that the cards agree with its row at once.
  function recount(kind, old, e) {
    const c = state.summary[kind];
    c[known(old.status)] = Math.max(0, c[known(old.status)] - 1);
    c[known(e.status)]++;
    if (!!old.in_cooldown !== !!e.in_cooldown) c.in_cooldown = Math.max(0, c.in_cooldown + (e.in_cooldown ? 1 : -1));
  }

  function applyEvent(ev) {
    if (!ev || !KINDS.includes(ev.kind) || !ev.entry || typeof ev.key !== 'string') {
      loadHealth().catch(() => {});
      return;
    }
    const map = state.entries[ev.kind];
    const id = rowId(ev.kind, ev.key);
    const old = map.get(ev.key);
    const t = Date.parse(ev.time);
    remember(id, {
      t: isNaN(t) ? Date.now() : t, from: old ? old.status : ev.from, to: ev.entry.status,
      upstream: ev.upstream || '', ufrom: ev.from, uto: ev.to, reason: reasonOf(ev.entry, ev.upstream), seen: 'live',
    });
    state.lastUpdated = ev.time || new Date().toISOString();
    if (old) {
      // on the page: its row and the counts now
      recount(ev.kind, old, ev.entry);
      map.set(ev.key, ev.entry);
      state.liveAt.set(id, performance.now());
      renderRow(ev.kind, ev.entry);
      renderCounts();
    }
    if (state.open.has(id)) scheduleHistory(); // its marks
    else if (old && state.total <= SMALL_FLEET) scheduleHistory();
    scheduleReload(); // rows may move in or out, and the counts of the rest
  }

  // applyFault takes a "fault" event: a fault injected, cleared or expired.
  function applyFault(ev) {
    if (!ev || ev.kind !== 'provider' || typeof ev.key !== 'string' || !ev.entry || typeof ev.entry !== 'object') return;
    const id = rowId('provider', ev.key);
    if (state.entries.provider.has(ev.key)) {
      state.entries.provider.set(ev.key, ev.entry);
      state.liveAt.set(id, performance.now());
      renderRow('provider', ev.entry);
    }
    if (state.open.has(id)) scheduleHistory();
  }

  // reasonOf is the reason an entry (or its upstream) gives for its status.
  function reasonOf(e, upstream) {
    if (upstream && Array.isArray(e.upstreams)) {
      const u = e.upstreams.find((x) => x && x.url === upstream);
      if (u && typeof u.reason === 'string') return u.reason;
    }
    return typeof e.reason === 'string' ? e.reason : '';
  }

  // applyEntry shows an entry an action answered with, at once.
  function applyEntry(kind, e) {
    if (!e || !KINDS.includes(kind)) return;
    const key = keyOf(kind, e);
    const id = rowId(kind, key);
    const old = state.entries[kind].get(key);
    if (old) {
      if (old.status !== e.status) remember(id, { t: Date.now(), from: old.status, to: e.status, seen: 'action' });
      recount(kind, old, e);
      state.entries[kind].set(key, e);
      state.liveAt.set(id, performance.now());
      renderRow(kind, e);
      renderCounts();
    }
    scheduleReload();
  }

  // scheduleReload reads the page again after a change: soon in a small
  // fleet, so that a row is in its place when it shows its new status; at
  // most every RELOAD_DELAY in a large one.
  let reloadTimer = null;
  function scheduleReload() {
    if (reloadTimer) return;
    reloadTimer = setTimeout(() => {
      reloadTimer = null;
      loadHealth().catch(() => {});
    }, state.total <= SMALL_FLEET ? VIEW_DELAY : RELOAD_DELAY);
  }

  // renderCounts updates the cards and the filters' counts.
  function renderCounts() {
    if (!state.skeleton) return;
    const c = { provider: counts('provider'), model: counts('model') };
    renderSummary(c);
    renderFilters(c);
  }

  // ---- the list ------------------------------------------------------------

  function updateView() {
    const root = $('#health-diagnostics-result');
    if (!state.skeleton) {
      state.skeleton = buildSkeleton();
      root.replaceChildren(state.skeleton.summary, state.skeleton.groups.provider, state.skeleton.groups.model);
      root.setAttribute('aria-busy', 'false');
    }
    const c = { provider: counts('provider'), model: counts('model') };
    state.total = c.provider.total + c.model.total;
    renderSummary(c);
    renderFilters(c);
    state.built = 0;
    state.moreRows = false;
    for (const kind of KINDS) {
      const matched = state.matched[kind];
      const pages = Math.max(1, Math.ceil(matched / PAGE_SIZE));
      const page = Math.min(Math.max(1, state.view.page[kind]), pages);
      renderGroup(kind, state.order[kind], matched, page, pages);
    }
    if (state.scrollTo) {
      const first = $('.rows article', state.skeleton.groups[state.scrollTo]);
      if (first) first.scrollIntoView({ block: 'nearest' });
      state.scrollTo = null;
    }
    renderUpdated();
    renderOpenTimelines();
    if (state.moreRows) {
      // the rest of the new rows in the next tasks
      clearTimeout(moreTimer);
      moreTimer = setTimeout(updateView, 0);
      return;
    }
    document.body.dataset.ready = 'true';
  }

  let moreTimer = null;
  function renderGroup(kind, keys, matched, page, pages) {
    const group = state.skeleton.groups[kind];
    const container = $('.rows', group);
    const want = new Set();
    let i = 0;
    for (const key of keys) {
      const id = rowId(kind, key);
      want.add(id);
      let row = state.rows.get(id);
      if (!row) {
        // after the first view, a few new rows a task: a page of new rows
        // at once would be a long task during a burst of events
        if (document.body.dataset.ready === 'true' && state.built >= ROW_CHUNK) {
          state.moreRows = true;
          continue;
        }
        state.built++;
        renderRow(kind, state.entries[kind].get(key));
        row = state.rows.get(id);
        if (!row) continue;
      }
      // move only what is out of place: moving a node drops its focus
      if (container.children[i] !== row) container.insertBefore(row, container.children[i] || null);
      i++;
    }
    // rows off the page leave the DOM
    for (const [id, row] of state.rows) {
      if (row.dataset.kind === kind && !want.has(id)) {
        row.remove();
        state.rows.delete(id);
      }
    }
    const total = state.summary[kind].total;
    const noun = kind === 'provider' ? 'provider' : 'model';
    const empty = $('.empty', group);
    if (total === 0) empty.textContent = kind === 'provider' ? 'No providers configured.' : 'No models configured.';
    else if (matched === 0) empty.textContent = 'No ' + noun + ' matches the filter (' + filterText() + ').';
    empty.hidden = matched > 0;
    const pager = $('.pager', group);
    const first = matched === 0 ? 0 : (page - 1) * PAGE_SIZE + 1;
    const last = Math.min(page * PAGE_SIZE, matched);
    $('.pager-text', pager).textContent = matched === 0 ? '' :
      (pages > 1 ? first + '–' + last + ' of ' : '') + plural(matched, noun) +
      (matched < total ? ' (of ' + total + ')' : '') + (pages > 1 ? ' · page ' + page + ' of ' + pages : '');
    const prev = $('button[data-page="prev"]', pager);
    const next = $('button[data-page="next"]', pager);
    prev.hidden = next.hidden = pages <= 1;
    setDisabled(prev, page <= 1);
    setDisabled(next, page >= pages);
    pager.hidden = matched === 0;
    $('.group-count', group).textContent = String(total);
  }

  // setDisabled disables a button with aria-disabled, so that it keeps
  // the focus of a keyboard user who just pressed it.
  function setDisabled(button, off) {
    if (off) button.setAttribute('aria-disabled', 'true');
    else button.removeAttribute('aria-disabled');
  }

  const plural = (n, noun) => n.toLocaleString('en') + ' ' + noun + (n === 1 ? '' : 's');

  function filterText() {
    const v = state.view;
    const parts = [];
    if (v.status !== 'all') parts.push(FILTERS[v.status]);
    if (v.q) parts.push('“' + v.q + '”');
    return parts.join(', ') || 'none';
  }

  function buildSkeleton() {
    const summary = h('div', { class: 'summary', role: 'group', 'aria-label': 'Summary' });
    const groups = {};
    for (const kind of KINDS) {
      const title = kind === 'provider' ? 'Providers' : 'Models';
      const id = 'group-' + kind;
      groups[kind] = h('section', { class: 'group', 'data-group': kind, 'aria-labelledby': id },
        h('h3', { id, class: 'group-title' }, title, ' ', h('span', { class: 'group-count' })),
        h('p', { class: 'empty', role: 'status' }),
        h('div', { class: 'rows' }),
        h('nav', { class: 'pager', 'data-pager': kind, 'aria-label': title + ' pages' },
          h('button', { type: 'button', class: 'btn btn-small', 'data-page': 'prev', 'data-kind-page': kind }, h('span', { 'aria-hidden': 'true', text: '‹ ' }), 'Previous'),
          h('span', { class: 'pager-text', role: 'status' }),
          h('button', { type: 'button', class: 'btn btn-small', 'data-page': 'next', 'data-kind-page': kind }, 'Next', h('span', { 'aria-hidden': 'true', text: ' ›' }))));
    }
    return { summary, groups };
  }

  // counts are the whole fleet's, by status: the server's summary,
  // patched by the events of the rows on the page.
  const counts = (kind) => ({ ...state.summary[kind] });

  // renderSummary builds the cards once, then changes their numbers only:
  // a keyboard user's focus on a card's filter button stays.
  function renderSummary(cs) {
    const pc = cs.provider;
    const mc = cs.model;
    const box = state.skeleton.summary;
    if (!box.firstChild) {
      const card = (kind, title) => h('section', { class: 'card', 'data-summary': kind, 'aria-label': title + ' summary' },
        h('h3', { class: 'card-title' }, title, ' ', h('span', { class: 'card-total', 'data-count': 'total' })),
        h('ul', { class: 'counts' },
          ['healthy', 'degraded', 'unavailable', 'unknown'].map((st) =>
            h('li', { class: 'count', 'data-count': st },
              h('button', { type: 'button', class: 'count-btn', 'data-filter': st, 'aria-pressed': 'false', title: 'Show ' + STATUS[st].label + ' entries only' },
                h('span', { class: 'count-icon', 'aria-hidden': 'true', text: STATUS[st].icon }),
                h('span', { class: 'count-n' }), ' ', STATUS[st].label))),
          h('li', { class: 'count', 'data-count': 'in_cooldown' },
            h('span', { class: 'count-icon', 'aria-hidden': 'true', text: '⏳' }),
            h('span', { class: 'count-n' }), ' in cooldown')));
      box.replaceChildren(card('provider', 'Providers'), card('model', 'Models'),
        h('section', { class: 'card overall', 'aria-label': 'Overall health' },
          h('h3', { class: 'card-title', text: 'Overall' }),
          h('p', { class: 'overall-text' }, h('span', { class: 'count-icon', 'aria-hidden': 'true' }), ' ', h('span', { class: 'overall-words' })),
          h('p', { class: 'overall-detail' })));
    }
    for (const [kind, c] of [['provider', pc], ['model', mc]]) {
      const card = $('.card[data-summary="' + kind + '"]', box);
      setText($('.card-total', card), String(c.total));
      for (const st of ['healthy', 'degraded', 'unavailable', 'unknown', 'in_cooldown']) {
        const li = $('[data-count="' + st + '"]', card);
        li.dataset.nonzero = c[st] > 0 ? 'true' : 'false';
        setText($('.count-n', li), String(c[st]));
      }
    }
    let overall;
    const down = pc.unavailable + mc.unavailable;
    const degraded = pc.degraded + mc.degraded;
    if (down > 0) {
      overall = { state: 'unavailable', icon: '❌', text: down + (down === 1 ? ' entry is' : ' entries are') + ' unavailable' };
    } else if (degraded > 0) {
      overall = { state: 'degraded', icon: '⚠️', text: degraded + ' degraded, nothing unavailable' };
    } else if (pc.total + mc.total > 0 && pc.unknown + mc.unknown === pc.total + mc.total) {
      overall = { state: 'unknown', icon: '❔', text: 'No traffic yet' };
    } else {
      overall = { state: 'healthy', icon: '✅', text: 'All systems healthy' };
    }
    const ok = (b) => (b ? 'OK' : 'not OK');
    const oc = $('.card.overall', box);
    oc.dataset.overall = overall.state;
    setText($('.overall-text .count-icon', oc), overall.icon);
    setText($('.overall-words', oc), overall.text);
    setText($('.overall-detail', oc), 'Providers ' + ok(pc.unavailable === 0) + ' · Models ' + ok(mc.unavailable === 0));
  }

  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  // renderFilters shows the toolbar's counts (the cards' numbers, both
  // kinds together) and which filter is on.
  function renderFilters(cs) {
    const n = (st) => cs.provider[st] + cs.model[st];
    const values = cs ? {
      all: cs.provider.total + cs.model.total, problems: n('unavailable') + n('degraded'),
      unavailable: n('unavailable'), degraded: n('degraded'), healthy: n('healthy'), unknown: n('unknown'),
    } : {};
    for (const b of document.querySelectorAll('#status-filters button[data-filter]')) {
      if (cs) setText($('.filter-n', b), String(values[b.dataset.filter] ?? 0));
    }
    for (const b of document.querySelectorAll('button[data-filter]')) {
      b.setAttribute('aria-pressed', b.dataset.filter === state.view.status ? 'true' : 'false');
    }
  }

  function renderUpdated() {
    const el = $('#last-updated');
    if (state.lastUpdated) el.replaceChildren(timeEl(state.lastUpdated));
  }

  // ---- the view in the URL --------------------------------------------------

  function readURL() {
    const p = new URLSearchParams(location.search);
    const v = state.view;
    v.q = (p.get('q') || '').slice(0, 200);
    v.status = Object.hasOwn(FILTERS, p.get('status')) ? p.get('status') : 'all';
    v.sort = Object.hasOwn(SORTS, p.get('sort')) ? p.get('sort') : 'problems';
    for (const [kind, name] of [['provider', 'page'], ['model', 'mpage']]) {
      const n = parseInt(p.get(name) || '1', 10);
      v.page[kind] = n > 0 && n < 1e6 ? n : 1;
    }
    $('#filter').value = v.q;
    $('#sort').value = v.sort;
  }

  // writeURL keeps the view in the address (defaults left out), so that a
  // filtered view can be shared and survives a reload.
  function writeURL() {
    const v = state.view;
    const p = new URLSearchParams(location.search);
    const set = (name, value, def) => (value === def ? p.delete(name) : p.set(name, value));
    set('q', v.q, '');
    set('status', v.status, 'all');
    set('sort', v.sort, 'problems');
    set('page', String(v.page.provider), '1');
    set('mpage', String(v.page.model), '1');
    const qs = p.toString();
    history.replaceState(null, '', location.pathname + (qs ? '?' + qs : '') + location.hash);
  }

  // setView changes the view and asks the server for its page; a new
  // filter or order starts at page 1; typing asks once it pauses.
  let searchTimer = null;
  function setView(change) {
    const v = state.view;
    Object.assign(v, change);
    if (!('page' in change)) v.page = { provider: 1, model: 1 };
    writeURL();
    renderFilters(state.loaded ? { provider: counts('provider'), model: counts('model') } : null);
    clearTimeout(searchTimer);
    if ('q' in change) searchTimer = setTimeout(() => loadHealth().catch(() => {}), SEARCH_DELAY);
    else loadHealth().catch(() => {});
  }

  function bindToolbar() {
    const input = $('#filter');
    const onSearch = () => {
      const q = input.value.trim().slice(0, 200);
      if (q !== state.view.q) setView({ q });
    };
    input.addEventListener('input', onSearch);
    input.addEventListener('search', onSearch); // Escape or the clear button
    $('#sort').addEventListener('change', (e) => setView({ sort: Object.hasOwn(SORTS, e.target.value) ? e.target.value : 'problems' }));
    document.addEventListener('click', (e) => {
      const target = e.target instanceof Element ? e.target : null;
      const f = target && target.closest('button[data-filter]');
      if (f && Object.hasOwn(FILTERS, f.dataset.filter)) {
        // a card's count toggles its filter; the toolbar's buttons set theirs
        const same = f.classList.contains('count-btn') && state.view.status === f.dataset.filter;
        setView({ status: same ? 'all' : f.dataset.filter });
        return;
      }
      const pg = target && target.closest('button[data-page]');
      if (pg && pg.getAttribute('aria-disabled') !== 'true') {
        const kind = pg.dataset.kindPage;
        const page = { ...state.view.page };
        page[kind] += pg.dataset.page === 'next' ? 1 : -1;
        state.scrollTo = kind;
        setView({ page });
      }
    });
    // "/" focuses the search box, as on many sites
    document.addEventListener('keydown', (e) => {
      if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
      const t = e.target;
      if (t instanceof Element && t.closest('input, textarea, select, [contenteditable], dialog[open]')) return;
      e.preventDefault();
      input.focus();
      input.select();
    });
  }

  function badge(status, small) {
    const st = statusOf(status);
    return h('span', { class: 'badge' + (small ? ' badge-small' : ''), 'data-status': STATUS[status] ? status : 'unknown' },
      h('span', { class: 'badge-icon', 'aria-hidden': 'true', text: st.icon }),
      h('span', { class: 'badge-text', text: st.label }));
  }

  function fact(name, label, ...value) {
    return h('div', { class: 'fact', 'data-fact': name }, h('dt', { text: label }), h('dd', null, ...value));
  }

  function cooldownFact(e) {
    if (e.in_cooldown && e.cooldown_until) {
      return fact('cooldown', 'Cooldown', h('span', { class: 'cooldown-icon', 'aria-hidden': 'true', text: '⏳ ' }),
        timeEl(e.cooldown_until, 'until'));
    }
    if (e.in_cooldown) {
      // no end: forced open by an operator until resumed
      return fact('cooldown', 'Cooldown', h('span', { class: 'cooldown-icon', 'aria-hidden': 'true', text: '⏳ ' }), 'until resumed');
    }
    return fact('cooldown', 'Cooldown', h('span', { class: 'none', text: 'none' }));
  }

  function buildRow(kind, key) {
    const titleId = 'row-' + kind + '-' + Math.random().toString(36).slice(2, 10);
    const actions = h('div', { class: 'entry-actions' });
    if (kind === 'model') {
      actions.append(h('button', { type: 'button', class: 'btn btn-small', 'data-reinit': key, 'aria-describedby': titleId },
        h('span', { 'aria-hidden': 'true', text: '⟳ ' }), 'Reinit'));
    } else {
      actions.append(h('button', { type: 'button', class: 'btn btn-small', 'data-reset': key, 'aria-describedby': titleId },
        h('span', { 'aria-hidden': 'true', text: '⟲ ' }), 'Reset'));
    }
    const id = rowId(kind, key);
    const details = h('details', { class: 'explain' },
      h('summary', null, 'Timeline and why this status'),
      h('div', { class: 'timeline', 'data-timeline': kind }),
      h('div', { class: 'explain-body' }));
    details.addEventListener('toggle', () => {
      if (details.open) {
        state.open.add(id);
        const e = state.entries[kind].get(key);
        if (e) renderTimeline($('.timeline', details), kind, key, e);
        renderSparksIn(details);
        scheduleHistory(); // its marks, and its chart in a large fleet
      } else {
        state.open.delete(id);
      }
    });
    if (state.open.has(id)) details.open = true;
    const row = h('article', { class: 'entry', 'data-kind': kind, 'data-key': key, 'aria-labelledby': titleId },
      h('div', { class: 'entry-head' },
        h('div', { class: 'entry-badge' }),
        kind === 'provider' ? h('div', { class: 'entry-operator' }) : null,
        h('h4', { class: 'entry-title', id: titleId }),
        actions),
      h('div', { class: 'entry-body' },
        h('dl', { class: 'facts' }),
        h('div', { class: 'spark', 'data-hist': histId(kind, key, '') })),
      h('p', { class: 'last-error' }),
      h('ul', { class: 'upstreams', 'aria-label': kind === 'provider' ? 'Upstreams' : 'Endpoints' }),
      details);
    return row;
  }

  const rendered = new WeakMap(); // row -> JSON of the entry it shows

  function renderRow(kind, e) {
    if (!e) return;
    const key = keyOf(kind, e);
    const id = rowId(kind, key);
    let row = state.rows.get(id);
    const fresh = !row;
    if (fresh) {
      row = buildRow(kind, key);
      state.rows.set(id, row);
    }
    // unchanged entries keep their DOM (and any focus or selection in it)
    const sig = JSON.stringify(e);
    if (rendered.get(row) === sig) return;
    rendered.set(row, sig);
    const before = row.dataset.status;
    row.dataset.status = STATUS[e.status] ? e.status : 'unknown';
    row.dataset.cooldown = e.in_cooldown ? 'true' : 'false';

    $('.entry-badge', row).replaceChildren(badge(e.status));
    const title = $('.entry-title', row);
    title.replaceChildren(h('span', { class: 'entry-name', text: e.name || key }),
      ...(e.name && e.name !== key ? [h('code', { class: 'entry-key', text: key })] : []));

    const facts = [
      fact('errors', 'Errors', String(e.error_count ?? 0)),
      fact('successes', 'Successes', String(e.success_count ?? 0)),
      fact('last-success', 'Last success', timeEl(e.last_success)),
      fact('last-error', 'Last error', timeEl(e.last_error)),
      cooldownFact(e),
    ];
    // A model served over HTTP (endpoints = [...]) has endpoints, each
    // with its own health, instead of a plugin process.
    const endpoints = kind === 'model' && Array.isArray(e.upstreams) && e.upstreams.length > 0;
    if (endpoints) {
      const ups = e.upstreams.filter((u) => u && typeof u === 'object');
      facts.push(fact('endpoints', 'Endpoints', ups.filter((u) => u.status === 'healthy').length + ' of ' + ups.length + ' healthy'));
      if (e.fallback) facts.push(fact('fallback', 'Fallback', h('code', { text: e.fallback })));
    } else if (kind === 'model') {
      facts.push(
        fact('pid', 'PID', e.pid === null || e.pid === undefined ? h('span', { class: 'none', text: '—' }) : String(e.pid)),
        fact('restarts', 'Restarts', String(e.restarts ?? 0)),
        fact('loaded', 'Loaded', e.loaded ? 'yes' : 'no'),
        fact('last-reinit', 'Last reinit', timeEl(e.last_reinit)));
      if (e.fallback) facts.push(fact('fallback', 'Fallback', h('code', { text: e.fallback })));
    } else {
      const ups = e.upstreams || [];
      facts.push(fact('upstreams', 'Upstreams', ups.filter((u) => u.status === 'healthy').length + ' of ' + ups.length + ' healthy'));
    }
    $('.facts', row).replaceChildren(...facts);

    const lastErr = $('.last-error', row);
    // Shown while the entry is not healthy; a healthy one keeps it in its details.
    if (e.last_error_message && e.status !== 'healthy') {
      lastErr.replaceChildren(h('span', { class: 'last-error-label', text: 'Last error: ' }),
        h('span', { class: 'last-error-text', text: e.last_error_message }));
      lastErr.hidden = false;
    } else {
      lastErr.replaceChildren();
      lastErr.hidden = true;
    }

    const list = $('.upstreams', row);
    if (kind === 'provider') {
      renderOperator(row, e);
      renderUpstreams(list, e, true);
    } else if (endpoints) {
      renderUpstreams(list, e, false); // no drain or force-open for a model's endpoints
    }
    list.hidden = kind === 'model' && !endpoints;
    if (kind === 'model') {
      // self-heal of a model over HTTP clears its endpoints: a reset, not a new process
      const btn = $('[data-reinit]', row);
      if (btn && btn.lastChild) btn.lastChild.textContent = endpoints ? 'Reset' : 'Reinit';
    }
    renderExplain(kind, $('.explain-body', row), e);
    const details = $('details.explain', row);
    if (details.open) renderTimeline($('.timeline', details), kind, key, e);
    renderSparksIn(row);

    if (!fresh && before !== row.dataset.status) flash(row);
  }

  function flash(row) {
    row.classList.remove('changed');
    void row.offsetWidth; // restart the animation
    row.classList.add('changed');
    setTimeout(() => row.classList.remove('changed'), 1600);
  }

  const operatorAction = (u) => (u.operator && OPERATOR[u.operator.action] ? u.operator.action : '');

  function operatorBadge(action, extra) {
    const op = OPERATOR[action];
    return h('span', { class: 'op-badge', 'data-operator': action },
      h('span', { class: 'op-icon', 'aria-hidden': 'true', text: op.icon }), ' ', op.label, extra || null);
  }

  // renderOperator shows on the provider row which of its upstreams an
  // operator drained or forced open (the details are on each upstream).
  function renderOperator(row, e) {
    const ups = e.upstreams || [];
    const box = $('.entry-operator', row);
    const actions = [];
    const badges = [];
    for (const action of Object.keys(OPERATOR)) {
      const n = ups.filter((u) => operatorAction(u) === action).length;
      if (n === 0) continue;
      actions.push(action);
      badges.push(operatorBadge(action, ups.length > 1 ? ' · ' + n + ' of ' + ups.length + ' upstreams' : ''));
    }
    row.dataset.operator = actions.join(' ');
    box.replaceChildren(...badges);
    box.hidden = badges.length === 0;
  }

  // operatorState says what an operator did to an upstream, why, who and
  // until when.
  function operatorState(op) {
    return h('p', { class: 'operator-state', 'data-operator': op.action },
      operatorBadge(op.action), ' ',
      h('span', { class: 'op-reason' }, h('span', { class: 'visually-hidden', text: 'Reason: ' }), '“', op.reason || '', '”'),
      op.by ? [' · by ', h('span', { class: 'op-by', text: op.by })] : null,
      ' · ',
      h('span', { class: 'op-until' }, op.until ? timeEl(op.until, 'until') : 'until resumed'));
  }

  const busyControls = new Set(); // provider + '\u0000' + upstream + '\u0000' + control

  function controlButtons(providerId, u, labelId) {
    return h('div', { class: 'upstream-controls', role: 'group', 'aria-labelledby': labelId },
      Object.entries(CONTROLS).map(([control, c]) => {
        const busy = busyControls.has(providerId + '\u0000' + u.url + '\u0000' + control);
        return h('button', {
          type: 'button', class: 'btn btn-small btn-quiet' + (busy ? ' busy' : ''),
          'data-control': control, 'data-provider': providerId, 'data-upstream': u.url,
          'aria-haspopup': 'dialog', 'aria-disabled': busy ? 'true' : null, text: c.label,
        });
      }));
  }

  function renderUpstreams(list, e, controls) {
    const ups = e.upstreams || [];
    // keep the focus on a control button across the re-render
    const active = document.activeElement;
    const focused = active && list.contains(active) && active.dataset.control ? active.dataset : null;
    const focusedControl = focused ? { control: focused.control, upstream: focused.upstream } : null;
    list.replaceChildren(...ups.map((u) => {
      const labelId = 'up-' + Math.random().toString(36).slice(2, 10);
      const op = operatorAction(u);
      return h('li', { class: 'upstream', 'data-upstream': u.url, 'data-status': STATUS[u.status] ? u.status : 'unknown', 'data-operator': op },
        badge(u.status, true),
        h('code', { class: 'upstream-url', id: labelId, text: u.url }),
        h('span', { class: 'upstream-facts' },
          'errors ', String(u.error_count ?? 0), ' · successes ', String(u.success_count ?? 0),
          u.last_error ? [' · last error ', timeEl(u.last_error)] : null,
          u.in_cooldown && u.cooldown_until && op !== 'force_open' ? [' · ', h('span', { 'aria-hidden': 'true', text: '⏳ ' }), 'cooldown ', timeEl(u.cooldown_until, 'until')] : null),
        routingFacts(u),
        op ? operatorState(u.operator) : null,
        u.reason && (u.status === 'unavailable' || u.status === 'degraded') && op !== 'force_open' ? h('span', { class: 'upstream-reason', text: u.reason }) : null,
        u.last_error_message && u.status !== 'healthy' && op !== 'force_open' ? h('span', { class: 'upstream-error', text: u.last_error_message }) : null,
        controls ? controlButtons(e.provider_id, u, labelId) : null);
    }));
    if (focusedControl) {
      const again = [...list.querySelectorAll('button[data-control]')]
        .find((b) => b.dataset.control === focusedControl.control && b.dataset.upstream === focusedControl.upstream);
      if (again) again.focus({ preventScroll: true });
    }
  }

  // routingFacts shows what routing knows of an upstream: the quota it
  // announced (quota block) and its latency under least_latency.
  function routingFacts(u) {
    const parts = [];
    const q = u.quota;
    if (q && typeof q === 'object' && typeof q.remaining === 'number') {
      parts.push('quota ' + q.remaining + (typeof q.limit === 'number' && q.limit > 0 ? ' of ' + q.limit : '') + ' left');
      if (q.steering) parts.push(q.reset ? ['peers preferred, reset ', timeEl(q.reset, 'until')] : 'peers preferred');
    }
    const b = u.balance;
    if (b && typeof b === 'object' && typeof b.ewma_ms === 'number' && isFinite(b.ewma_ms)) {
      parts.push('latency ~' + (b.ewma_ms < 10 ? b.ewma_ms.toFixed(1) : Math.round(b.ewma_ms)) + ' ms, ' + num(b.in_flight) + ' in flight');
    }
    if (parts.length === 0) return null;
    return h('span', { class: 'upstream-routing' }, ...parts.flatMap((p, i) => (i ? [' · ', p] : [p])));
  }

  function renderExplain(kind, body, e) {
    if (kind === 'model') {
      body.replaceChildren(explainBlock(e, 'model'));
      return;
    }
    const ups = e.upstreams || [];
    body.replaceChildren(
      h('p', { class: 'explain-intro', text: 'A provider is healthy when every upstream it has called is healthy, unavailable when all of them are unavailable, and degraded otherwise. Requests go to available upstreams, healthy ones first.' }),
      ...ups.map((u) => h('section', { class: 'explain-upstream' },
        h('h5', null, badge(u.status, true), ' ', h('code', { class: 'upstream-url', text: u.url })),
        h('div', { class: 'spark spark-upstream', 'data-hist': histId('provider', e.provider_id, u.url) }),
        explainBlock(u, 'upstream'))));
  }

  function explainBlock(x, what) {
    const st = x.settings || {};
    let recovery = h('span', { class: 'none', text: '—' });
    if (x.recovery) {
      recovery = num(x.recovery.trial_successes) + ' of ' + num(x.recovery.trials_needed) + ' trial successes';
    }
    const rows = [
      fact('reason', 'Why', x.reason || (x.status === 'unknown' ? 'No call yet.' : 'No rule fired: it answers normally.')),
      fact('next-trial', 'Next trial', x.next_trial_at ? timeEl(x.next_trial_at) : h('span', { class: 'none', text: x.in_cooldown ? '—' : 'now (requests are admitted)' })),
      fact('recovery', 'Recovery', recovery),
    ];
    if (typeof st.error_threshold === 'number') {
      rows.push(fact('settings', 'Rules',
        'unavailable after ' + num(st.error_threshold) + ' errors (degraded from ' + num(st.degraded_at) + '), ' +
        'cooldown ' + duration(st.cooldown_seconds) + ', ' +
        num(st.success_recovery_count) + ' trial success' + (st.success_recovery_count === 1 ? '' : 'es') + ' to recover'));
    }
    if (x.paused_until) {
      // The backend rate limited us (Retry-After / X-RateLimit-Reset): not a failure.
      rows.push(fact('paused', 'Rate limited', '⏸ paused: ', timeEl(x.paused_until, 'until')));
    }
    if (x.last_probe) {
      const p = x.last_probe;
      rows.push(fact('probe', 'Health check', p.ok ? '✅ passed ' : '❌ failed ', timeEl(p.time),
        p.failure && p.failure.message ? ': ' + p.failure.message : ''));
    }
    if (what === 'model' && x.last_reinit) rows.push(fact('last-reinit', 'Last reinit', timeEl(x.last_reinit)));

    const failures = x.recent_failures || [];
    let table;
    if (failures.length === 0) {
      table = h('p', { class: 'none', text: 'No recent failures.' });
    } else {
      table = h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Recent failures' },
        h('table', { class: 'failures' },
          h('caption', { text: 'Recent failures, newest first' }),
          h('thead', null, h('tr', null, ['Time', 'Kind', 'Status', 'Latency', 'Message'].map((t) => h('th', { scope: 'col', text: t })))),
          h('tbody', null, failures.map((f) => h('tr', null,
            h('td', null, timeEl(f.time)),
            h('td', { text: f.kind || '—' }),
            h('td', { text: f.status_code ? String(f.status_code) : '—' }),
            h('td', { text: typeof f.latency_ms === 'number' ? formatMS(f.latency_ms) : '—' }),
            h('td', { class: 'failure-message', text: f.message || '' }))))));
    }
    return h('div', { class: 'explain-block' }, h('dl', { class: 'facts facts-explain' }, ...rows), table);
  }

  function formatMS(ms) {
    if (ms >= 1000) return (ms / 1000).toFixed(ms >= 10000 ? 0 : 1) + ' s';
    if (ms >= 10) return Math.round(ms) + ' ms';
    return ms.toFixed(1) + ' ms';
  }

  // ---- timelines ------------------------------------------------------------
  //
  // An opened entry shows its last hour: a band coloured by status, markers
  // for trips, recoveries, cooldowns, reinits, operator actions and fault
  // injections, and its request/error/latency chart. The status changes
  // are those the page saw (live events and refreshes) since it was
  // opened; earlier ones are read from the entry where it tells them (a
  // cooldown's start, an operator action's or fault's time, the last
  // reinit), and the rest of the hour is marked as not recorded.

  const MARKERS = {
    trip: { icon: '✖', label: 'trip' },
    recovery: { icon: '✔', label: 'recovery' },
    change: { icon: '•', label: 'status change' },
    cooldown: { icon: '⏳', label: 'cooldown' },
    reinit: { icon: '⟳', label: 'reinit' },
    operator: { icon: '🚧', label: 'operator action' },
    fault: { icon: '⚡', label: 'fault injection' },
  };

  const clock = (t) => new Date(t).toLocaleTimeString('en-GB', { hour12: false });
  const iso = (t) => new Date(t).toISOString();
  const str = (v) => (typeof v === 'string' ? v : '');

  function faultText(f) {
    let what = 'fault injected: ' + (str(f.kind) || 'fault');
    if (typeof f.status === 'number' && f.status > 0) what += ' ' + f.status;
    if (typeof f.delay_ms === 'number' && f.delay_ms > 0) what += ' ' + formatMS(f.delay_ms);
    if (typeof f.percent === 'number') what += ' on ' + f.percent + '% of requests';
    if (str(f.reason)) what += ': ' + f.reason;
    return what;
  }

  // subjectsOf is what has its own health: a provider's upstreams, or the model.
  const subjectsOf = (kind, e) => (kind === 'provider' ? (Array.isArray(e.upstreams) ? e.upstreams : []) : [e]).filter((u) => u && typeof u === 'object');

  // tripTime is when an entry's cooldown started, or NaN.
  function tripTime(u) {
    const until = Date.parse(str(u.cooldown_until));
    const cd = u.settings && u.settings.cooldown_seconds;
    if (!u.in_cooldown || isNaN(until) || typeof cd !== 'number' || cd <= 0) return NaN;
    return until - cd * 1000;
  }

  const FAULT_MARKS = { fault: 'fault injected', 'fault-clear': 'fault cleared', 'fault-expired': 'fault expired' };

  // changesOf is an entry's status changes, oldest first: the server's
  // marks of it once read (each entry keeps its own there, whatever the
  // rest of the fleet does) and the live ones seen since; until then the
  // ones this page saw.
  function changesOf(kind, key) {
    const id = rowId(kind, key);
    const local = state.trail.get(id) || [];
    const m = state.marks.get(id);
    if (!m) return local;
    const out = [];
    for (const x of m.list) {
      const t = x && x.type === 'status' ? Date.parse(x.time) : NaN;
      if (isNaN(t)) continue;
      out.push({ t, from: str(x.from), to: str(x.to), upstream: str(x.upstream), ufrom: str(x.upstream_from), uto: str(x.upstream_to), reason: str(x.reason) });
    }
    const after = Math.max(m.at, out.length ? out[out.length - 1].t : -Infinity);
    for (const c of local) if (c.t > after) out.push(c);
    return out;
  }

  function timelineMarkers(kind, key, e, now) {
    const out = [];
    const from = now - HOUR;
    const add = (t, type, text) => {
      if (typeof t === 'number' && isFinite(t) && t >= from && t <= now + 5000) out.push({ t: Math.min(t, now), type, text });
    };
    const marks = state.marks.get(rowId(kind, key));
    for (const c of changesOf(kind, key)) {
      const to = c.uto || c.to;
      const was = c.ufrom || c.from;
      let type = 'change';
      if (to === 'unavailable') type = 'trip';
      else if (to === 'healthy' && (was === 'unavailable' || was === 'degraded')) type = 'recovery';
      add(c.t, type, statusOf(was).label + ' → ' + statusOf(to).label + (c.upstream ? ' (' + c.upstream + ')' : '') +
        (c.reason ? ': ' + c.reason : ''));
    }
    for (const u of subjectsOf(kind, e)) {
      const who = kind === 'provider' && str(u.url) ? ' (' + u.url + ')' : '';
      const trip = tripTime(u);
      if (!isNaN(trip)) add(trip, 'cooldown', 'cooldown until ' + clock(Date.parse(u.cooldown_until)) + who + (str(u.reason) ? ': ' + u.reason : ''));
      const op = u.operator;
      if (op && typeof op === 'object' && str(op.at)) {
        add(Date.parse(op.at), 'operator', (OPERATOR[op.action] ? OPERATOR[op.action].label : 'operator action') + who +
          (str(op.by) ? ' by ' + op.by : '') + (str(op.reason) ? ': ' + op.reason : ''));
      }
      const f = u.fault;
      // the server's marks tell every fault of the hour; else the one in force
      if (!marks && f && typeof f === 'object' && str(f.at)) add(Date.parse(f.at), 'fault', faultText(f) + who);
    }
    for (const x of marks ? marks.list : []) {
      if (!x || typeof x !== 'object' || !FAULT_MARKS[x.type]) continue;
      const who = str(x.upstream) ? ' (' + x.upstream + ')' : '';
      const text = x.type === 'fault' && x.fault && typeof x.fault === 'object' ? faultText(x.fault)
        : FAULT_MARKS[x.type] + (str(x.reason) ? ': ' + x.reason : '');
      add(Date.parse(x.time), 'fault', text + who + (x.type === 'fault-clear' && str(x.by) ? ' by ' + x.by : ''));
    }
    if (kind === 'model' && str(e.last_reinit)) {
      add(Date.parse(e.last_reinit), 'reinit', 'reinit' + (typeof e.restarts === 'number' ? ', restart ' + e.restarts : '') +
        (typeof e.pid === 'number' ? ', now pid ' + e.pid : ''));
    }
    out.sort((a, b) => a.t - b.t);
    return out;
  }

  function timelineSegments(kind, key, e, now) {
    const from = now - HOUR;
    const trail = changesOf(kind, key).filter((c) => c.t >= from && c.t <= now + 5000);
    const cur = known(e.status);
    const first = trail.length ? known(trail[0].from) : cur;
    let start = Math.max(from, Math.min(state.since, trail.length ? trail[0].t : now));
    if (first === 'unavailable') {
      // every subject in cooldown: unavailable since the last of their trips
      const trips = subjectsOf(kind, e).map(tripTime);
      if (trips.length && trips.every((t) => !isNaN(t))) start = Math.max(from, Math.min(start, Math.max(...trips)));
    }
    const segs = [];
    if (start > from + 1000) segs.push({ a: from, b: start, status: 'none' });
    let st = first;
    let t0 = start;
    for (const c of trail) {
      const t = Math.min(Math.max(c.t, t0), now);
      if (t > t0) segs.push({ a: t0, b: t, status: st });
      st = known(c.to);
      t0 = t;
    }
    if (now > t0) segs.push({ a: t0, b: now, status: st });
    return segs;
  }

  const TL_W = 600;
  const TL_H = 22;

  function renderTimeline(box, kind, key, e) {
    const now = Date.now();
    if (!box.firstChild) {
      box.append(
        h('h5', { class: 'tl-title', text: 'Last hour' }),
        h('div', { class: 'tl-band-wrap' }),
        h('p', { class: 'tl-axis', 'aria-hidden': 'true' }, h('span', { text: '60 min ago' }), h('span', { text: '30 min ago' }), h('span', { text: 'now' })),
        h('p', { class: 'tl-hover', 'aria-live': 'polite', text: 'Hover or focus the band or a marker for its time and reason.' }),
        h('ol', { class: 'tl-events', 'aria-label': 'Events in the last hour, newest first' }),
        h('h5', { class: 'tl-title' }, 'Requests, errors and latency, last ', h('span', { class: 'tl-span' })),
        h('div', { class: 'spark tl-chart', 'data-hist': histId(kind, key, '') }),
        h('p', { class: 'tl-nohist none' }));
    }
    const segs = timelineSegments(kind, key, e, now);
    const marks = timelineMarkers(kind, key, e, now);
    const x = (t) => Math.max(0, Math.min(TL_W, ((t - (now - HOUR)) / HOUR) * TL_W));
    const svg = s('svg', { viewBox: '0 0 ' + TL_W + ' ' + (TL_H + 12), class: 'tl-band', focusable: 'false' });
    for (const g of segs) {
      const tip = g.status === 'none'
        ? clock(g.a) + '–' + clock(g.b) + ': not recorded (before this page was opened)'
        : clock(g.a) + '–' + clock(g.b) + ': ' + statusOf(g.status).label + ' for ' + duration((g.b - g.a) / 1000) +
          (g.b >= now && str(e.reason) ? ' (now: ' + e.reason + ')' : '');
      svg.append(s('rect', {
        x: x(g.a).toFixed(2), y: 0, width: Math.max(x(g.b) - x(g.a), 0.5).toFixed(2), height: TL_H,
        class: 'tl-seg', 'data-status': g.status, 'data-tip': tip, 'data-from': iso(g.a), 'data-to': iso(g.b),
      }));
    }
    // markers closer than CLUSTER apart share one mark, which tells them all
    const CLUSTER = 8;
    const groups = [];
    for (const m of marks) {
      const last = groups[groups.length - 1];
      if (last && x(m.t) - last.x < CLUSTER) last.items.push(m);
      else groups.push({ x: x(m.t), items: [m] });
    }
    for (const grp of groups) {
      const mx = grp.x;
      const lines = grp.items.map((m) => clock(m.t) + ' · ' + MARKERS[m.type].label + ' · ' + m.text);
      const types = [...new Set(grp.items.map((m) => m.type))];
      const g = s('g', {
        class: 'tl-marker', 'data-marker': types[0], 'data-markers': types.join(' '), 'data-time': iso(grp.items[0].t),
        'data-tip': lines.join('\n'), tabindex: '0', role: 'img', 'aria-label': lines.join('; '),
      });
      g.append(s('line', { x1: mx, y1: 0, x2: mx, y2: TL_H, class: 'tl-tick' }),
        s('path', { d: 'M' + (mx - 5) + ' ' + (TL_H + 11) + ' L' + mx + ' ' + (TL_H + 1) + ' L' + (mx + 5) + ' ' + (TL_H + 11) + ' Z', class: 'tl-mark' }),
        s('rect', { x: mx - 6, y: 0, width: 12, height: TL_H + 12, class: 'tl-hit' }));
      svg.append(g);
    }
    const counts = {};
    for (const m of marks) counts[m.type] = (counts[m.type] || 0) + 1;
    const summary = Object.keys(counts).map((t) => counts[t] + ' ' + MARKERS[t].label + (counts[t] === 1 ? '' : 's')).join(', ');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', 'Status over the last hour, now ' + statusOf(e.status).label + (summary ? '; ' + summary : '; no events'));
    $('.tl-band-wrap', box).replaceChildren(svg);
    $('.tl-events', box).replaceChildren(...(marks.length === 0
      ? [h('li', { class: 'none', text: 'No trips, recoveries, cooldowns, reinits, operator actions or faults seen in the last hour.' })]
      : marks.slice().reverse().map((m) => h('li', { 'data-marker': m.type },
        h('time', { datetime: iso(m.t), text: clock(m.t) }), ' ',
        h('span', { class: 'tl-icon', 'aria-hidden': 'true', text: MARKERS[m.type].icon }), ' ',
        h('span', { class: 'tl-kind', text: MARKERS[m.type].label }), ': ', m.text))));
    $('.tl-span', box).textContent = span(Math.round(state.intervalSeconds * state.buckets));
    const hasHist = state.history.has(histId(kind, key, ''));
    const nohist = $('.tl-nohist', box);
    nohist.textContent = hasHist ? '' : 'Loading the request history…';
    nohist.hidden = hasHist;
  }

  // bindTimelineTips shows the time and reason of what is under the
  // pointer, or focused, in its timeline.
  function bindTimelineTips() {
    const show = (ev) => {
      const el = ev.target instanceof Element ? ev.target.closest('.timeline [data-tip]') : null;
      if (!el) return;
      const box = el.closest('.timeline');
      setText($('.tl-hover', box), el.getAttribute('data-tip'));
      for (const old of box.querySelectorAll('.tl-active')) old.classList.remove('tl-active');
      el.classList.add('tl-active');
    };
    document.addEventListener('pointerover', show);
    document.addEventListener('focusin', show);
  }

  function renderOpenTimelines() {
    for (const id of state.open) {
      const row = state.rows.get(id);
      if (!row) continue;
      const kind = row.dataset.kind;
      const e = state.entries[kind].get(row.dataset.key);
      const details = $('details.explain', row);
      if (e && details.open) renderTimeline($('.timeline', details), kind, row.dataset.key, e);
    }
  }

  // ---- history and sparklines ---------------------------------------------

  // loadHistory reads the request history: every entry's in a small
  // fleet (a sparkline on every row), and each opened entry's on its own
  // (?kind=&key=), which brings its marks (status changes and faults)
  // for its timeline; beyond a small fleet only the opened entries'.
  async function loadHistory() {
    if (!state.loaded) return;
    const all = state.total <= SMALL_FLEET;
    const asks = (all ? [null] : []).concat([...state.open].map((id) => id.split('\u0000')));
    const next = new Map();
    const marks = new Map();
    for (const one of asks) {
      const doc = await getJSON('/api/diagnostics/history' +
        (one ? '?kind=' + encodeURIComponent(one[0]) + '&key=' + encodeURIComponent(one[1]) : ''));
      if (doc.interval_seconds > 0) state.intervalSeconds = doc.interval_seconds;
      if (doc.buckets > 0) state.buckets = doc.buckets;
      for (const e of Array.isArray(doc.entries) ? doc.entries : []) {
        if (e && Array.isArray(e.points) && (!one || (e.kind === one[0] && e.key === one[1]))) {
          next.set(histId(e.kind, e.key, e.upstream), e.points);
        }
      }
      if (one && Array.isArray(doc.marks)) marks.set(rowId(one[0], one[1]), { at: Date.now(), list: doc.marks });
    }
    state.history = next;
    state.marks = marks;
    $('#history-span').textContent = span(Math.round(state.intervalSeconds * state.buckets)).replace(/^(\d+) min$/, '$1 minutes');
    renderAllSparks();
  }

  let historyTimer = null;
  function scheduleHistory() {
    if (historyTimer) return;
    historyTimer = setTimeout(() => {
      historyTimer = null;
      loadHistory().catch(() => {});
    }, 400);
  }

  function renderAllSparks() {
    for (const row of state.rows.values()) renderSparksIn(row);
    renderOpenTimelines();
  }

  function renderSparksIn(root) {
    for (const el of root.querySelectorAll('.spark[data-hist]')) {
      const pts = state.history.get(el.dataset.hist);
      if (!pts) continue;
      // skip closed details: rendered when opened
      const closed = el.closest('details:not([open])');
      if (closed) continue;
      const sig = sparkSignature(pts);
      if (el.dataset.sig === sig) continue;
      el.dataset.sig = sig;
      el.replaceChildren(...sparkline(pts));
    }
  }

  function sparkSignature(pts) {
    let s = pts.length ? pts[pts.length - 1].t : '';
    for (const p of pts) s += ',' + p.requests + '/' + p.errors + '/' + Math.round(p.latency_ms || 0);
    return s;
  }

  function sparkline(pts) {
    const W = 120;
    const H = 32;
    const TOP = 5; // room for the error marks
    const n = Math.max(pts.length, 1);
    const bw = W / n;
    let maxReq = 0;
    let maxLat = 0;
    let req = 0;
    let err = 0;
    let latSum = 0;
    let firstErr = null;
    for (const p of pts) {
      maxReq = Math.max(maxReq, p.requests);
      if (p.requests > 0) maxLat = Math.max(maxLat, p.latency_ms || 0);
      req += p.requests;
      err += p.errors;
      latSum += (p.latency_ms || 0) * p.requests;
      if (p.errors > 0 && firstErr === null) firstErr = p.t;
    }
    const svg = s('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'sparkline', role: 'img', preserveAspectRatio: 'none', focusable: 'false' });
    const minutes = span(Math.round(state.intervalSeconds * n));
    let label;
    if (req === 0) {
      label = 'No requests in the last ' + minutes + '.';
    } else {
      label = 'Last ' + minutes + ': ' + req + ' requests, ' + err + ' errors';
      if (firstErr) label += ' (errors since ' + new Date(firstErr).toLocaleTimeString() + ')';
      label += ', mean latency ' + formatMS(latSum / req) + '.';
    }
    svg.setAttribute('aria-label', label);
    const title = s('title');
    title.textContent = label;
    svg.append(title, s('line', { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, class: 'spark-base' }));
    const scale = (v) => (maxReq > 0 ? (v / maxReq) * (H - TOP - 1) : 0);
    const lat = [];
    pts.forEach((p, i) => {
      const x = i * bw;
      if (p.requests > 0) {
        const rh = Math.max(scale(p.requests), 1.5);
        svg.append(s('rect', { x: x + 0.15, y: H - rh, width: Math.max(bw - 0.3, 0.5), height: rh, class: 'spark-req' }));
        lat.push([x + bw / 2, p.latency_ms || 0]);
      }
      if (p.errors > 0) {
        const eh = Math.max(scale(p.errors), 1.5);
        svg.append(s('rect', { x: x + 0.15, y: H - eh, width: Math.max(bw - 0.3, 0.5), height: eh, class: 'spark-err' }));
        svg.append(s('path', { d: 'M' + (x + bw / 2 - 2) + ' 0 L' + (x + bw / 2 + 2) + ' 0 L' + (x + bw / 2) + ' 3.5 Z', class: 'spark-err-mark' }));
      }
    });
    if (lat.length > 1 && maxLat > 0) {
      const y = (v) => H - 1 - (v / maxLat) * (H - TOP - 2);
      svg.append(s('polyline', { points: lat.map(([x, v]) => x.toFixed(2) + ',' + y(v).toFixed(2)).join(' '), class: 'spark-lat' }));
    }
    const caption = h('span', { class: 'spark-caption', 'aria-hidden': 'true' },
      req === 0 ? 'no traffic' : req + ' req · ' + err + ' err');
    return [svg, caption];
  }

  // ---- live events --------------------------------------------------------

  let source = null;
  let retryDelay = 1000;
  let retryTimer = null;

  function setConnection(st) {
    const el = $('#connection');
    const texts = {
      connecting: ['◌', 'Connecting…'],
      live: ['●', 'Live'],
      reconnecting: ['◌', 'Reconnecting…'],
      offline: ['○', 'Offline, retrying…'],
    };
    if (el.dataset.state === st) return;
    el.dataset.state = st;
    $('.conn-icon', el).textContent = texts[st][0];
    $('.conn-text', el).textContent = texts[st][1];
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (source) source.close();
    if (typeof EventSource !== 'function') {
      setConnection('offline');
      return;
    }
    const es = new EventSource('/api/diagnostics/events');
    source = es;
    es.addEventListener('hello', () => {
      retryDelay = 1000;
      setConnection('live');
      // (re)subscribed: re-read the whole state, since changes may have
      // happened while no stream was open
      refreshQuietly();
    });
    es.addEventListener('status', (msg) => {
      let ev;
      try {
        ev = JSON.parse(msg.data);
      } catch {
        return;
      }
      applyEvent(ev);
    });
    es.addEventListener('fault', (msg) => {
      try {
        applyFault(JSON.parse(msg.data));
      } catch {
        // not JSON: nothing to show
      }
    });
    es.addEventListener('resync', () => {
      refreshQuietly();
    });
    es.addEventListener('error', () => {
      if (source !== es) return;
      if (es.readyState === EventSource.CLOSED) {
        // the browser gave up (an error answer, e.g. while the proxy
        // restarts): retry ourselves, backing off
        setConnection('offline');
        retryTimer = setTimeout(connect, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 15000);
      } else {
        setConnection('reconnecting'); // the browser retries by itself
      }
    });
  }

  // ---- actions ------------------------------------------------------------

  function notify(kind, title, lines) {
    const box = $('#notification');
    const icons = { ok: '✅', warn: '⚠️', error: '❌', info: 'ℹ️' };
    box.dataset.kind = kind;
    box.replaceChildren(
      h('p', { class: 'note-title' }, h('span', { 'aria-hidden': 'true', text: icons[kind] + ' ' }), title),
      ...(lines && lines.length ? [h('ul', { class: 'note-lines' }, lines.map((l) => h('li', { text: l })))] : []),
      h('button', { type: 'button', class: 'note-close', 'aria-label': 'Dismiss notification', text: '×', onclick: () => box.replaceChildren() }));
  }

  function summaryLine(title, c) {
    return title + ': ' + c.total + ' total, ' + c.healthy + ' healthy, ' + c.degraded + ' degraded, ' +
      c.unavailable + ' unavailable, ' + c.in_cooldown + ' in cooldown';
  }

  function resultLine(r) {
    const who = r.model_key || r.provider_id || '?';
    const icon = r.status === 'success' ? '✅' : r.status === 'cooldown' ? '⏳' : '❌';
    let line = icon + ' ' + who + ': ' + r.status;
    if (typeof r.cooldown_remaining === 'number') line += ' (' + duration(r.cooldown_remaining) + ' left)';
    if (r.message) line += ' — ' + r.message;
    return line;
  }

  function healKind(doc) {
    const sm = doc.summary || {};
    if (sm.failed > 0) return 'error';
    if ((doc.results || []).some((r) => r.status === 'cooldown')) return 'warn';
    return 'ok';
  }

  async function refreshQuietly() {
    try {
      await loadHealth();
      await loadHistory();
    } catch {
      // the connection indicator tells; the next tick retries
    }
  }

  function afterHeal() {
    refreshQuietly();
    setTimeout(refreshQuietly, HEAL_REFRESH_DELAY);
  }

  // run guards a button while its action runs; aria-disabled keeps focus.
  async function run(button, fn) {
    if (button.getAttribute('aria-disabled') === 'true') return;
    button.setAttribute('aria-disabled', 'true');
    button.classList.add('busy');
    try {
      await fn();
    } catch (err) {
      const status = err instanceof ActionError ? err.status : 0;
      notify('error', status ? 'Action refused' : 'Action failed', [err.message || String(err)]);
    } finally {
      button.removeAttribute('aria-disabled');
      button.classList.remove('busy');
    }
  }

  async function onRefresh(button) {
    await run(button, async () => {
      try {
        await loadHealth();
        await loadHistory();
      } catch (err) {
        throw new Error('Refresh failed: ' + err.message);
      }
      notify('info', 'Health refreshed', [summaryLine('Providers', counts('provider')), summaryLine('Models', counts('model'))]);
    });
  }

  async function onAutoHeal(button) {
    await run(button, async () => {
      const doc = await adminPost('/api/diagnostics/self-heal');
      const sm = doc.summary || {};
      const results = doc.results || [];
      let title;
      if (results.length === 0) title = 'Auto-heal: nothing to heal, every model is loaded and available';
      else title = 'Auto-heal: ' + (sm.successful || 0) + ' of ' + (sm.total_attempts || 0) + ' reinitialised, ' + (sm.failed || 0) + ' failed';
      notify(healKind(doc), title, results.map(resultLine));
      afterHeal();
    });
  }

  async function onReinit(button, key) {
    await run(button, async () => {
      const doc = await adminPost('/api/diagnostics/self-heal?model_key=' + encodeURIComponent(key));
      const r = (doc.results || [])[0] || { model_key: key, status: 'failed', message: 'no result' };
      const verb = { success: 'done', failed: 'failed', cooldown: 'not attempted (reinit cooldown)' }[r.status] || r.status;
      notify(healKind(doc), 'Reinit of ' + key + ' ' + verb, [resultLine(r)]);
      afterHeal();
    });
  }

  async function onReset(button, id) {
    await run(button, async () => {
      const doc = await adminPost('/api/diagnostics/self-heal?provider_id=' + encodeURIComponent(id));
      const r = (doc.results || [])[0] || { provider_id: id, status: 'failed', message: 'no result' };
      notify(healKind(doc), 'Reset of ' + id + (r.status === 'success' ? ' done' : ' ' + r.status), [resultLine(r)]);
      afterHeal();
    });
  }

  // ---- operator controls ----------------------------------------------------

  let controlDialog = null; // the open control's settings

  // askControl shows the control form; resolves to {reason, ttl} or null.
  function askControl(control, providerId, upstream) {
    const c = CONTROLS[control];
    const dialog = $('#operator-dialog');
    const reason = $('#operator-reason');
    const ttl = $('#operator-ttl');
    $('#operator-title').textContent = c.title;
    $('#operator-help').textContent = c.help;
    $('#operator-provider').textContent = 'Provider ' + providerId + ', upstream';
    $('#operator-target').textContent = upstream;
    $('#operator-reason-need').textContent = c.reason ? '(required)' : '(optional)';
    $('#operator-submit').textContent = c.label;
    $('#operator-ttl-field').hidden = !c.ttl;
    clearControlError();
    reason.value = '';
    reason.required = c.reason;
    ttl.value = '1h';
    controlDialog = c;
    return new Promise((resolve) => {
      dialog.addEventListener('close', () => {
        controlDialog = null;
        const ok = dialog.returnValue === 'ok';
        const answer = ok ? { reason: reason.value.trim(), ttl: c.ttl ? ttl.value : '' } : null;
        reason.value = '';
        clearControlError();
        resolve(answer);
      }, { once: true });
      dialog.returnValue = '';
      dialog.showModal();
      reason.focus();
    });
  }

  function clearControlError() {
    $('#operator-error').textContent = '';
    const reason = $('#operator-reason');
    reason.removeAttribute('aria-invalid');
    reason.setAttribute('aria-describedby', 'operator-reason-hint');
  }

  // onControlSubmit refuses a drain or forced open without a reason: the
  // form stays open, says why, and nothing is sent.
  function onControlSubmit(ev) {
    if (!controlDialog || !controlDialog.reason) return;
    const reason = $('#operator-reason');
    if (reason.value.trim() !== '') return;
    ev.preventDefault();
    $('#operator-error').textContent = 'A reason is required: say why, for the audit log and for whoever looks at this upstream next.';
    reason.setAttribute('aria-invalid', 'true');
    reason.setAttribute('aria-describedby', 'operator-error operator-reason-hint');
    reason.focus();
  }

  const ttlText = (ttl) => ({ '15m': '15 minutes', '1h': '1 hour', '4h': '4 hours' }[ttl] || ttl);

  async function onControl(button) {
    const { control, provider, upstream } = button.dataset;
    const c = CONTROLS[control];
    const busyKey = provider + '\u0000' + upstream + '\u0000' + control;
    if (!c || busyControls.has(busyKey) || $('#operator-dialog').open) return;
    const answer = await askControl(control, provider, upstream);
    refocus(button);
    if (!answer) return; // cancelled: nothing was sent
    busyControls.add(busyKey);
    const current = sameControl(button);
    current.setAttribute('aria-disabled', 'true');
    current.classList.add('busy');
    try {
      const body = { upstream, reason: answer.reason };
      if (answer.ttl) body.ttl = answer.ttl;
      const doc = await adminPost('/api/admin/providers/' + encodeURIComponent(provider) + '/' + control, body);
      applyEntry('provider', doc && doc.entry);
      const lines = [];
      if (answer.reason) lines.push('Reason: ' + answer.reason);
      if (c.ttl) lines.push(answer.ttl ? 'Ends after ' + ttlText(answer.ttl) + ', unless resumed earlier.' : 'Until resumed.');
      lines.push(c.help);
      notify('ok', c.done + ': ' + upstream + ' (provider ' + provider + ')', lines);
      if ($('#audit-log').open) loadAudit().catch(() => {});
      refreshQuietly();
    } catch (err) {
      const status = err instanceof ActionError ? err.status : 0;
      notify('error', (status ? c.label + ' refused' : c.label + ' failed') + ': ' + upstream, [err.message || String(err)]);
    } finally {
      busyControls.delete(busyKey);
      for (const b of [button, sameControl(button)]) {
        b.removeAttribute('aria-disabled');
        b.classList.remove('busy');
      }
    }
  }

  // ---- audit log ------------------------------------------------------------

  let auditSeq = 0;

  async function loadAudit() {
    const seq = ++auditSeq;
    const status = $('#audit-status');
    const body = $('#audit-log .audit-body');
    body.setAttribute('aria-busy', 'true');
    status.textContent = 'Loading the audit log…';
    try {
      const doc = await adminFetch('GET', '/api/admin/audit?limit=100');
      if (seq !== auditSeq) return;
      const records = (doc && doc.records) || [];
      renderAudit(records);
      status.textContent = records.length === 0
        ? 'No operator actions yet.'
        : records.length + (records.length === 1 ? ' action' : ' actions') + ', newest first.';
    } catch (err) {
      if (seq !== auditSeq) return;
      $('#audit-result').replaceChildren();
      status.textContent = 'Not loaded: ' + (err.message || String(err));
      notify('error', 'Audit log not loaded', [err.message || String(err)]);
    } finally {
      if (seq === auditSeq) body.setAttribute('aria-busy', 'false');
    }
  }

  function renderAudit(records) {
    const box = $('#audit-result');
    if (records.length === 0) {
      box.replaceChildren();
      return;
    }
    const exact = (iso) => {
      const d = new Date(iso);
      return isNaN(d) ? iso || '—' : d.toLocaleString();
    };
    box.replaceChildren(h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Audit log' },
      h('table', { class: 'audit-table' },
        h('caption', { text: 'Operator actions, newest first' }),
        h('thead', null, h('tr', null, ['Time', 'Who', 'Action', 'Target', 'Reason', 'Duration'].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', null, records.slice().reverse().map((r) => h('tr', { 'data-action': r.action || '' },
          h('td', null, h('time', { datetime: r.time, title: r.time, text: exact(r.time) })),
          h('td', { class: 'audit-who', text: r.who || '—' }),
          h('td', { class: 'audit-action', text: (r.action || '—') + (r.result && r.result !== 'done' ? ' (' + r.result + ')' : '') }),
          h('td', { class: 'audit-target', text: r.target || '—' }),
          h('td', { class: 'audit-reason', text: r.reason || '—' }),
          h('td', { text: r.ttl ? ttlText(r.ttl) : r.action === 'resume' ? '—' : 'until resumed' })))))));
  }

  // ---- start --------------------------------------------------------------

  function periodic() {
    const ms = Math.max(state.intervalSeconds, 2) * 1000;
    setTimeout(async () => {
      if (!document.hidden) await refreshQuietly();
      periodic();
    }, ms);
  }

  function start() {
    performance.mark('healproxy:start');
    readURL();
    bindToolbar();
    bindTimelineTips();
    $('#refresh-health').addEventListener('click', (e) => onRefresh(e.currentTarget));
    $('#auto-heal').addEventListener('click', (e) => onAutoHeal(e.currentTarget));
    $('#health-diagnostics-result').addEventListener('click', (e) => {
      const target = e.target instanceof Element ? e.target : null;
      const reinit = target && target.closest('button[data-reinit]');
      if (reinit) {
        onReinit(reinit, reinit.dataset.reinit);
        return;
      }
      const reset = target && target.closest('button[data-reset]');
      if (reset) {
        onReset(reset, reset.dataset.reset);
        return;
      }
      const control = target && target.closest('button[data-control]');
      if (control) onControl(control);
    });
    $('#token-cancel').addEventListener('click', () => $('#token-dialog').close('cancel'));
    $('#operator-cancel').addEventListener('click', () => $('#operator-dialog').close('cancel'));
    $('#operator-form').addEventListener('submit', onControlSubmit);
    $('#audit-log').addEventListener('toggle', (e) => {
      if (e.currentTarget.open) loadAudit().catch(() => {});
    });
    $('#audit-reload').addEventListener('click', (e) => {
      const button = e.currentTarget;
      run(button, loadAudit);
    });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) {
        tick();
        refreshQuietly();
      }
    });
    loadHealth().catch((err) => {
      const root = $('#health-diagnostics-result');
      if (!state.skeleton) {
        root.replaceChildren(h('p', { class: 'loading', text: 'Could not load the health document (' + err.message + '); retrying…' }));
      }
    });
    connect();
    setInterval(tick, 1000);
    periodic();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
