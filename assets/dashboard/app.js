// The berth dashboard's client: renders the overview the page carries, then keeps it live.
// Plain browser JavaScript, no build step and nothing from elsewhere (the page's CSP allows only
// this file). Every value is set as text (textContent), never parsed as HTML.
'use strict';

/** A page that missed events (none tells of a crashed container yet) still catches up this often. */
const REFRESH_MS = 15000;
/** Reconnecting to the event stream after it broke. */
const RECONNECT_MS = 1000;
/** Lines of a replica's logs kept on the page: the oldest go first. */
const MAX_LOG_LINES = 1000;

/** One element with text and attributes; children appended in order. */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === 'string' || typeof child === 'number' ? String(child) : child);
  }
  return node;
}

function short(revision) {
  return revision ? revision.slice(0, 12) : '-';
}

function table(caption, headers, rows) {
  return el(
    'table',
    {},
    el('caption', { class: 'visually-hidden' }, caption),
    el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, ...rows),
  );
}

function labelsText(labels) {
  const entries = Object.entries(labels || {});
  return entries.length === 0 ? '-' : entries.map(([k, v]) => `${k}=${v}`).join(', ');
}

function renderStatus(overview, signedIn) {
  const holding = (overview.conditions || []).find((c) => c.status === 'True');
  const repo = overview.repository;
  const list = el(
    'dl',
    {},
    el('dt', {}, 'Repository'),
    el('dd', {}, repo ? `${repo.repo} (${repo.path}) @ ${repo.branch}` : '-'),
    el('dt', {}, 'Branch head'),
    el('dd', { id: 'head-revision' }, short(overview.head)),
    el('dt', {}, 'Deployed'),
    el(
      'dd',
      { id: 'deployed-revision' },
      overview.deployed ? short(overview.deployed.revision) : 'nothing yet',
    ),
    el('dt', {}, 'Operator'),
    el(
      'dd',
      { id: 'condition', 'data-condition': holding ? holding.type : '' },
      holding ? `${holding.type}: ${holding.reason}. ${holding.message}` : 'starting',
    ),
  );
  const nodes = [list];
  if (overview.headDiffers) {
    const failed = (overview.failed || []).some((f) => f.revision === overview.head);
    nodes.push(
      el(
        'p',
        { class: 'warning', id: 'head-differs' },
        `The cluster does not run the branch head: ${overview.headDiffers.reason} `,
        signedIn && failed ? retryButton(overview.head) : null,
      ),
    );
  }
  return nodes;
}

/** The newest rollout as the events tell it (as rolloutProgress() on the server). */
function rolloutOf(events) {
  let start = -1;
  for (let i = events.length - 1; i >= 0; i--) {
    if (events[i].type === 'rollout-started') {
      start = i;
      break;
    }
  }
  if (start < 0) return null;
  const end = events.slice(start + 1).find((e) => e.type === 'reconcile-finished');
  const data = events[start].data;
  return {
    revision: data.revision,
    kind: data.kind,
    startId: events[start].id,
    outcome: end ? end.data.outcome : null,
    reason: end ? end.data.reason : null,
  };
}

/** Events not worth a line: an idle operator reconciles every minute and changes nothing. */
function shown(e) {
  if (e.type === 'reconcile-started') return false;
  return !(e.type === 'reconcile-finished' && e.data.outcome === 'unchanged');
}

function renderRollout(events) {
  const rollout = rolloutOf(events);
  const nodes = [];
  if (!rollout) nodes.push(el('p', {}, 'No rollout since the operator started.'));
  else {
    const state = rollout.outcome === null ? 'running' : rollout.outcome;
    nodes.push(
      el(
        'p',
        { id: 'rollout-summary', 'data-revision': rollout.revision, 'data-state': state },
        `${rollout.kind} ${short(rollout.revision)}: ${state}`,
        rollout.reason ? ` (${rollout.reason})` : '',
      ),
    );
  }
  const items = events
    .filter(shown)
    .slice(-15)
    .reverse()
    .map((e) => el('li', { 'data-type': e.type }, `${e.at.slice(11, 19)} ${describeEvent(e)}`));
  nodes.push(el('ol', { class: 'events', reversed: true, 'aria-label': 'Latest events' }, ...items));
  return nodes;
}

function describeEvent(event) {
  const e = event.data || {};
  switch (event.type) {
    case 'rollout-started':
      return e.message || `${e.kind} ${short(e.revision)}`;
    case 'reconcile-finished':
      return `reconcile ${e.outcome}${e.reason ? `: ${e.reason}` : ''}`;
    case 'service-started':
      return `${e.service}: ${e.change} in ${e.batches} batch(es)`;
    case 'replica-starting':
      return `${e.service}: starting ${e.name} on ${e.node}`;
    case 'replica-healthy':
      return `${e.service}: ${e.name} healthy on ${e.node} (${e.ms} ms)`;
    case 'replica-failed':
      return `${e.service}: ${e.name} FAILED on ${e.node}: ${e.reason}`;
    case 'replica-removed':
      return `${e.service}: removed ${e.name} from ${e.node} (${e.reason})`;
    case 'batch-done':
      return `${e.service}: batch ${e.batch}/${e.batches} done`;
    case 'service-finished':
      return `${e.service}: ${e.outcome}${e.reason ? ` (${e.reason})` : ''}`;
    default: {
      const fields = Object.entries(e)
        .filter(([, v]) => typeof v === 'string' || typeof v === 'number')
        .map(([k, v]) => `${k}=${v}`);
      return [event.type, ...fields].join(' ');
    }
  }
}

/** A service's replicas, listed when opened (a page of 100 services paints without them). */
function replicaList(s) {
  return el(
    'details',
    { class: 'replicas', 'data-key': `${s.namespace}/${s.name}` },
    el('summary', {}, `${s.replicas.length} replica${s.replicas.length === 1 ? '' : 's'}`),
    el('ul', { 'aria-label': `Replicas of ${s.namespace}/${s.name}` }),
  );
}

function fillReplicas(details) {
  const s = (overview.services || []).find((x) => `${x.namespace}/${x.name}` === details.dataset.key);
  const list = details.querySelector('ul');
  if (!s || !list || !details.open) return;
  const signedIn = csrf !== null;
  list.replaceChildren(
    ...s.replicas.map((r) =>
      el(
        'li',
        { 'data-replica': r.name },
        `${s.name}.${r.slot}@${r.node}: ${r.state}${r.health === 'none' ? '' : `, ${r.health}`} (${r.revision})`,
        signedIn
          ? el(
              'button',
              { type: 'button', 'data-logs-node': r.node, 'data-logs-replica': r.name },
              `Logs of ${s.name}.${r.slot}@${r.node}`,
            )
          : null,
      ),
    ),
  );
}

function renderServices(overview) {
  const services = overview.services || [];
  if (services.length === 0) return [el('p', {}, 'No services.')];
  const byNamespace = new Map();
  for (const s of services) {
    if (!byNamespace.has(s.namespace)) byNamespace.set(s.namespace, []);
    byNamespace.get(s.namespace).push(s);
  }
  return [...byNamespace].map(([namespace, rows]) =>
    el(
      'div',
      { class: 'namespace' },
      el('h3', {}, namespace),
      table(
        `Services of namespace ${namespace}`,
        ['Service', 'Desired', 'Running', 'Healthy', 'Revision', 'Replicas'],
        rows.map((s) =>
          el(
            'tr',
            { 'data-service': `${s.namespace}/${s.name}` },
            el('th', { scope: 'row' }, s.name),
            el('td', { class: 'desired' }, s.desired === null ? '-' : s.desired),
            el('td', { class: 'running' }, s.running),
            el(
              'td',
              { class: s.desired !== null && s.healthy < s.desired ? 'healthy short' : 'healthy' },
              s.healthy,
            ),
            el('td', { class: 'revision' }, s.revisions.join(', ') || '-'),
            el('td', {}, (s.replicas || []).length === 0 ? '-' : replicaList(s)),
          ),
        ),
      ),
    ),
  );
}

function renderNodes(overview, signedIn) {
  const nodes = overview.nodes || [];
  const actions = signedIn && overview.canDrain;
  const headers = ['Node', 'Status', 'Availability', 'Labels', 'Replicas'];
  if (actions) headers.push('Action');
  return [
    table(
      'Nodes',
      headers,
      nodes.map((n) => {
        const cells = [
          el('th', { scope: 'row' }, n.kind === 'local' ? `${n.name} (local)` : n.name),
          el('td', {}, n.status),
          el('td', { class: 'availability' }, n.availability),
          el('td', {}, labelsText(n.labels)),
          el('td', {}, n.replicas === null ? '-' : n.replicas),
        ];
        if (actions) {
          const next = n.availability === 'drain' ? 'active' : 'drain';
          cells.push(
            el(
              'td',
              {},
              el(
                'button',
                { type: 'button', 'data-node': n.name, 'data-availability': next },
                next === 'drain' ? `Drain ${n.name}` : `Activate ${n.name}`,
              ),
            ),
          );
        }
        return el('tr', { 'data-node': n.name }, ...cells);
      }),
    ),
  ];
}

/** The audit log's entries of one rollout (consecutive, same revision) as one row. */
function historyGroups(history) {
  const groups = [];
  for (const h of history) {
    const last = groups[groups.length - 1];
    if (last && last.revision === h.revision && last.rolledBackFrom === h.rolledBackFrom) {
      last.entries.push(h);
      continue;
    }
    groups.push({ revision: h.revision, rolledBackFrom: h.rolledBackFrom, entries: [h] });
  }
  return groups;
}

function historyOutcome(entries) {
  const outcomes = [...new Set(entries.map((h) => h.outcome))];
  const reason = entries.map((h) => h.reason).find((r) => r);
  const services = entries.map((h) => h.service || (h.job ? `job ${h.job.namespace}/${h.job.name}` : null));
  return el(
    'td',
    { class: `outcome ${outcomes[0].replaceAll(' ', '-')}` },
    outcomes.join(', '),
    reason ? `: ${reason}` : '',
    services.some((x) => x) ? el('br') : null,
    services.filter((x) => x).join(', '),
  );
}

function renderHistory(overview, signedIn) {
  const history = overview.history || [];
  if (history.length === 0) return [el('p', {}, 'Nothing deployed yet.')];
  const failed = new Set((overview.failed || []).map((f) => f.revision));
  return [
    table(
      'History, newest first',
      ['When', 'Revision', 'Author', 'Message', 'Outcome', 'Plan'],
      historyGroups(history).map((g) => {
        const h = g.entries[0];
        const actions = [
          el(
            'button',
            { type: 'button', 'data-plan': g.revision, 'aria-controls': 'revision-plan' },
            `Plan of ${short(g.revision)}`,
          ),
        ];
        if (signedIn && failed.has(g.revision)) actions.push(retryButton(g.revision));
        return el(
          'tr',
          { 'data-revision': g.revision },
          el('td', {}, h.at.replace('T', ' ').slice(0, 19)),
          el('td', {}, short(g.revision), g.rolledBackFrom ? ` (back from ${short(g.rolledBackFrom)})` : ''),
          el('td', {}, h.author || '-'),
          el('td', {}, h.message ? h.message.split('\n')[0] : '-'),
          historyOutcome(g.entries),
          el('td', {}, ...actions),
        );
      }),
    ),
  ];
}

function retryButton(revision) {
  return el('button', { type: 'button', 'data-retry': revision }, `Retry ${short(revision)}`);
}

/** Replaces a region's content, keeping keyboard focus and open replica lists as they were. */
function replace(id, nodes) {
  const region = document.getElementById(id);
  if (!region) return;
  const focused = document.activeElement;
  const focusKey =
    focused && region.contains(focused) && focused.dataset ? JSON.stringify(focused.dataset) : null;
  const open = new Set([...region.querySelectorAll('details[open]')].map((d) => d.dataset.key));
  region.replaceChildren(...nodes);
  for (const details of region.querySelectorAll('details')) {
    if (!open.has(details.dataset.key)) continue;
    details.open = true;
    fillReplicas(details);
  }
  if (focusKey !== null) {
    for (const target of region.querySelectorAll('button, summary')) {
      if (JSON.stringify(target.dataset) === focusKey) target.focus();
    }
  }
}

const csrfMeta = document.querySelector('meta[name="csrf-token"]');
const csrf = csrfMeta ? csrfMeta.getAttribute('content') : null;
const rendered = {};
/** The events seen (from the page, the overview and the stream), by id, oldest first. */
let events = [];
let overview = null;

function addEvents(more) {
  const byId = new Map(events.map((e) => [e.id, e]));
  for (const e of more) byId.set(e.id, e);
  events = [...byId.values()].sort((a, b) => a.id - b.id).slice(-200);
}

/** Each region's drawing and the data it is drawn from. */
function regionsOf(overview, signedIn) {
  return {
    status: {
      draw: () => renderStatus(overview, signedIn),
      from: [
        overview.repository,
        overview.head,
        overview.deployed,
        overview.conditions,
        overview.headDiffers,
        overview.failed,
      ],
    },
    rollout: { draw: () => renderRollout(events), from: events.map((e) => e.id) },
    services: { draw: () => renderServices(overview), from: overview.services },
    nodes: { draw: () => renderNodes(overview, signedIn), from: [overview.nodes, overview.canDrain] },
    history: { draw: () => renderHistory(overview, signedIn), from: [overview.history, overview.failed] },
  };
}

/**
 * Redraws only the regions whose data changed: screen readers hear changes, not every update.
 * `drawn` says the regions already show this overview (the server rendered them into the page).
 */
function render(drawn = false) {
  if (overview === null) return;
  for (const [id, region] of Object.entries(regionsOf(overview, csrf !== null))) {
    const key = JSON.stringify(region.from);
    if (rendered[id] === key) continue;
    rendered[id] = key;
    if (!drawn) replace(id, region.draw());
  }
  document.body.dataset.generatedAt = overview.generatedAt;
  document.body.dataset.lastEvent = String(events.length ? events[events.length - 1].id : 0);
}

/** Fetches the overview again; calls made while one is under way make one more after it. */
const refresh = (() => {
  let running = false;
  let again = false;
  return async function refresh() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        const response = await fetch('/v1/overview', { headers: { accept: 'application/json' } });
        document.body.classList.toggle('stale', !response.ok);
        if (response.ok) {
          overview = await response.json();
          addEvents(overview.events || []);
          render();
        }
      } while (again);
    } catch {
      document.body.classList.add('stale');
    } finally {
      running = false;
    }
  };
})();

/** The frames of a Server-Sent Events stream, parsed as they arrive: each `data:` is an event as JSON. */
async function readEventStream(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame
        .split('\n')
        .filter((line) => line.startsWith('data: '))
        .map((line) => line.slice(6))
        .join('\n');
      if (data !== '') onEvent(JSON.parse(data));
    }
  }
}

/**
 * The page's one source of updates: the operator's event stream (/v1/events, every event type,
 * resumed after a break from the last id seen). Each event is shown at once in the rollout and
 * brings a fresh overview (counts, revisions, nodes, history) right after.
 */
async function followEvents() {
  for (;;) {
    const lastId = events.length ? events[events.length - 1].id : null;
    try {
      const headers = { accept: 'text/event-stream' };
      if (lastId !== null) headers['last-event-id'] = String(lastId);
      const response = await fetch('/v1/events', { headers });
      if (response.ok && response.body) {
        document.body.dataset.events = 'live';
        await readEventStream(response, (event) => {
          addEvents([event]);
          render();
          void refresh();
          if (event.type === 'reconcile-finished') refreshHeadPlan();
        });
      }
    } catch {
      // The operator restarted or the network broke: try again shortly.
    }
    document.body.dataset.events = 'reconnecting';
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

async function act(path, what) {
  const result = document.getElementById('action-result');
  result.textContent = `${what}…`;
  try {
    const response = await fetch(path, {
      method: 'POST',
      headers: { 'x-csrf-token': csrf || '' },
      credentials: 'same-origin',
    });
    const body = await response.json().catch(() => ({}));
    result.textContent = response.ok
      ? `${what}: done.`
      : `${what}: refused (${response.status}) ${body.error || ''}`;
    if (response.ok) void refresh();
  } catch (error) {
    result.textContent = `${what}: failed (${error})`;
  }
}

/** Buttons anywhere in the page, by what they carry: one listener survives every redraw. */
function onButton(event) {
  const button = event.target.closest('button');
  if (!button) return;
  const data = button.dataset;
  if (data.node && data.availability) {
    const what = `${data.availability === 'drain' ? 'Drain' : 'Activate'} ${data.node}`;
    void act(`/v1/dashboard/nodes/${encodeURIComponent(data.node)}/${data.availability}`, what);
  } else if (data.retry) {
    void act(`/v1/dashboard/revisions/${data.retry}/retry`, `Retry ${short(data.retry)}`);
  } else if (data.plan) {
    void showRevisionPlan(data.plan);
  } else if (data.logsNode) {
    void showLogs(data.logsNode, data.logsReplica, button.textContent);
  } else if (button.id === 'reconcile-now') {
    void act('/v1/dashboard/reconcile', 'Reconcile');
  } else if (button.id === 'show-head-plan') {
    headPlanOpen = true;
    refreshHeadPlan();
  }
}

async function showRevisionPlan(revision) {
  const region = document.getElementById('revision-plan');
  const heading = el('h3', { id: 'revision-plan-heading', tabindex: '-1' }, `Plan of ${short(revision)}`);
  const response = await fetch(`/v1/dashboard/revisions/${revision}/plan`);
  const body = await response.json().catch(() => ({}));
  const content = response.ok
    ? [
        el('p', {}, `Rolled out with this plan at ${body.at.replace('T', ' ').slice(0, 19)}:`),
        el('pre', {}, body.text),
      ]
    : [
        el(
          'p',
          {},
          `No plan is kept for ${short(revision)} (the operator keeps those of its newest rollouts).`,
        ),
      ];
  region.dataset.revision = revision;
  region.replaceChildren(heading, ...content);
  heading.focus();
}

let headPlanOpen = false;
let headPlanLoading = false;
/** A reconcile finished while the plan was being computed: compute it once more after. */
let headPlanAgain = false;

async function refreshHeadPlan() {
  if (!headPlanOpen) return;
  if (headPlanLoading) {
    headPlanAgain = true;
    return;
  }
  headPlanLoading = true;
  headPlanAgain = false;
  const region = document.getElementById('head-plan');
  try {
    const response = await fetch('/v1/dashboard/head-plan');
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      region.replaceChildren(
        el(
          'p',
          { class: 'error' },
          `Could not plan the branch head: ${body.error || body.message || response.status}`,
        ),
      );
      return;
    }
    const status =
      body.hasChanges === null
        ? 'cannot be applied'
        : body.hasChanges
          ? 'has changes to apply'
          : 'matches the cluster';
    const nodes = [
      el(
        'p',
        { id: 'head-plan-summary', 'data-revision': body.revision, 'data-changes': String(body.hasChanges) },
        `Branch head ${short(body.revision)} ${status}; deployed: ${body.deployed ? short(body.deployed) : 'nothing yet'}.`,
      ),
    ];
    if (body.why.length > 0) {
      nodes.push(el('h3', {}, 'Why the cluster does not run the head'));
      nodes.push(el('ul', { id: 'head-plan-why' }, ...body.why.map((w) => el('li', {}, w))));
    }
    if (body.failed && csrf !== null) nodes.push(el('p', {}, retryButton(body.revision)));
    nodes.push(
      el('pre', { id: 'head-plan-text', tabindex: '0', 'aria-label': 'Plan of the branch head' }, body.text),
    );
    replace('head-plan', nodes);
  } finally {
    headPlanLoading = false;
    if (headPlanAgain) void refreshHeadPlan();
  }
}

let logsReader = null;
/** Which showLogs is current: an older one still reading stops instead of mixing its lines in. */
let logsShown = 0;

/** A replica's last lines, then its new ones as they are written, until closed or another is opened. */
async function showLogs(node, replica, label) {
  const mine = ++logsShown;
  if (logsReader) await logsReader.cancel().catch(() => undefined);
  const section = document.getElementById('logs-section');
  const pre = document.getElementById('logs');
  section.hidden = false;
  section.dataset.replica = replica;
  document.getElementById('logs-heading').textContent = label;
  const close = el('button', { type: 'button', id: 'close-logs' }, 'Close logs');
  close.addEventListener('click', () => {
    if (logsReader) void logsReader.cancel().catch(() => undefined);
    section.hidden = true;
  });
  document.getElementById('logs-controls').replaceChildren(close);
  pre.replaceChildren();
  pre.focus();
  const response = await fetch(
    `/v1/dashboard/logs/${encodeURIComponent(node)}/${encodeURIComponent(replica)}?tail=100&follow=1`,
  );
  if (mine !== logsShown) {
    await response.body?.cancel().catch(() => undefined);
    return;
  }
  if (!response.ok || !response.body) {
    const body = await response.json().catch(() => ({}));
    pre.textContent = `Could not read the logs (${response.status}) ${body.error || ''}`;
    return;
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  logsReader = reader;
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read().catch(() => ({ done: true }));
    if (done) break;
    if (mine !== logsShown) {
      await reader.cancel().catch(() => undefined);
      break;
    }
    buffer += value;
    const lines = buffer.split('\n');
    buffer = lines.pop();
    for (const line of lines) if (line.trim() !== '') appendLogMessage(pre, JSON.parse(line));
  }
}

function appendLogMessage(pre, message) {
  if (message.line) pre.append(`${message.line.at.slice(11, 23)} ${message.line.text}\n`);
  else if (message.error) pre.append(`-- ${message.error.message}\n`);
  else if (message.end) pre.append('-- the replica stopped\n');
  else return;
  while (pre.childNodes.length > MAX_LOG_LINES) pre.firstChild.remove();
  pre.dataset.lines = String(pre.childNodes.length);
}

function renderActions() {
  if (csrf === null || document.getElementById('reconcile-now')) return;
  replace('actions', [el('button', { type: 'button', id: 'reconcile-now' }, 'Reconcile now')]);
}

function start() {
  const data = document.getElementById('overview-data');
  if (data) {
    overview = JSON.parse(data.textContent);
    addEvents(overview.events || []);
    // The page came with its regions drawn from this very overview: they are kept as they are.
    render(document.body.dataset.rendered === 'server');
  }
  renderActions();
  document.body.addEventListener('click', onButton);
  // toggle does not bubble: heard on its way down instead.
  document.body.addEventListener('toggle', (event) => fillReplicas(event.target), true);
  void followEvents();
  setInterval(() => void refresh(), REFRESH_MS);
}

start();
