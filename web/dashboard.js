/*
 * web/dashboard.js — the dashboard's behaviour, plain JavaScript (no
 * framework, no build step). It asks for a token (kept in this tab's
 * sessionStorage only), reads /api/v1/whoami for the role, then follows
 * /api/v1/events — server-sent events read with fetch(), so that the token
 * travels in the Authorization header rather than the URL — and renders
 * each snapshot and log line. The queue list comes from /api/v1/queue;
 * admins get schedule / hold / release / remove buttons. Every value from
 * the server is put in the page as text (textContent), never as HTML.
 */
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const LIMIT = 50;
  const HISTORY = 120;
  let token = sessionStorage.getItem('postern-token') || '';
  let role = '';
  let prev = null;
  const history = [];
  let offset = 0;
  let total = 0;
  let listKey = '';
  let lastList = 0;
  let queueKey = '';

  const api = (path, opts = {}) => fetch(path, { ...opts, headers: { Authorization: `Bearer ${token}`, ...(opts.headers || {}) } });

  function setConn(text, cls) {
    const c = $('conn');
    c.textContent = text;
    c.className = `conn ${cls || ''}`;
  }

  function fmtNum(n) {
    return typeof n === 'number' ? n.toLocaleString('en') : '–';
  }
  function fmtRate(n) {
    return n >= 10 ? n.toFixed(0) : n.toFixed(2);
  }
  function fmtBytes(n) {
    const u = ['B', 'KiB', 'MiB', 'GiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return `${n.toFixed(i === 0 ? 0 : 1)} ${u[i]}`;
  }
  function fmtAge(s) {
    if (s === null || s === undefined) return '–';
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
    if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
  }

  /** Replace a table's body with rows of text cells (a cell may be a Node). */
  function rows(tableId, data, emptyText) {
    const tb = $(tableId).tBodies[0];
    const frag = document.createDocumentFragment();
    for (const r of data) {
      const tr = document.createElement('tr');
      for (const cell of r) {
        const td = document.createElement('td');
        if (cell instanceof Node) td.append(cell);
        else {
          td.textContent = String(cell);
          if (typeof cell === 'number') td.className = 'num';
        }
        tr.append(td);
      }
      frag.append(tr);
    }
    if (data.length === 0 && emptyText) {
      const tr = document.createElement('tr');
      const td = document.createElement('td');
      td.colSpan = $(tableId).tHead.rows[0].cells.length;
      td.textContent = emptyText;
      tr.append(td);
      frag.append(tr);
    }
    tb.replaceChildren(frag);
  }

  function spark() {
    const svg = $('spark');
    const max = Math.max(1, ...history.map((h) => Math.max(h.in, h.out)));
    const line = (k) => history.map((h, i) => `${(i / (HISTORY - 1)) * 120},${30 - (h[k] / max) * 28}`).join(' ');
    const ns = 'http://www.w3.org/2000/svg';
    const mk = (k) => {
      const p = document.createElementNS(ns, 'polyline');
      p.setAttribute('points', line(k));
      p.setAttribute('class', k);
      p.setAttribute('fill', 'none');
      p.setAttribute('stroke-width', '1.5');
      p.setAttribute('vector-effect', 'non-scaling-stroke');
      return p;
    };
    svg.replaceChildren(mk('in'), mk('out'));
  }

  function render(v) {
    const t = v.traffic;
    let rin = t.rate;
    let rout = 0;
    if (prev) {
      const dt = Math.max(0.001, (v.t - prev.t) / 1000);
      rin = Math.max(0, (t.received - prev.traffic.received) / dt);
      rout = Math.max(0, (t.delivered - prev.traffic.delivered) / dt);
    }
    prev = v;
    history.push({ in: rin, out: rout });
    while (history.length > HISTORY) history.shift();
    spark();
    $('rate-in').textContent = fmtRate(rin);
    $('rate-out').textContent = fmtRate(rout);
    $('total-received').textContent = fmtNum(t.received);
    $('total-delivered').textContent = fmtNum(t.delivered);
    $('total-deferred').textContent = fmtNum(t.deferred);
    $('total-bounced').textContent = fmtNum(t.bounced);
    rows('refusals', v.refusals.map((r) => [r.reason, r.count]), 'none');

    const q = v.queue;
    $('q-messages').textContent = fmtNum(q.messages);
    $('q-envelopes').textContent = fmtNum(q.envelopes);
    $('q-oldest').textContent = fmtAge(q.oldestSeconds);
    const chips = $('q-states');
    chips.replaceChildren(...Object.entries(q.byState).map(([s, n]) => {
      const li = document.createElement('li');
      li.textContent = `${s}: ${n}`;
      return li;
    }));
    if (chips.children.length === 0) chips.append(Object.assign(document.createElement('li'), { textContent: 'empty' }));
    rows('q-domains', q.byDomain.map((d) => [d.domain, d.count]), 'empty');
    rows('failing', v.failing.map((f) => [f.domain, f.failures, f.lastError]), 'none');

    const h = v.health;
    $('h-uptime').textContent = fmtAge(h.uptime);
    $('h-sessions').textContent = fmtNum(h.sessions);
    $('h-heap').textContent = fmtBytes(h.heapUsed);
    $('h-rss').textContent = fmtBytes(h.rss);
    $('h-lag').textContent = `${h.eventLoopLagMs} ms`;
    $('h-services').textContent = ['smtp', 'mta', 'mda'].map((s) => `${s} ${v.status[s] === 'paused' ? '⏸' : '▶'}`).join(' ');
    rows('certs', v.certificates.map((c) => {
      const d = document.createElement('span');
      d.textContent = String(c.days);
      d.className = c.days < 7 ? 'days-bad' : c.days < 21 ? 'days-warn' : '';
      return [c.name, new Date(c.notAfter).toISOString().slice(0, 10), d];
    }), 'no certificate configured');

    const key = JSON.stringify([q.envelopes, q.byState, t.received, t.delivered, t.deferred]);
    if (key !== queueKey && Date.now() - lastList > 2000) {
      queueKey = key;
      void loadQueue();
    }
  }

  function addLog(lines) {
    const ol = $('log');
    const atBottom = ol.scrollTop + ol.clientHeight >= ol.scrollHeight - 4;
    for (const l of lines) {
      const li = document.createElement('li');
      li.textContent = l;
      ol.append(li);
    }
    while (ol.children.length > 300) ol.firstElementChild.remove();
    if (atBottom) ol.scrollTop = ol.scrollHeight;
  }

  function actionButtons(e) {
    const box = document.createElement('div');
    box.className = 'actions';
    const acts = [['schedule', 'Schedule'], [e.state === 'held' ? 'release' : 'hold', e.state === 'held' ? 'Release' : 'Hold'], ['remove', 'Remove']];
    for (const [act, label] of acts) {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = label;
      b.dataset.act = act;
      b.dataset.target = e.evpid;
      b.setAttribute('aria-label', `${label} ${e.evpid}`);
      if (act === 'remove') b.className = 'danger';
      else if (act !== 'schedule') b.className = 'secondary';
      box.append(b);
    }
    return box;
  }

  async function loadQueue() {
    lastList = Date.now();
    const p = new URLSearchParams({ offset: String(offset), limit: String(LIMIT) });
    const q = $('q').value.trim();
    const st = $('state').value;
    if (q) p.set('q', q);
    if (st) p.set('state', st);
    const r = await api(`/api/v1/queue?${p}`);
    if (!r.ok) return;
    const page = await r.json();
    total = page.total;
    const key = JSON.stringify(page.items.map((e) => [e.evpid, e.state, e.retry, e.error]));
    if (key !== listKey) {
      listKey = key;
      rows('queue', page.items.map((e) => {
        const cells = [e.evpid, e.sender || '<>', e.rcpt, e.state, e.retry, e.error];
        if (role === 'admin') cells.push(actionButtons(e));
        return cells;
      }), 'no envelope matches');
      for (const tr of $('queue').tBodies[0].rows) tr.dataset.evpid = tr.cells[0].textContent;
    }
    $('page').textContent = total === 0 ? '0 of 0' : `${offset + 1}–${Math.min(offset + LIMIT, total)} of ${total}`;
    $('prev').disabled = offset === 0;
    $('next').disabled = offset + LIMIT >= total;
  }

  async function act(btn) {
    const { act: what, target } = btn.dataset;
    if (what === 'remove' && !window.confirm(`Remove ${target} from the queue?`)) return;
    btn.disabled = true;
    const r = await api(`/api/v1/queue/${encodeURIComponent(target)}/${what}`, { method: 'POST' });
    const body = await r.json().catch(() => ({}));
    $('action-status').textContent = r.ok ? `${what}: ${body.count} envelope(s) of ${target}` : `${what} ${target}: ${body.error || `HTTP ${r.status}`}`;
    btn.disabled = false;
    listKey = '';
    await loadQueue();
  }

  async function stream() {
    const ac = new AbortController();
    try {
      const r = await api('/api/v1/events', { signal: ac.signal });
      if (r.status === 401) return setConn('token refused', 'down');
      if (!r.ok || !r.body) throw new Error(`HTTP ${r.status}`);
      setConn('live', 'live');
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let ev = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) ev = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (!data) continue;
          const v = JSON.parse(data);
          if (ev === 'snapshot') render(v);
          else if (ev === 'log') addLog(v);
        }
      }
    } catch {
      /* reconnect below */
    }
    setConn('reconnecting…', 'down');
    setTimeout(stream, 3000);
  }

  async function connect() {
    setConn('connecting…');
    let r;
    try {
      r = await api('/api/v1/whoami');
    } catch {
      return setConn('cannot reach the server', 'down');
    }
    if (!r.ok) {
      sessionStorage.removeItem('postern-token');
      return setConn(r.status === 401 ? 'token refused' : `error ${r.status}`, 'down');
    }
    const w = await r.json();
    role = w.role;
    sessionStorage.setItem('postern-token', token);
    document.body.classList.toggle('admin', role === 'admin');
    $('who').textContent = `${w.name} · ${w.role}`;
    $('who').hidden = false;
    $('login').hidden = true;
    $('main').focus();
    void loadQueue();
    void stream();
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login').addEventListener('submit', (ev) => {
      ev.preventDefault();
      token = $('token').value.trim();
      void connect();
    });
    $('search').addEventListener('submit', (ev) => {
      ev.preventDefault();
      offset = 0;
      listKey = '';
      void loadQueue();
    });
    $('prev').addEventListener('click', () => { offset = Math.max(0, offset - LIMIT); void loadQueue(); });
    $('next').addEventListener('click', () => { offset += LIMIT; void loadQueue(); });
    $('queue').addEventListener('click', (ev) => {
      const b = ev.target.closest('button[data-act]');
      if (b) void act(b);
    });
    if (token) void connect();
    else $('token').focus();
  });
})();
