// The berth dashboard's client: renders the overview the page carries, then keeps it live.
// Plain browser JavaScript, no build step and nothing from elsewhere (the page's CSP allows only
// this file). Every value is set as text (textContent), never parsed as HTML.
'use strict';

const POLL_MS = 1000;

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

function renderStatus(overview) {
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
    nodes.push(
      el(
        'p',
        { class: 'warning', id: 'head-differs' },
        `The cluster does not run the branch head: ${overview.headDiffers.reason}`,
      ),
    );
  }
  return nodes;
}

function renderRollout(overview) {
  const rollout = overview.rollout;
  if (!rollout) return [el('p', {}, 'No rollout since the operator started.')];
  const state = rollout.outcome === null ? 'running' : rollout.outcome;
  const summary = el(
    'p',
    { id: 'rollout-summary', 'data-revision': rollout.revision, 'data-state': state },
    `${rollout.kind} ${short(rollout.revision)}: ${state}`,
    rollout.reason ? ` (${rollout.reason})` : '',
  );
  const events = (overview.events || [])
    .slice(-15)
    .reverse()
    .map((e) => el('li', { 'data-type': e.type }, `${e.at.slice(11, 19)} ${describeEvent(e)}`));
  return [summary, el('ol', { class: 'events', reversed: true }, ...events)];
}

function describeEvent(e) {
  switch (e.type) {
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
    default:
      return e.type;
  }
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
        ['Service', 'Desired', 'Running', 'Healthy', 'Revision', 'Nodes'],
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
            el('td', {}, s.nodes.join(', ') || '-'),
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

function renderHistory(overview) {
  const history = overview.history || [];
  if (history.length === 0) return [el('p', {}, 'Nothing deployed yet.')];
  return [
    table(
      'History, newest first',
      ['When', 'Revision', 'Message', 'Service', 'Change', 'Outcome'],
      history.map((h) =>
        el(
          'tr',
          {},
          el('td', {}, h.at.replace('T', ' ').slice(0, 19)),
          el('td', {}, short(h.revision)),
          el('td', {}, h.message ? h.message.split('\n')[0] : '-'),
          el('td', {}, h.service || '-'),
          el('td', {}, h.change),
          el(
            'td',
            { class: `outcome ${h.outcome.replaceAll(' ', '-')}` },
            h.outcome,
            h.reason ? `: ${h.reason}` : '',
          ),
        ),
      ),
    ),
  ];
}

/** Replaces a region's content, keeping keyboard focus on the same button when it is redrawn. */
function replace(id, nodes) {
  const region = document.getElementById(id);
  if (!region) return;
  const focused = document.activeElement;
  const focusKey =
    focused && region.contains(focused) && focused.dataset ? JSON.stringify(focused.dataset) : null;
  region.replaceChildren(...nodes);
  if (focusKey !== null) {
    for (const button of region.querySelectorAll('button')) {
      if (JSON.stringify(button.dataset) === focusKey) button.focus();
    }
  }
}

const csrfMeta = document.querySelector('meta[name="csrf-token"]');
const csrf = csrfMeta ? csrfMeta.getAttribute('content') : null;
const rendered = {};

/** Redraws only the regions whose data changed: screen readers hear changes, not every poll. */
function render(overview) {
  const regions = {
    status: () => renderStatus(overview),
    rollout: () => renderRollout(overview),
    services: () => renderServices(overview),
    nodes: () => renderNodes(overview, csrf !== null),
    history: () => renderHistory(overview),
  };
  const inputs = {
    status: [
      overview.repository,
      overview.head,
      overview.deployed,
      overview.conditions,
      overview.headDiffers,
    ],
    rollout: [overview.rollout, overview.events],
    services: overview.services,
    nodes: [overview.nodes, overview.canDrain],
    history: overview.history,
  };
  for (const [id, draw] of Object.entries(regions)) {
    const key = JSON.stringify(inputs[id]);
    if (rendered[id] === key) continue;
    rendered[id] = key;
    replace(id, draw());
  }
  document.body.dataset.generatedAt = overview.generatedAt;
}

/**
 * Calls `onOverview` with each new overview. The one place that knows how updates arrive:
 * polling now; an EventSource on the operator's event stream can replace it here alone.
 */
function subscribe(onOverview) {
  let stopped = false;
  const poll = async () => {
    try {
      const response = await fetch('/v1/overview', { headers: { accept: 'application/json' } });
      if (response.ok) onOverview(await response.json());
      document.body.classList.toggle('stale', !response.ok);
    } catch {
      document.body.classList.add('stale');
    }
    if (!stopped) setTimeout(poll, POLL_MS);
  };
  setTimeout(poll, POLL_MS);
  return () => {
    stopped = true;
  };
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
  } catch (error) {
    result.textContent = `${what}: failed (${error})`;
  }
}

function renderActions() {
  if (csrf === null) return;
  const reconcile = el('button', { type: 'button', id: 'reconcile-now' }, 'Reconcile now');
  reconcile.addEventListener('click', () => act('/v1/dashboard/reconcile', 'Reconcile'));
  replace('actions', [reconcile]);
  document.getElementById('nodes').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-node]');
    if (!button) return;
    const { node, availability } = button.dataset;
    void act(
      `/v1/dashboard/nodes/${encodeURIComponent(node)}/${availability}`,
      `${availability === 'drain' ? 'Drain' : 'Activate'} ${node}`,
    );
  });
}

function start() {
  const data = document.getElementById('overview-data');
  if (data) render(JSON.parse(data.textContent));
  renderActions();
  subscribe(render);
}

start();
