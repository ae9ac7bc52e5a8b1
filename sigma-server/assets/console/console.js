// Sigma console: a single page over the public API of the listener it is served from.
// The API token lives in sessionStorage and goes only into Authorization headers, never into
// a URL. Live state comes from GET /v1/events/stream (read with fetch, because EventSource
// cannot send headers), resumed with Last-Event-ID after a drop.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = 'sigma.console.token';
  const LIVE = ['connected', 'preview', 'active', 'reconnecting'];
  let token = sessionStorage.getItem(TOKEN_KEY);

  const state = {
    streams: new Map(),      // id → live stream, as listed and then as the events say
    targets: new Map(),      // id → simulcast target
    listeners: new Set(),    // (event) → void, for the view on screen
    events: null,            // AbortController of the event stream
    lastEventId: null,
    teardown: null,          // the view on screen's clean-up
  };

  // ---- API ---------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      const e = body && body.error;
      super(e ? `${e.message} (${e.code})` : `HTTP ${status}`);
      this.status = status;
      this.code = e ? e.code : null;
    }
  }

  async function call(method, path, body, withToken = token) {
    const headers = { Authorization: `Bearer ${withToken}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, {
      method, headers, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
    if (!r.ok) {
      if (r.status === 401 && withToken === token && token) signOut('The server no longer accepts this token. Sign in again.');
      throw new ApiError(r.status, json);
    }
    return json;
  }

  // Every page of a list (bounded: `max` pages of 100).
  async function all(path, max = 20) {
    const out = [];
    let cursor = null;
    for (let i = 0; i < max; i++) {
      const sep = path.includes('?') ? '&' : '?';
      const page = await call('GET', `${path}${sep}limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      out.push(...page.data);
      cursor = page.next_cursor;
      if (!cursor) break;
    }
    return out;
  }

  // ---- helpers -----------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const badge = (status) => el('span', { class: `status ${status}`, text: status });
  function duration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return h ? `${h}h ${String(m).padStart(2, '0')}m ${String(r).padStart(2, '0')}s` : m ? `${m}m ${String(r).padStart(2, '0')}s` : `${r}s`;
  }
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : '–');
  const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour12: false });
  function uptime(s) {
    return LIVE.includes(s.status) ? duration(Date.now() - Date.parse(s.status_changed_at)) : '';
  }
  // The RTMP server URL and the key, from a stream's full ingest URL.
  function splitIngest(s) {
    const url = s.ingest ? s.ingest.rtmp : '';
    const key = s.stream_key || '';
    const server = key && url.endsWith(`/${key}`) ? url.slice(0, -key.length - 1) : url;
    return { server, key, url };
  }
  async function copy(text, button) {
    try {
      if (navigator.clipboard && window.isSecureContext) await navigator.clipboard.writeText(text);
      else {
        const t = el('textarea', {}, text);
        document.body.append(t); t.select(); document.execCommand('copy'); t.remove();
      }
      const was = button.textContent; button.textContent = 'Copied'; setTimeout(() => { button.textContent = was; }, 1200);
    } catch (e) { button.textContent = 'Copy failed'; }
  }
  function showOnly(id) {
    for (const s of document.querySelectorAll('main > section')) s.hidden = s.id !== id;
  }

  // ---- sign-in -----------------------------------------------------------------------

  function signOut(message) {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    if (state.events) state.events.abort();
    state.events = null; state.lastEventId = null;
    state.streams.clear(); state.targets.clear();
    if (state.teardown) { state.teardown(); state.teardown = null; }
    $('nav').hidden = true; $('sign-out').hidden = true; $('live').hidden = true;
    $('sign-in-error').textContent = message || '';
    $('token').value = '';
    showOnly('sign-in');
  }

  $('sign-in-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const candidate = $('token').value.trim();
    $('sign-in-error').textContent = '';
    try {
      await call('GET', '/v1/live-streams?limit=1', undefined, candidate);
    } catch (err) {
      $('sign-in-error').textContent = err.status === 401 ? 'That token was refused.'
        : err.status === 429 ? 'Too many failed attempts from this address; wait a minute.'
          : `Sign-in failed: ${err.message}`;
      return;
    }
    token = candidate;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token').value = '';
    signedIn();
  });
  $('sign-out').addEventListener('click', () => signOut(''));

  function signedIn() {
    $('nav').hidden = false; $('sign-out').hidden = false; $('live').hidden = false;
    followEvents();
    if (!location.hash || location.hash === '#') location.hash = '#/streams';
    else route();
  }

  // ---- the event stream ----------------------------------------------------------------

  function setLive(on) { $('live').classList.toggle('on', on); }

  async function followEvents() {
    if (state.events) state.events.abort();
    const ctl = new AbortController();
    state.events = ctl;
    let delay = 1000;
    while (!ctl.signal.aborted) {
      try {
        const headers = { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' };
        let url = '/v1/events/stream';
        const resumed = state.lastEventId !== null;
        if (resumed) headers['Last-Event-ID'] = state.lastEventId;
        else url += '?after=now';
        const r = await fetch(url, { headers, signal: ctl.signal, cache: 'no-store' });
        if (r.status === 401) { signOut('The server no longer accepts this token. Sign in again.'); return; }
        if (!r.ok) throw new Error(`event stream: HTTP ${r.status}`);
        setLive(true);
        delay = 1000;
        // Started over from "now": whatever happened while disconnected is read again.
        if (!resumed) refreshView();
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let end;
          while ((end = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            let id = null, data = '';
            for (const line of block.split('\n')) {
              if (line.startsWith('id: ')) id = line.slice(4);
              else if (line.startsWith('data: ')) data += line.slice(6);
            }
            if (id && data) {
              state.lastEventId = id;
              try { apply(JSON.parse(data)); } catch (err) { console.warn('bad event', err); }
            }
          }
        }
      } catch (err) {
        if (ctl.signal.aborted) return;
      }
      setLive(false);
      await sleep(delay);
      delay = Math.min(delay * 2, 15000);
    }
  }

  // One event: the resource as it became, then whatever view is on screen.
  function apply(ev) {
    if (ev.object.type === 'live_stream') {
      if (ev.type === 'live_stream.deleted') state.streams.delete(ev.object.id);
      else {
        const old = state.streams.get(ev.object.id) || {};
        const s = { ...old, ...ev.data };
        if (!LIVE.includes(s.status)) s.ingest_stats = null;
        state.streams.set(ev.object.id, s);
      }
    } else if (ev.object.type === 'simulcast_target') {
      const old = state.targets.get(ev.object.id);
      if (old || ev.data) state.targets.set(ev.object.id, { ...(old || {}), ...ev.data });
    }
    for (const f of state.listeners) f(ev);
  }

  // ---- router ------------------------------------------------------------------------

  let refreshView = () => {};
  function route() {
    if (!token) return signOut('');
    if (state.teardown) { state.teardown(); state.teardown = null; }
    state.listeners.clear();
    const hash = location.hash.replace(/^#\/?/, '');
    const [page, id] = hash.split('/');
    for (const a of document.querySelectorAll('[data-nav]')) {
      a.classList.toggle('current', a.dataset.nav === (page === 'webhooks' ? 'webhooks' : 'streams'));
    }
    if (page === 'webhooks') webhooksView();
    else if (page === 'streams' && id) streamView(decodeURIComponent(id));
    else streamsView();
  }
  window.addEventListener('hashchange', route);

  // ---- the stream list ---------------------------------------------------------------

  function streamsView() {
    showOnly('view-streams');
    const rows = $('stream-rows');
    const render = () => {
      const list = [...state.streams.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
      rows.replaceChildren(...list.map((s) => el('tr', {
        class: 'link', 'data-id': s.id, onclick: () => { location.hash = `#/streams/${s.id}`; },
      },
      el('td', { text: s.name || '(unnamed)' }),
      el('td', {}, badge(s.status)),
      el('td', { class: 'uptime', text: uptime(s) }),
      el('td', { text: s.latency_mode }),
      el('td', { text: s.playback_policy }),
      el('td', { class: 'id', text: s.id }),
      el('td', { text: when(s.created_at) }))));
      $('streams-empty').hidden = list.length > 0;
    };
    const load = async () => {
      try {
        const list = await all('/v1/live-streams');
        const seen = new Set(list.map((s) => s.id));
        for (const id of [...state.streams.keys()]) if (!seen.has(id)) state.streams.delete(id);
        for (const s of list) state.streams.set(s.id, s);
        $('streams-error').textContent = '';
      } catch (err) { $('streams-error').textContent = `Could not list live streams: ${err.message}`; }
      render();
    };
    state.listeners.add((ev) => { if (ev.object.type === 'live_stream') render(); });
    refreshView = load;
    const tick = setInterval(() => {
      for (const tr of rows.children) {
        const s = state.streams.get(tr.dataset.id);
        if (s) tr.querySelector('.uptime').textContent = uptime(s);
      }
    }, 1000);
    state.teardown = () => { clearInterval(tick); refreshView = () => {}; };
    render();
    load();
  }

  // ---- create dialog -------------------------------------------------------------------

  const dialog = $('create-dialog');
  let created = null;
  $('new-stream').addEventListener('click', () => {
    $('create-form').hidden = false; $('created').hidden = true;
    $('create-error').textContent = '';
    dialog.showModal();
    $('c-name').focus();
  });
  $('create-cancel').addEventListener('click', () => dialog.close());
  $('created-close').addEventListener('click', () => dialog.close());
  $('created-open').addEventListener('click', () => {
    dialog.close();
    if (created) location.hash = `#/streams/${created.id}`;
  });
  dialog.addEventListener('close', () => {
    for (const id of ['k-server', 'k-key', 'k-url', 'ffmpeg-cmd']) $(id).textContent = '';
  });
  $('create-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = {
      latency_mode: $('c-latency').value,
      playback_policy: $('c-policy').value,
      reconnect_window: Number($('c-window').value || 0),
      auto_start: $('c-auto').checked,
    };
    const name = $('c-name').value.trim();
    if (name) body.name = name;
    $('create-submit').disabled = true;
    try {
      created = await call('POST', '/v1/live-streams', body);
    } catch (err) {
      $('create-error').textContent = err.message;
      return;
    } finally { $('create-submit').disabled = false; }
    state.streams.set(created.id, created);
    for (const f of state.listeners) f({ object: { type: 'live_stream', id: created.id }, type: 'local' });
    const { server, key, url } = splitIngest(created);
    $('k-server').textContent = server;
    $('k-key').textContent = key;
    $('k-url').textContent = url;
    const gop = created.latency_mode === 'normal' ? 2 : 1;
    const obs = [
      ['Service', 'Custom…'], ['Server', server], ['Stream Key', key],
      ['Output Mode', 'Advanced'], ['Encoder', 'x264 (or your hardware H.264 encoder)'],
      ['Rate Control', 'CBR, e.g. 2500–6000 Kbps'], ['Keyframe Interval', `${gop} s`],
      ['CPU Usage Preset', 'veryfast'], ['Profile', 'high (main for older players)'],
      ['Tune', created.latency_mode === 'ultra-low' ? 'zerolatency' : 'none (zerolatency for the lowest latency)'],
      ['Audio', 'AAC, 48 kHz, 128–160 Kbps'],
    ];
    $('obs').replaceChildren(...obs.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
    $('ffmpeg-cmd').textContent = `ffmpeg -re -i input.mp4 -c:v libx264 -preset veryfast -tune zerolatency -g ${30 * gop} -keyint_min ${30 * gop} \\\n  -b:v 3000k -c:a aac -b:a 128k -f flv "${url}"`;
    $('create-form').hidden = true; $('created').hidden = false;
  });
  for (const b of document.querySelectorAll('[data-copy]')) {
    b.addEventListener('click', () => copy($(b.dataset.copy).textContent, b));
  }

  // ---- one stream ----------------------------------------------------------------------

  function streamView(id) {
    showOnly('view-stream');
    let s = state.streams.get(id) || null;
    let player = null;
    let showKey = false;
    const timeline = new Map(); // event id → event
    $('s-error').textContent = '';
    $('target-error').textContent = '';
    $('timeline').replaceChildren();
    $('target-rows').replaceChildren();

    const targetsOf = () => [...state.targets.values()].filter((t) => t.live_stream_id === id)
      .sort((a, b) => (a.created_at < b.created_at ? -1 : 1));

    function renderHeader() {
      if (!s) return;
      $('s-name').textContent = s.name || '(unnamed)';
      $('s-status').className = `status ${s.status}`;
      $('s-status').textContent = s.status;
      $('s-uptime').textContent = LIVE.includes(s.status) ? `${s.status} for ${uptime(s)}` : '';
      const allowed = {
        start: s.status === 'preview',
        complete: LIVE.includes(s.status),
        kick: ['connected', 'preview', 'active'].includes(s.status),
        disable: s.status !== 'disabled',
        enable: s.status === 'disabled',
        'reset-stream-key': true,
        delete: true,
      };
      for (const b of $('s-actions').querySelectorAll('button')) b.disabled = !allowed[b.dataset.action];
      const st = s.ingest_stats;
      $('st-bitrate').textContent = st ? `${(st.bitrate / 1000).toFixed(0)} kbit/s` : '–';
      $('st-fps').textContent = st ? `${st.fps.toFixed(1)} fps` : '–';
      $('st-keyint').textContent = st && st.keyframe_interval !== null ? `${st.keyframe_interval.toFixed(2)} s` : '–';
      $('st-last').textContent = st ? clock(st.last_frame_at) : '–';
    }

    function renderDetails() {
      if (!s) return;
      const pb = s.playback;
      const rows = [
        ['Id', s.id], ['Latency', s.latency_mode], ['Playback policy', s.playback_policy],
        ['Go live at once', s.auto_start ? 'yes' : 'no (preview until Start)'],
        ['Reconnect window', `${s.reconnect_window} s`], ['Ladder', s.ladder || 'none (transmux)'],
        ['Playback ids', (s.playback_ids || []).map((p) => `${p.id} (${p.policy})`).join(', ') || 'none'],
        ['Player', pb ? pb.player : '–'], ['HLS', pb ? pb.hls : '–'], ['Created', when(s.created_at)],
      ];
      $('s-details').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
      const { server, key } = splitIngest(s);
      const keyCode = el('code', { class: 'secret', text: showKey ? key : '•'.repeat(12) });
      $('s-ingest').replaceChildren(
        el('h3', { text: 'Publish' }),
        el('div', { class: 'copyrow' }, el('span', { class: 'label', text: 'Server' }), el('code', { text: server }),
          el('button', { type: 'button', onclick: (e) => copy(server, e.target) }, 'Copy')),
        el('div', { class: 'copyrow' }, el('span', { class: 'label', text: 'Stream key' }), keyCode,
          el('span', {},
            el('button', { type: 'button', onclick: () => { showKey = !showKey; renderDetails(); } }, showKey ? 'Hide' : 'Show'),
            ' ',
            el('button', { type: 'button', onclick: (e) => copy(key, e.target) }, 'Copy'))));
    }

    function renderTargets() {
      $('target-rows').replaceChildren(...targetsOf().map((t) => el('tr', { 'data-id': t.id },
        el('td', { class: 'id', text: t.url }),
        el('td', {}, badge(t.status)),
        el('td', { class: t.error ? 'bad' : '', text: t.error || '' }),
        el('td', {}, el('button', {
          type: 'button',
          onclick: async () => {
            if (!confirm(`Stop restreaming to ${t.url} and delete the target?`)) return;
            try {
              await call('DELETE', `/v1/live-streams/${id}/simulcast-targets/${t.id}`);
              state.targets.delete(t.id); renderTargets();
            } catch (err) { $('target-error').textContent = err.message; }
          },
        }, 'Delete')))));
    }

    function describe(ev) {
      const short = ev.type.replace(/^live_stream\./, '');
      if (ev.object.type === 'simulcast_target') {
        return `${short} → ${ev.data.url}${ev.data.error ? ` (${ev.data.error})` : ''}`;
      }
      return short;
    }
    function renderTimeline() {
      const list = [...timeline.values()].sort((a, b) => (a.timestamp < b.timestamp ? 1 : a.timestamp > b.timestamp ? -1 : 0));
      $('timeline').replaceChildren(...list.slice(0, 300).map((ev) => el('li', { 'data-type': ev.type },
        el('time', { datetime: ev.timestamp, text: clock(ev.timestamp) }),
        el('span', { text: describe(ev) }))));
    }

    // The preview: hls.js with the token on the multivariant request only (the media
    // playlists it names carry a short media token in their path, so no header is needed).
    function stopPreview() {
      if (player) { player.hls.destroy(); clearTimeout(player.retry); player = null; }
      const v = $('preview');
      v.removeAttribute('src'); v.load();
    }
    function updatePreview() {
      const note = $('preview-note');
      const playable = s && ['preview', 'active', 'reconnecting'].includes(s.status);
      if (!s || !s.playback) { stopPreview(); note.textContent = 'This stream has no playback id.'; return; }
      if (!playable) {
        stopPreview();
        note.textContent = s.status === 'connected' ? 'A publisher is connected; waiting for the first segment…' : 'Not live. Publish to the ingest URL to see it here.';
        return;
      }
      note.textContent = s.status === 'preview' ? 'Preview: only operators see this until you press Start.' : '';
      const url = s.playback.hls;
      if (player && player.url === url) return;
      stopPreview();
      if (!window.Hls || !Hls.isSupported()) { note.textContent = 'This browser cannot play HLS here (no Media Source Extensions).'; return; }
      const path = new URL(url, location.href).pathname;
      const hls = new Hls({
        lowLatencyMode: s.latency_mode === 'ultra-low',
        xhrSetup: (xhr, u) => {
          if (new URL(u, location.href).pathname === path) {
            xhr.open('GET', u, true);
            xhr.setRequestHeader('Authorization', `Bearer ${token}`);
          }
        },
      });
      player = { hls, url, retry: null };
      const mine = player;
      hls.on(Hls.Events.ERROR, (_e, d) => {
        if (!d.fatal || player !== mine) return;
        note.textContent = `Player: ${d.details}; retrying…`;
        mine.retry = setTimeout(() => { if (player === mine) { stopPreview(); updatePreview(); } }, 2000);
      });
      hls.on(Hls.Events.MANIFEST_PARSED, () => { $('preview').play().catch(() => {}); });
      hls.loadSource(url);
      hls.attachMedia($('preview'));
    }

    function render() { renderHeader(); renderDetails(); updatePreview(); }

    async function loadStream() {
      try {
        s = await call('GET', `/v1/live-streams/${encodeURIComponent(id)}`);
        state.streams.set(id, s);
        $('s-error').textContent = '';
      } catch (err) {
        $('s-error').textContent = err.status === 404 ? 'No such live stream (deleted?).' : `Could not load: ${err.message}`;
        if (err.status === 404) { s = null; stopPreview(); }
        return;
      }
      render();
    }
    async function loadAll() {
      await loadStream();
      if (!s) return;
      try {
        // At most 10 per stream, in one answer.
        const targets = (await call('GET', `/v1/live-streams/${id}/simulcast-targets`)).data;
        for (const t of targetsOf()) state.targets.delete(t.id);
        for (const t of targets) state.targets.set(t.id, t);
        renderTargets();
        const objects = [id, ...targets.map((t) => t.id)];
        for (const o of objects) {
          for (const ev of await all(`/v1/events?object_id=${encodeURIComponent(o)}`, 10)) timeline.set(ev.id, ev);
        }
        renderTimeline();
      } catch (err) { $('s-error').textContent = `Could not load: ${err.message}`; }
    }

    state.listeners.add((ev) => {
      const mine = ev.object.id === id || (ev.data && ev.data.live_stream_id === id);
      if (!mine) return;
      if (ev.type === 'live_stream.deleted') {
        s = null; stopPreview();
        $('s-error').textContent = 'This live stream was deleted.';
      } else if (ev.object.type === 'live_stream') {
        s = state.streams.get(id) || s;
        render();
      } else renderTargets();
      if (ev.id) { timeline.set(ev.id, ev); renderTimeline(); }
    });

    const onAction = async (e) => {
      const b = e.target.closest('button[data-action]');
      if (!b || !s) return;
      const action = b.dataset.action;
      if (action === 'delete' && !confirm(`Delete “${s.name || s.id}”? Its publisher is disconnected and its URLs stop working.`)) return;
      if (action === 'reset-stream-key' && !confirm('Make a new stream key? Encoders using the old one can no longer publish.')) return;
      $('s-error').textContent = '';
      b.disabled = true;
      try {
        if (action === 'delete') {
          await call('DELETE', `/v1/live-streams/${id}`);
          state.streams.delete(id);
          location.hash = '#/streams';
          return;
        }
        const out = await call('POST', `/v1/live-streams/${id}/${action}`);
        // The answer, unless the event stream brought a later status already.
        if (out && out.id === id && !(s.status_changed_at > out.status_changed_at)) {
          s = { ...s, ...out }; state.streams.set(id, s);
        }
        if (action === 'reset-stream-key') showKey = true;
        render();
      } catch (err) {
        $('s-error').textContent = `${action}: ${err.message}`;
        renderHeader();
      }
    };
    $('s-actions').addEventListener('click', onAction);

    const onTarget = async (e) => {
      e.preventDefault();
      $('target-error').textContent = '';
      try {
        const t = await call('POST', `/v1/live-streams/${id}/simulcast-targets`, { url: $('target-url').value.trim(), stream_key: $('target-key').value });
        delete t.stream_key;
        // Its first status change may have come over the event stream already.
        if (!state.targets.has(t.id)) state.targets.set(t.id, t);
        $('target-url').value = ''; $('target-key').value = '';
        renderTargets();
      } catch (err) { $('target-error').textContent = err.message; }
    };
    $('target-form').addEventListener('submit', onTarget);

    // The figures of ingest_stats are momentary (not events): read every 2 s.
    const poll = setInterval(() => { if (s) loadStream(); }, 2000);
    const tick = setInterval(renderHeader, 1000);
    refreshView = loadAll;
    state.teardown = () => {
      clearInterval(poll); clearInterval(tick); stopPreview();
      $('s-actions').removeEventListener('click', onAction);
      $('target-form').removeEventListener('submit', onTarget);
      refreshView = () => {};
    };
    if (s) render();
    loadAll();
  }

  // ---- webhooks ----------------------------------------------------------------------

  function webhooksView() {
    showOnly('view-webhooks');
    const load = async () => {
      try {
        const hooks = await all('/v1/webhooks', 5);
        const cards = [];
        for (const w of hooks) {
          const page = await call('GET', `/v1/webhooks/${w.id}/deliveries?limit=10`);
          const failures = page.data.filter((d) => d.outcome !== 'delivered').length;
          cards.push(el('div', { class: 'card webhook', 'data-id': w.id },
            el('div', { class: 'head' }, el('code', { text: w.url }), badge(w.status),
              el('span', { class: 'muted', text: `${failures} of the last ${page.data.length} attempts failed` })),
            el('p', { class: 'muted', text: `${w.description ? `${w.description} · ` : ''}${w.event_types.join(', ')} · ${w.id}` }),
            page.data.length === 0 ? el('p', { class: 'muted', text: 'No deliveries yet.' })
              : el('table', { class: 'list small' },
                el('thead', {}, el('tr', {}, ...['When', 'Event', 'Attempt', 'Answer', 'Time', 'Outcome', 'Error'].map((h) => el('th', { text: h })))),
                el('tbody', {}, ...page.data.map((d) => el('tr', {},
                  el('td', { text: when(d.at) }),
                  el('td', { text: d.event_type }),
                  el('td', { text: String(d.attempt) }),
                  el('td', { text: d.status_code === null ? 'no answer' : String(d.status_code) }),
                  el('td', { text: `${d.duration_ms} ms` }),
                  el('td', { class: d.outcome === 'delivered' ? '' : 'bad', text: d.outcome }),
                  el('td', { class: 'bad', text: d.error || '' })))))));
        }
        $('webhook-list').replaceChildren(...cards);
        $('webhooks-empty').hidden = hooks.length > 0;
        $('webhooks-error').textContent = '';
      } catch (err) { $('webhooks-error').textContent = `Could not list webhooks: ${err.message}`; }
    };
    const timer = setInterval(load, 5000);
    $('webhooks-refresh').onclick = load;
    refreshView = load;
    state.teardown = () => { clearInterval(timer); refreshView = () => {}; };
    load();
  }

  // ---- start -------------------------------------------------------------------------

  if (token) signedIn();
  else signOut('');
})();
