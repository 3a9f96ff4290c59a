import type { OperatorEvent } from './event-bus.js';
import type { NodeRow, Overview, ServiceRow } from './overview.js';
import type { HistoryEntry } from './state-store.js';

/**
 * The dashboard's regions as HTML, rendered on the server into the page so that its first paint
 * shows the cluster without waiting for the client (assets/dashboard/app.js). The client adopts
 * them as they are and redraws a region only when its data changes, so this is the client's
 * render functions in TypeScript, element for element and attribute for attribute
 * (test/dashboard/first-paint.test.ts compares the two). Every value from the cluster is escaped.
 */

/** Markup built here; anything else given as a child is text and is escaped. */
export interface Html {
  readonly html: string;
}

type Child = Html | string | number | null | undefined;
type Attributes = Record<string, string | number | boolean | null | undefined>;

/** Text for HTML content and attribute values. */
export function escapeHtml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

const VOID_ELEMENTS = new Set(['br']);

/** As the client's el(): attributes that are null, undefined or false are left out. */
function el(tag: string, attributes: Attributes = {}, ...children: Child[]): Html {
  let open = `<${tag}`;
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    open += ` ${name}="${escapeHtml(String(value))}"`;
  }
  if (VOID_ELEMENTS.has(tag)) return { html: `${open}>` };
  return { html: `${open}>${children.map(childHtml).join('')}</${tag}>` };
}

function childHtml(child: Child): string {
  if (child === null || child === undefined) return '';
  return typeof child === 'object' ? child.html : escapeHtml(String(child));
}

/** Regions' content, each the client's region of the same id. */
export type DashboardRegions = Record<
  'status' | 'rollout' | 'services' | 'nodes' | 'history' | 'actions',
  string
>;

export interface RenderOptions {
  /**
   * Service rows drawn in the first frame; those after them are marked `data-later` (not displayed
   * until the page's reveal script runs after that frame), so the first paint lays out one screen
   * of rows, not all of them. The client draws every row: it never passes this.
   */
  firstScreenRows?: number;
}

export function renderRegions(
  overview: Overview,
  signedIn: boolean,
  options: RenderOptions = {},
): DashboardRegions {
  const join = (nodes: Html[]): string => nodes.map((n) => n.html).join('');
  const events = [...overview.events].sort((a, b) => a.id - b.id).slice(-200);
  return {
    status: join(renderStatus(overview, signedIn)),
    rollout: join(renderRollout(events)),
    services: join(renderServices(overview, options.firstScreenRows ?? Infinity)),
    nodes: join(renderNodes(overview, signedIn)),
    history: join(renderHistory(overview, signedIn)),
    actions: signedIn ? el('button', { type: 'button', id: 'reconcile-now' }, 'Reconcile now').html : '',
  };
}

function short(revision: string | null | undefined): string {
  return revision ? revision.slice(0, 12) : '-';
}

function table(caption: string, headers: string[], rows: Html[]): Html {
  return el(
    'table',
    {},
    el('caption', { class: 'visually-hidden' }, caption),
    el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, ...rows),
  );
}

function retryButton(revision: string): Html {
  return el('button', { type: 'button', 'data-retry': revision }, `Retry ${short(revision)}`);
}

function renderStatus(overview: Overview, signedIn: boolean): Html[] {
  const holding = overview.conditions.find((c) => c.status === 'True');
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
    const failed = overview.failed.some((f) => f.revision === overview.head);
    nodes.push(
      el(
        'p',
        { class: 'warning', id: 'head-differs' },
        `The cluster does not run the branch head: ${overview.headDiffers.reason} `,
        signedIn && failed && overview.head !== null ? retryButton(overview.head) : null,
      ),
    );
  }
  return nodes;
}

/** A field of an event's data as the client's template strings print it (a missing one as `undefined`). */
function field(data: Record<string, unknown>, name: string): string {
  return String(data[name]);
}

function renderRollout(events: OperatorEvent[]): Html[] {
  let start = -1;
  for (let i = events.length - 1; i >= 0 && start < 0; i--)
    if (events[i]!.type === 'rollout-started') start = i;
  const nodes: Html[] = [];
  if (start < 0) nodes.push(el('p', {}, 'No rollout since the operator started.'));
  else {
    const data = events[start]!.data;
    const revision = typeof data['revision'] === 'string' ? data['revision'] : null;
    const end = events.slice(start + 1).find((e) => e.type === 'reconcile-finished');
    const state = end ? field(end.data, 'outcome') : 'running';
    const reason = end?.data['reason'] ? field(end.data, 'reason') : null;
    nodes.push(
      el(
        'p',
        { id: 'rollout-summary', 'data-revision': revision, 'data-state': state },
        `${field(data, 'kind')} ${short(revision)}: ${state}`,
        reason === null ? '' : ` (${reason})`,
      ),
    );
  }
  const items = events
    .filter(shownEvent)
    .slice(-15)
    .reverse()
    .map((e) => el('li', { 'data-type': e.type }, `${e.at.slice(11, 19)} ${describeEvent(e)}`));
  nodes.push(el('ol', { class: 'events', reversed: true, 'aria-label': 'Latest events' }, ...items));
  return nodes;
}

/** Events not worth a line: an idle operator reconciles every minute and changes nothing. */
function shownEvent(e: OperatorEvent): boolean {
  if (e.type === 'reconcile-started') return false;
  return !(e.type === 'reconcile-finished' && e.data['outcome'] === 'unchanged');
}

function describeEvent(event: OperatorEvent): string {
  const e = event.data;
  const f = (name: string): string => field(e, name);
  const reason = e['reason'] ? `: ${f('reason')}` : '';
  switch (event.type) {
    case 'rollout-started':
      return e['message'] ? f('message') : `${f('kind')} ${short(f('revision'))}`;
    case 'reconcile-finished':
      return `reconcile ${f('outcome')}${reason}`;
    case 'service-started':
      return `${f('service')}: ${f('change')} in ${f('batches')} batch(es)`;
    case 'replica-starting':
      return `${f('service')}: starting ${f('name')} on ${f('node')}`;
    case 'replica-healthy':
      return `${f('service')}: ${f('name')} healthy on ${f('node')} (${f('ms')} ms)`;
    case 'replica-failed':
      return `${f('service')}: ${f('name')} FAILED on ${f('node')}: ${f('reason')}`;
    case 'replica-removed':
      return `${f('service')}: removed ${f('name')} from ${f('node')} (${f('reason')})`;
    case 'batch-done':
      return `${f('service')}: batch ${f('batch')}/${f('batches')} done`;
    case 'service-finished':
      return `${f('service')}: ${f('outcome')}${e['reason'] ? ` (${f('reason')})` : ''}`;
    default: {
      const fields = Object.entries(e)
        .filter(([, v]) => typeof v === 'string' || typeof v === 'number')
        .map(([k, v]) => `${k}=${String(v)}`);
      return [event.type, ...fields].join(' ');
    }
  }
}

/** A service's replicas, listed by the client when opened (a page of 100 services paints without them). */
function replicaList(s: ServiceRow): Html {
  return el(
    'details',
    { class: 'replicas', 'data-key': `${s.namespace}/${s.name}` },
    el('summary', {}, `${s.replicas.length} replica${s.replicas.length === 1 ? '' : 's'}`),
    el('ul', { 'aria-label': `Replicas of ${s.namespace}/${s.name}` }),
  );
}

function serviceRow(s: ServiceRow, later: boolean): Html {
  return el(
    'tr',
    { 'data-service': `${s.namespace}/${s.name}`, 'data-later': later ? '' : null },
    el('th', { scope: 'row' }, s.name),
    el('td', { class: 'desired' }, s.desired === null ? '-' : s.desired),
    el('td', { class: 'running' }, s.running),
    el('td', { class: s.desired !== null && s.healthy < s.desired ? 'healthy short' : 'healthy' }, s.healthy),
    el('td', { class: 'revision' }, s.revisions.join(', ') || '-'),
    el('td', {}, s.replicas.length === 0 ? '-' : replicaList(s)),
  );
}

function renderServices(overview: Overview, firstScreenRows: number): Html[] {
  if (overview.services.length === 0) return [el('p', {}, 'No services.')];
  const byNamespace = new Map<string, ServiceRow[]>();
  for (const s of overview.services)
    byNamespace.set(s.namespace, [...(byNamespace.get(s.namespace) ?? []), s]);
  let drawn = 0;
  return [...byNamespace].map(([namespace, rows]) => {
    const first = drawn;
    drawn += rows.length;
    return el(
      'div',
      { class: 'namespace', 'data-later': first >= firstScreenRows ? '' : null },
      el('h3', {}, namespace),
      table(
        `Services of namespace ${namespace}`,
        ['Service', 'Desired', 'Running', 'Healthy', 'Revision', 'Replicas'],
        rows.map((row, i) => serviceRow(row, first + i >= firstScreenRows)),
      ),
    );
  });
}

function labelsText(labels: Record<string, string>): string {
  const entries = Object.entries(labels);
  return entries.length === 0 ? '-' : entries.map(([k, v]) => `${k}=${v}`).join(', ');
}

function nodeRow(n: NodeRow, actions: boolean): Html {
  const cells = [
    el('th', { scope: 'row' }, n.kind === 'local' ? `${n.name} (local)` : n.name),
    el('td', {}, n.status),
    el('td', { class: 'availability' }, n.availability),
    el('td', {}, labelsText(n.labels)),
    el('td', {}, n.replicas === null ? '-' : n.replicas),
  ];
  if (actions) {
    const next = n.availability === 'drain' ? 'active' : 'drain';
    const label = next === 'drain' ? `Drain ${n.name}` : `Activate ${n.name}`;
    cells.push(
      el('td', {}, el('button', { type: 'button', 'data-node': n.name, 'data-availability': next }, label)),
    );
  }
  return el('tr', { 'data-node': n.name }, ...cells);
}

function renderNodes(overview: Overview, signedIn: boolean): Html[] {
  const actions = signedIn && overview.canDrain;
  const headers = ['Node', 'Status', 'Availability', 'Labels', 'Replicas'];
  if (actions) headers.push('Action');
  return [
    table(
      'Nodes',
      headers,
      overview.nodes.map((n) => nodeRow(n, actions)),
    ),
  ];
}

interface HistoryGroup {
  revision: string;
  rolledBackFrom: string | undefined;
  entries: [HistoryEntry, ...HistoryEntry[]];
}

/** The audit log's entries of one rollout (consecutive, same revision) as one row. */
function historyGroups(history: HistoryEntry[]): HistoryGroup[] {
  const groups: HistoryGroup[] = [];
  for (const h of history) {
    const last = groups[groups.length - 1];
    if (last && last.revision === h.revision && last.rolledBackFrom === h.rolledBackFrom)
      last.entries.push(h);
    else groups.push({ revision: h.revision, rolledBackFrom: h.rolledBackFrom, entries: [h] });
  }
  return groups;
}

function historyOutcome(entries: HistoryGroup['entries']): Html {
  const outcomes = [...new Set(entries.map((h) => h.outcome))];
  const reason = entries.map((h) => h.reason).find((r) => r);
  const services = entries
    .map((h) => h.service || (h.job ? `job ${h.job.namespace}/${h.job.name}` : null))
    .filter((x) => x);
  return el(
    'td',
    { class: `outcome ${outcomes[0]!.replaceAll(' ', '-')}` },
    outcomes.join(', '),
    reason ? `: ${reason}` : '',
    services.length > 0 ? el('br') : null,
    services.join(', '),
  );
}

function historyRow(g: HistoryGroup, retry: boolean): Html {
  const h = g.entries[0];
  const actions = [
    el(
      'button',
      { type: 'button', 'data-plan': g.revision, 'aria-controls': 'revision-plan' },
      `Plan of ${short(g.revision)}`,
    ),
  ];
  if (retry) actions.push(retryButton(g.revision));
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
}

function renderHistory(overview: Overview, signedIn: boolean): Html[] {
  if (overview.history.length === 0) return [el('p', {}, 'Nothing deployed yet.')];
  const failed = new Set(overview.failed.map((f) => f.revision));
  return [
    table(
      'History, newest first',
      ['When', 'Revision', 'Author', 'Message', 'Outcome', 'Plan'],
      historyGroups(overview.history).map((g) => historyRow(g, signedIn && failed.has(g.revision))),
    ),
  ];
}
