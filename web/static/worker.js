// healproxy diagnostics UI: the fetch worker. It reads the health and
// history documents off the page's main thread (with 10,000 providers the
// health document is several megabytes: parsing it on the main thread
// would freeze the page) and sends the page only what changed since its
// last answer, in small parts, so that no task of the page is long.
//
// Messages from the page:
//   {type: 'health', id, full}       read /api/diagnostics/health; full: forget what was sent
//   {type: 'history', id, keys}      read /api/diagnostics/history; keys: [[kind, key], …] to keep, or null for all
// Answers:
//   {type: 'health-part', id, kind, entries}        changed entries, at most PART per message
//   {type: 'health', id, timestamp, keys, removed}  the end; keys: {provider: [...], model: [...]} in
//                                                   configuration order when it changed, else null
//   {type: 'history', id, interval_seconds, buckets, entries, unfiltered}
//                                                   unfiltered: the server ignored ?kind=&key=
//   {type: 'error', id, message}
'use strict';

const PART = 400;
const KINDS = ['provider', 'model'];
const sent = { provider: new Map(), model: new Map() }; // key -> JSON of the entry last sent
const order = { provider: [], model: [] };

const keyOf = (kind, e) => (kind === 'provider' ? e.provider_id : e.model_key);

async function getJSON(url) {
  const res = await fetch(url, { cache: 'no-store', headers: { Accept: 'application/json' } });
  if (!res.ok) throw new Error(url + ': HTTP ' + res.status);
  return res.json();
}

function sameOrder(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function health(id, full) {
  const doc = await getJSON('/api/diagnostics/health');
  if (full) for (const kind of KINDS) sent[kind].clear();
  let keysChanged = false;
  const keys = {};
  const removed = [];
  for (const kind of KINDS) {
    const part = kind === 'provider' ? doc.providers : doc.models;
    const list = (part && Array.isArray(part.entries)) ? part.entries : [];
    const seen = new Set();
    const ks = [];
    const fresh = sent[kind].size === 0;
    let changed = [];
    const post = () => {
      postMessage({ type: 'health-part', id, kind, entries: changed });
      changed = [];
    };
    for (const e of list) {
      if (!e || typeof e !== 'object') continue;
      const key = keyOf(kind, e);
      if (typeof key !== 'string' || seen.has(key)) continue;
      seen.add(key);
      ks.push(key);
      if (fresh) {
        // the first read: send at once, remember after
        changed.push(e);
      } else {
        const json = JSON.stringify(e);
        if (sent[kind].get(key) === json) continue;
        sent[kind].set(key, json);
        changed.push(e);
      }
      if (changed.length === PART) post();
    }
    if (changed.length) post();
    if (fresh) {
      for (const e of list) {
        const key = e && typeof e === 'object' ? keyOf(kind, e) : undefined;
        if (typeof key === 'string' && !sent[kind].has(key)) sent[kind].set(key, JSON.stringify(e));
      }
    }
    for (const key of sent[kind].keys()) {
      if (!seen.has(key)) {
        sent[kind].delete(key);
        removed.push([kind, key]);
      }
    }
    if (full || !sameOrder(order[kind], ks)) keysChanged = true;
    order[kind] = ks;
    keys[kind] = ks;
  }
  postMessage({ type: 'health', id, timestamp: typeof doc.timestamp === 'string' ? doc.timestamp : '',
    keys: keysChanged ? keys : null, removed });
}

async function history(id, keys) {
  let url = '/api/diagnostics/history';
  // One entry: ask for it alone (a server that filters answers less;
  // one that does not answers everything, filtered below).
  if (keys && keys.length === 1) url += '?kind=' + encodeURIComponent(keys[0][0]) + '&key=' + encodeURIComponent(keys[0][1]);
  const doc = await getJSON(url);
  let entries = Array.isArray(doc.entries) ? doc.entries : [];
  let unfiltered = false;
  if (keys) {
    const want = new Set(keys.map(([kind, key]) => kind + '\u0000' + key));
    const all = entries.length;
    entries = entries.filter((e) => e && want.has(e.kind + '\u0000' + e.key));
    unfiltered = entries.length < all; // the server sent every entry's
  }
  postMessage({ type: 'history', id, interval_seconds: doc.interval_seconds, buckets: doc.buckets, entries, unfiltered });
}

onmessage = (msg) => {
  const m = msg.data || {};
  const job = m.type === 'health' ? health(m.id, !!m.full) : m.type === 'history' ? history(m.id, m.keys || null) : null;
  if (!job) return;
  job.catch((err) => postMessage({ type: 'error', id: m.id, message: (err && err.message) || String(err) }));
};
