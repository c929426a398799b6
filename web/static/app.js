// edged face library: plain JavaScript, no build step. Every piece of data
// reaches the page through textContent (never innerHTML): names are typed
// by users.
'use strict';

const state = {
  session: null,   // GET /api/session
  events: [],      // live events, newest first
  people: [],      // last overview, for the "add to" lists
  source: null,    // EventSource
  refreshTimer: 0,
};
const MAX_EVENTS = 200;

// h builds an element: h('a', {href: '#/'}, 'text', child, ...).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const $main = () => document.getElementById('main');

function show(...nodes) {
  // replaceChildren would print null and undefined as text.
  $main().replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined && n !== false));
}

function note(text, kind) {
  const box = document.getElementById('msg');
  const n = h('div', {class: 'note ' + (kind || 'ok')}, text);
  box.replaceChildren(n);
  if (kind !== 'err') setTimeout(() => { if (n.isConnected) n.remove(); }, 6000);
}

class APIError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(method, path, body) {
  const opts = {method, headers: {}, credentials: 'same-origin'};
  if (method !== 'GET') {
    opts.headers['X-CSRF-Token'] = (state.session && state.session.csrf) || '';
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body || {});
  }
  const res = await fetch(path, opts);
  let data = null;
  try { data = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) {
    const err = (data && data.error) || {};
    if (res.status === 401 && path !== '/api/login') { loginView(); }
    throw new APIError(res.status, err.code || 'error', err.message || res.statusText);
  }
  return data;
}

// run performs an action and reports its outcome.
async function run(button, fn, okText) {
  if (button) button.disabled = true;
  try {
    const r = await fn();
    if (okText) note(typeof okText === 'function' ? okText(r) : okText, 'ok');
    return r;
  } catch (e) {
    note(e.message || String(e), 'err');
    return undefined;
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}

const enc = encodeURIComponent;

function ago(t) {
  if (!t) return '';
  const s = (Date.now() - new Date(t).getTime()) / 1000;
  if (s < 0) return 'just now';
  if (s < 45) return Math.round(s) + ' s ago';
  if (s < 2700) return Math.round(s / 60) + ' min ago';
  if (s < 86400) return Math.round(s / 3600) + ' h ago';
  return Math.round(s / 86400) + ' d ago';
}

function when(t) {
  // Go's zero time (never recorded) is year 1.
  if (!t || new Date(t).getUTCFullYear() < 2000) return h('span', {}, 'an unknown time ago');
  return h('time', {datetime: t, title: new Date(t).toLocaleString()}, ago(t));
}

// picture is an <img>, or a box that says why there is none; an image
// that fails to load is replaced by the box too.
function picture(src, alt, why) {
  if (!src) return h('div', {class: 'nothumb', role: 'img', 'aria-label': alt + ': no picture'}, why || 'no picture');
  const img = h('img', {class: 'thumb', src, alt, loading: 'lazy'});
  img.addEventListener('error', () => img.replaceWith(picture('', alt, why || 'no picture kept')));
  return img;
}

// ---- views

function setNav(view) {
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === view);
}

async function route() {
  if (!state.session || !state.session.logged_in) return loginView();
  const hash = location.hash || '#/';
  const parts = hash.slice(2).split('/').map(decodeURIComponent);
  try {
    switch (parts[0]) {
      case '': setNav('faces'); return await facesView();
      case 'person': setNav('faces'); return await personView(parts[1]);
      case 'events': setNav('events'); return eventsView();
      case 'cameras': setNav('cameras'); return await camerasView();
      case 'model': setNav('model'); return await modelView();
      default: location.hash = '#/';
    }
  } catch (e) {
    if (!(e instanceof APIError && e.status === 401)) show(h('p', {class: 'note err'}, 'Could not load: ' + e.message));
  }
}

async function facesView() {
  const data = await api('GET', '/api/overview');
  state.people = data.people;
  const unknown = h('section', {id: 'unknown', 'aria-labelledby': 'unknown-h'},
    h('h2', {id: 'unknown-h'}, 'Unknown faces', h('span', {class: 'count'}, String(data.unknown.length))),
    data.unknown.length === 0
      ? h('p', {class: 'muted'}, 'No unknown faces. Faces that edged sees and does not know are grouped here, to be named.')
      : h('div', {class: 'list'}, data.unknown.map(unknownCard)));
  const people = h('section', {id: 'people', 'aria-labelledby': 'people-h'},
    h('h2', {id: 'people-h'}, 'People', h('span', {class: 'count'}, String(data.people.length))),
    data.people.length === 0
      ? h('p', {class: 'muted'}, 'Nobody is enrolled yet. Name an unknown face above, or use edged enroll.')
      : h('div', {class: 'grid'}, data.people.map(personCard)));
  show(unknown, people);
}

function personCard(p) {
  const href = '#/person/' + enc(p.id);
  const src = p.thumb ? `/api/people/${enc(p.id)}/samples/${enc(p.thumb)}/crop` : '';
  return h('article', {class: 'card person', 'data-person': p.id},
    h('a', {href, class: 'pic', 'aria-label': p.name}, picture(src, p.name, p.no_thumb)),
    h('h3', {}, h('a', {href}, p.name)),
    h('div', {class: 'small muted'}, p.samples + (p.samples === 1 ? ' sample' : ' samples')),
    h('div', {class: 'small muted'}, p.last_seen
      ? ['seen ', when(p.last_seen), p.last_camera ? ' on ' + p.last_camera : '']
      : 'not seen since edged started'));
}

function unknownCard(u) {
  const thumbs = u.thumbs.length
    ? u.thumbs.map((slot) => picture(`/api/unknown/${enc(u.id)}/crops/${slot}`, 'Unknown face ' + u.id, ''))
    : [picture('', 'Unknown face ' + u.id, u.no_thumb)];
  const nameIn = h('input', {name: 'name', required: true, maxlength: 128, autocomplete: 'off', placeholder: 'e.g. Carol'});
  const enrollBtn = h('button', {type: 'submit'}, 'Enroll');
  const enrollForm = h('form', {class: 'inline', 'aria-label': 'Enroll ' + u.id},
    h('label', {}, 'Name', nameIn), enrollBtn);
  enrollForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = nameIn.value.trim();
    if (!name) return;
    run(enrollBtn, () => api('POST', `/api/unknown/${enc(u.id)}/enroll`, {name}),
      (r) => `Enrolled ${r.name} (${r.samples_added} ${r.samples_added === 1 ? 'face' : 'faces'})`).then((r) => { if (r) route(); });
  });
  const sel = h('select', {name: 'person'}, h('option', {value: ''}, 'choose a person'),
    state.people.map((p) => h('option', {value: p.id}, p.name)));
  const addBtn = h('button', {type: 'submit', class: 'secondary'}, 'Add');
  const addForm = h('form', {class: 'inline', 'aria-label': 'Add ' + u.id + ' to a person'},
    h('label', {}, 'Add to', sel), addBtn);
  addForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!sel.value) return;
    run(addBtn, () => api('POST', `/api/unknown/${enc(u.id)}/enroll`, {person_id: sel.value}),
      (r) => `Added to ${r.name} (${r.samples_total} samples now)`).then((r) => { if (r) route(); });
  });
  if (state.people.length === 0) addForm.hidden = true;
  const dismiss = h('button', {type: 'button', class: 'danger'}, 'Dismiss');
  dismiss.addEventListener('click', () => {
    if (!confirm(`Dismiss ${u.id}? Its faces are deleted; if the person comes back, a new unknown face appears.`)) return;
    run(dismiss, () => api('DELETE', `/api/unknown/${enc(u.id)}`), `Dismissed ${u.id}`).then((r) => { if (r) route(); });
  });
  return h('article', {class: 'card unknown', 'data-unknown': u.id},
    h('div', {class: 'thumbs'}, thumbs),
    h('h3', {}, u.id),
    h('div', {class: 'small muted'}, `seen ${u.count} ${u.count === 1 ? 'time' : 'times'}`, u.camera ? ', last on ' + u.camera : ''),
    h('div', {class: 'small muted'}, 'first ', when(u.first_seen), ', last ', when(u.last_seen)),
    enrollForm, addForm, h('div', {class: 'actions'}, dismiss));
}

async function personView(id) {
  const p = await api('GET', '/api/people/' + enc(id));
  const src = p.thumb ? `/api/people/${enc(p.id)}/samples/${enc(p.thumb)}/crop` : '';
  const nameIn = h('input', {name: 'name', value: p.name, required: true, maxlength: 128, autocomplete: 'off'});
  const renameBtn = h('button', {type: 'submit'}, 'Rename');
  const rename = h('form', {class: 'inline', 'aria-label': 'Rename'}, h('label', {}, 'New name', nameIn), renameBtn);
  rename.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = nameIn.value.trim();
    if (!name || name === p.name) return;
    run(renameBtn, () => api('POST', `/api/people/${enc(p.id)}/rename`, {name}), (r) => `Renamed to ${r.name}`)
      .then((r) => { if (r) route(); });
  });
  const del = h('button', {type: 'button', class: 'danger'}, 'Delete person');
  del.addEventListener('click', () => {
    if (!confirm(`Delete ${p.name} and all ${p.samples} samples? edged will not recognise them any more.`)) return;
    run(del, () => api('DELETE', '/api/people/' + enc(p.id)), `Deleted ${p.name}`).then((r) => { if (r) location.hash = '#/'; });
  });
  const samples = p.sample_list.map((s) => sampleCard(p, s));
  const recog = state.events.filter((e) => e.type === 'recognized' && e.person_id === p.id);
  show(
    h('p', {}, h('a', {href: '#/'}, '← All faces')),
    h('div', {class: 'person-head'}, picture(src, p.name, p.no_thumb),
      h('div', {class: 'info'},
        h('h1', {}, p.name),
        h('dl', {class: 'kv small'},
          h('dt', {}, 'Samples'), h('dd', {}, String(p.samples)),
          h('dt', {}, 'Last seen'), h('dd', {}, p.last_seen ? [when(p.last_seen), p.last_camera ? ' on ' + p.last_camera : ''] : 'not since edged started'),
          h('dt', {}, 'Enrolled'), h('dd', {}, when(p.created)),
          h('dt', {}, 'Id'), h('dd', {}, p.id)),
        rename, h('div', {class: 'actions'}, del))),
    h('h2', {}, 'Samples', h('span', {class: 'count'}, String(p.sample_list.length))),
    h('p', {class: 'small muted'}, '“Remove” deletes a poor picture. “Not ' + p.name + '” also teaches edged that this face is somebody else.'),
    h('div', {class: 'grid'}, samples),
    h('h2', {}, 'Recent recognitions', h('span', {class: 'count'}, String(recog.length))),
    recog.length === 0
      ? h('p', {class: 'muted small'}, 'None since this page was opened.')
      : h('div', {class: 'list'}, recog.map(eventRow)));
}

function sampleCard(p, s) {
  const src = s.has_crop ? `/api/people/${enc(p.id)}/samples/${enc(s.id)}/crop` : '';
  const remove = h('button', {type: 'button', class: 'secondary'}, 'Remove');
  remove.addEventListener('click', () => {
    if (!confirm('Remove this sample?')) return;
    run(remove, () => api('DELETE', `/api/people/${enc(p.id)}/samples/${enc(s.id)}`), 'Sample removed').then((r) => { if (r) route(); });
  });
  const notThem = h('button', {type: 'button', class: 'danger'}, 'Not ' + p.name);
  notThem.addEventListener('click', () => {
    if (!confirm(`This face is not ${p.name}? The sample is removed and kept as a counter-example.`)) return;
    run(notThem, () => api('POST', `/api/people/${enc(p.id)}/feedback`, {sample_id: s.id}), 'Thanks: recorded').then((r) => { if (r) route(); });
  });
  return h('article', {class: 'card sample', 'data-sample': s.id},
    picture(src, 'Sample of ' + p.name, 'no face crop kept for this sample'),
    h('div', {class: 'small muted'}, `quality ${s.quality.toFixed(2)} · ${s.source}`),
    h('div', {class: 'small muted'}, when(s.created)),
    h('div', {class: 'actions'}, remove, notThem));
}

function describe(e) {
  switch (e.type) {
    case 'recognized': return [h('strong', {}, e.name || e.person_id), ' recognized', e.camera ? ' on ' + e.camera : '',
      e.confidence ? ` (${Math.round(e.confidence * 100)}%)` : ''];
    case 'unknown': return [h('strong', {}, 'Unknown face'), e.unknown_id ? ' ' + e.unknown_id : '', e.camera ? ' on ' + e.camera : ''];
    case 'enrolled': return [h('strong', {}, e.name), ' enrolled', e.state ? ' (from ' + e.state + ')' : ''];
    case 'deleted': return [h('strong', {}, e.name), ' deleted'];
    case 'camera': return ['Camera ', h('strong', {}, e.camera), ' ', h('span', {class: 'badge ' + e.state}, e.state), e.reason ? ': ' + e.reason : ''];
    case 'finetune': return ['Fine-tune ', e.state, e.progress ? ` ${Math.round(e.progress * 100)}%` : '', e.reason ? ': ' + e.reason : ''];
  }
  return [e.type];
}

function eventRow(e, fresh) {
  const hasFace = e.type === 'recognized' || e.type === 'unknown' || e.type === 'enrolled';
  const alt = e.type === 'recognized' ? e.name : (e.unknown_id || e.type);
  const actions = [];
  if (e.type === 'recognized' && e.track) {
    const b = h('button', {type: 'button', class: 'danger'}, 'Not ' + e.name);
    b.addEventListener('click', () => {
      if (!confirm(`The face on ${e.camera} (track ${e.track}) was not ${e.name}?`)) return;
      run(b, () => api('POST', `/api/people/${enc(e.person_id)}/feedback`, {camera: e.camera, track: e.track}),
        'Thanks: edged will not take this face for ' + e.name + ' again');
    });
    actions.push(b);
  }
  return h('article', {class: 'card event' + (fresh === true ? ' fresh' : ''), 'data-type': e.type, 'data-seq': String(e.seq)},
    hasFace ? picture(e.thumb, alt, 'no picture') : null,
    h('div', {class: 'body'}, h('div', {}, describe(e)),
      h('div', {class: 'small muted'}, when(e.time), e.track ? ` · track ${e.track}` : ''),
      actions.length ? h('div', {class: 'actions'}, actions) : null));
}

function eventsView() {
  const live = state.source && state.source.readyState === EventSource.OPEN;
  show(h('h1', {}, 'Events'),
    h('p', {class: 'small muted', id: 'live-state'}, live ? 'Live: new events appear at the top.' : 'Connecting to the live events…'),
    state.events.length === 0
      ? h('p', {class: 'muted', id: 'no-events'}, 'No events yet. Recognitions and unknown faces appear here as they happen.')
      : null,
    h('div', {class: 'list', id: 'events'}, state.events.map((e) => eventRow(e))));
}

async function camerasView() {
  const cams = await api('GET', '/api/cameras');
  show(h('h1', {}, 'Cameras'),
    cams.length === 0 ? h('p', {class: 'muted'}, 'No camera is running.') : null,
    h('div', {class: 'list'}, cams.map(cameraCard)));
}

function cameraCard(c) {
  const frameBox = h('div', {});
  const btn = h('button', {type: 'button', class: 'secondary'}, 'Show latest frame');
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      const res = await fetch(`/api/cameras/${enc(c.name)}/frame`, {credentials: 'same-origin'});
      if (!res.ok) {
        let msg = res.statusText;
        try { msg = (await res.json()).error.message; } catch (e) { /* keep statusText */ }
        frameBox.replaceChildren(h('p', {class: 'small muted'}, 'No frame: ' + msg));
        return;
      }
      const url = URL.createObjectURL(await res.blob());
      const img = h('img', {class: 'frame', alt: 'Latest frame of ' + c.name, src: url});
      img.addEventListener('load', () => URL.revokeObjectURL(url));
      frameBox.replaceChildren(img, h('div', {class: 'small muted'}, 'taken ', when(new Date().toISOString())));
    } finally { btn.disabled = false; }
  });
  return h('article', {class: 'card camera', 'data-camera': c.name},
    h('h3', {}, c.name, ' ', h('span', {class: 'badge ' + c.state}, c.state)),
    c.reason ? h('div', {class: 'small'}, c.reason) : null,
    h('dl', {class: 'kv small'}, h('dt', {}, 'Frames/s'), h('dd', {}, c.fps.toFixed(1)),
      h('dt', {}, 'Dropped'), h('dd', {}, String(c.drops))),
    h('div', {class: 'actions'}, btn), frameBox);
}

function metric(m, key) {
  if (!m || m[key] === undefined) return '–';
  const b = m['before_' + key];
  return m[key].toFixed(3) + (b !== undefined ? ` (before ${b.toFixed(3)})` : '');
}

async function modelView() {
  const m = await api('GET', '/api/model');
  const ft = m.finetune;
  const start = h('button', {type: 'button', disabled: !ft.enabled || (ft.state === 'started' || ft.state === 'progress')}, 'Start fine-tune');
  start.addEventListener('click', () => run(start, () => api('POST', '/api/model/finetune'), (r) => 'Fine-tune started: ' + r.job_id).then(() => route()));
  const rollback = h('button', {type: 'button', class: 'secondary', disabled: !m.active_head}, 'Roll back');
  rollback.addEventListener('click', () => {
    if (!confirm('Go back to the previous head version?')) return;
    run(rollback, () => api('POST', '/api/model/rollback'), (r) => r.active_head ? 'Active head: ' + r.active_head : 'No head active: the frozen network').then(() => route());
  });
  const heads = m.heads.slice().reverse().map((hd) => {
    const act = h('button', {type: 'button', class: 'secondary', disabled: hd.active || !hd.usable}, hd.active ? 'Active' : 'Activate');
    act.addEventListener('click', () => run(act, () => api('POST', '/api/model/activate', {id: hd.id}), 'Active head: ' + hd.id).then(() => route()));
    return h('article', {class: 'card head', 'data-head': hd.id},
      h('h3', {}, hd.id.slice(0, 12), ' ', hd.active ? h('span', {class: 'badge up'}, 'active') : null,
        !hd.usable ? h('span', {class: 'badge warn'}, 'not usable') : null),
      h('dl', {class: 'kv small'},
        h('dt', {}, 'Created'), h('dd', {}, when(hd.created)),
        h('dt', {}, 'Backbone'), h('dd', {}, hd.backbone),
        h('dt', {}, 'DIR @ FAR 1%'), h('dd', {}, metric(hd.metrics, 'dir_at_far_0.01')),
        h('dt', {}, 'Unseen AUC'), h('dd', {}, metric(hd.metrics, 'unseen_auc')),
        hd.note ? [h('dt', {}, 'Note'), h('dd', {}, hd.note)] : null,
        hd.why ? [h('dt', {}, 'Why not'), h('dd', {}, hd.why)] : null),
      h('div', {class: 'actions'}, act));
  });
  const running = ft.state === 'started' || ft.state === 'progress';
  show(h('h1', {}, 'Model'),
    h('div', {class: 'card'}, h('dl', {class: 'kv'},
      h('dt', {}, 'Backbone'), h('dd', {}, m.backbone),
      h('dt', {}, 'Active head'), h('dd', {}, m.active_head || 'none (the frozen network)'),
      h('dt', {}, 'Fine-tune'), h('dd', {}, !ft.enabled ? 'off (finetune.enabled: false)'
        : ft.state ? [ft.state, ft.epochs ? ` · epoch ${ft.epoch || 0} of ${ft.epochs}` : '', ft.message ? ': ' + ft.message : '']
          : 'idle')),
    running ? h('progress', {max: '1', value: String(ft.progress || 0)}) : null,
    h('div', {class: 'actions'}, start, rollback)),
    h('h2', {}, 'Head versions', h('span', {class: 'count'}, String(m.heads.length))),
    m.heads.length === 0 ? h('p', {class: 'muted'}, 'No fine-tuned head yet: matching uses the frozen network.') : null,
    h('div', {class: 'list'}, heads));
}

// ---- login

function loginView() {
  document.getElementById('nav').hidden = true;
  document.getElementById('logout').hidden = true;
  const s = state.session || {};
  const user = h('input', {name: 'user', autocomplete: 'username', required: s.auth !== 'token'});
  const pass = h('input', {name: 'password', type: 'password', autocomplete: 'current-password'});
  const token = h('input', {name: 'token', type: 'password', autocomplete: 'off'});
  const btn = h('button', {type: 'submit'}, 'Log in');
  const form = h('form', {},
    s.auth !== 'token' ? [h('label', {}, 'User', user), h('label', {}, 'Password', pass)] : null,
    s.auth && s.auth.includes('token') ? h('label', {}, 'Token', token) : null,
    btn);
  if (s.auth === 'token') user.required = false;
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = token.value ? {token: token.value} : {user: user.value, password: pass.value};
    const r = await run(btn, () => api('POST', '/api/login', body));
    if (r) { state.session = r; document.getElementById('msg').replaceChildren(); start(); }
  });
  show(h('section', {class: 'login card'}, h('h1', {}, 'Log in to edged'),
    s.insecure ? h('p', {class: 'warnbox'}, 'This connection is not encrypted: the password crosses the network readable. Set http.tls_cert and http.tls_key.') : null,
    form));
  (s.auth === 'token' ? token : user).focus();
}

// ---- live events

function connectEvents() {
  if (state.source) state.source.close();
  const es = new EventSource('/api/events/stream');
  state.source = es;
  const dot = document.getElementById('live');
  es.addEventListener('open', () => {
    dot.classList.add('on'); dot.title = 'live events: connected';
    const ls = document.getElementById('live-state');
    if (ls) ls.textContent = 'Live: new events appear at the top.';
  });
  es.addEventListener('error', () => { dot.classList.remove('on'); dot.title = 'live events: reconnecting'; });
  es.addEventListener('message', (m) => {
    let e;
    try { e = JSON.parse(m.data); } catch (err) { return; }
    if (state.events.some((x) => x.seq === e.seq)) return;
    state.events.unshift(e);
    state.events.length = Math.min(state.events.length, MAX_EVENTS);
    const list = document.getElementById('events');
    if (list) {
      const none = document.getElementById('no-events');
      if (none) none.remove();
      list.prepend(eventRow(e, true));
    }
    // The start page follows what the events change (debounced).
    if ((location.hash || '#/') === '#/' && ['unknown', 'enrolled', 'deleted', 'recognized'].includes(e.type)) {
      clearTimeout(state.refreshTimer);
      state.refreshTimer = setTimeout(() => {
        const a = document.activeElement;
        if (!(a && (a.tagName === 'INPUT' || a.tagName === 'SELECT') && a.value)) route();
      }, 1500);
    }
  });
}

async function start() {
  document.getElementById('nav').hidden = false;
  document.getElementById('logout').hidden = state.session.auth === 'none';
  connectEvents();
  await route();
}

async function boot() {
  document.getElementById('logout').addEventListener('click', async () => {
    try { await api('POST', '/api/logout'); } catch (e) { /* logged out anyway */ }
    if (state.source) state.source.close();
    state.session = {auth: state.session.auth, logged_in: false};
    loginView();
  });
  window.addEventListener('hashchange', () => {
    const box = document.getElementById('msg');
    if (!box.querySelector('.err')) box.replaceChildren(); // an error stays until the next action
    route();
  });
  try {
    state.session = await api('GET', '/api/session');
  } catch (e) {
    show(h('p', {class: 'note err'}, 'edged does not answer: ' + e.message));
    return;
  }
  if (!state.session.logged_in) return loginView();
  start();
}

boot();
