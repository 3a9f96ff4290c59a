import { escapeHtml, renderRegions } from './dashboard-view.js';
import type { Overview } from './overview.js';

/** JSON inside a `<script type="application/json">` block: nothing in it can close the element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replaceAll('<', '\\u003c')
    .replaceAll('>', '\\u003e')
    .replaceAll('&', '\\u0026')
    .replaceAll('\u2028', '\\u2028')
    .replaceAll('\u2029', '\\u2029');
}

/**
 * Service rows in the page's first frame: a tall screen's worth. Laying out 100 rows took about
 * as long as everything else in the first paint on a small machine; the rows after these are in
 * the page from the start but displayed one frame later, below the fold.
 */
export const FIRST_SCREEN_ROWS = 30;

/**
 * Displays the rows held back from the first frame once it is painted. Inline (allowed by its
 * hash) rather than in the client, so they appear even when the client's file does not load.
 */
export const REVEAL_SCRIPT =
  "requestAnimationFrame(()=>setTimeout(()=>{for(const e of document.querySelectorAll('[data-later]'))e.removeAttribute('data-later')}))";

/** Without JavaScript the held-back rows are displayed at once (allowed by its hash). */
export const NOSCRIPT_STYLE = '[data-later]{display:revert}';

/** What the page links or inlines, read once when the routes start. */
export interface DashboardAssets {
  /** The stylesheet, inlined: the first paint waits for no second request (the CSP allows it by hash). */
  style: string;
  /** The client's URL, versioned by its content so a browser may keep it. */
  scriptPath: string;
}

/**
 * The dashboard's page, rendered with the cluster in it so that the first response is the first
 * screen: no script, stylesheet or API call stands before the first paint. The overview also rides
 * along as a JSON data block (never executed; the CSP allows no inline script) from which the
 * client keeps the page live. The forms work without JavaScript; the action buttons need it (they
 * send the CSRF token).
 */
export function dashboardPage(args: {
  overview: Overview;
  /** The session's CSRF token when signed in; null shows the login form. */
  csrf: string | null;
  loginFailed: boolean;
  assets: DashboardAssets;
}): string {
  const { csrf } = args;
  const regions = renderRegions(args.overview, csrf !== null, { firstScreenRows: FIRST_SCREEN_ROWS });
  const session =
    csrf === null
      ? `<form class="login" method="post" action="/dashboard/login">
      <label for="token">Dashboard token</label>
      <input id="token" name="token" type="password" autocomplete="current-password" required>
      <button type="submit">Sign in</button>
      ${args.loginFailed ? '<p class="error" role="alert">That token is not the dashboard token.</p>' : ''}
    </form>`
      : `<form class="logout" method="post" action="/dashboard/logout">
      <span>Signed in</span> <button type="submit">Sign out</button>
    </form>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${csrf === null ? '' : `<meta name="csrf-token" content="${escapeHtml(csrf)}">`}
<title>berth</title>
<style>${args.assets.style}</style>
<noscript><style>${NOSCRIPT_STYLE}</style></noscript>
<script src="${escapeHtml(args.assets.scriptPath)}" defer></script>
</head>
<body data-rendered="server">
<a class="skip" href="#main">Skip to the dashboard</a>
<header>
  <h1>berth</h1>
  <nav aria-label="Sections">
    <a href="#status-heading">Status</a> <a href="#rollout-heading">Rollout</a>
    <a href="#services-heading">Services</a> <a href="#nodes-heading">Nodes</a>
    <a href="#history-heading">History</a> <a href="#head-plan-heading">Head plan</a>
  </nav>
  ${session}
</header>
<main id="main" tabindex="-1">
  <section aria-labelledby="status-heading">
    <h2 id="status-heading">Status</h2>
    <div id="status" aria-live="polite">${regions.status}</div>
    <div id="actions">${regions.actions}</div>
    <p id="action-result" role="status" aria-live="polite"></p>
  </section>
  <section aria-labelledby="rollout-heading">
    <h2 id="rollout-heading">Rollout</h2>
    <div id="rollout" aria-live="polite">${regions.rollout}</div>
  </section>
  <section aria-labelledby="services-heading">
    <h2 id="services-heading">Services</h2>
    <div id="services">${regions.services}</div>
  </section>
  <section aria-labelledby="nodes-heading">
    <h2 id="nodes-heading">Nodes</h2>
    <div id="nodes">${regions.nodes}</div>
  </section>
  <section aria-labelledby="logs-heading" id="logs-section" hidden>
    <h2 id="logs-heading">Logs</h2>
    <div id="logs-controls"></div>
    <pre id="logs" tabindex="0" aria-label="Log lines"></pre>
  </section>
  <section aria-labelledby="history-heading">
    <h2 id="history-heading">History</h2>
    <div id="history">${regions.history}</div>
    <div id="revision-plan" aria-live="polite"></div>
  </section>
  <section aria-labelledby="head-plan-heading" class="wide">
    <h2 id="head-plan-heading">Branch head against the live cluster</h2>
    <button type="button" id="show-head-plan" aria-controls="head-plan">Show the plan of the branch head</button>
    <div id="head-plan" aria-live="polite"></div>
  </section>
  <noscript><p>Without JavaScript this page shows the cluster as it was when loaded (reload it to see it now; the same data is at <a href="/v1/overview">/v1/overview</a>), and its action buttons do nothing.</p></noscript>
</main>
<script>${REVEAL_SCRIPT}</script>
<script type="application/json" id="overview-data">${scriptJson(args.overview)}</script>
</body>
</html>
`;
}
