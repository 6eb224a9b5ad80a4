// tracehouse web viewer: a client of the JSON API, written by hand, embedded in the binary as
// ES modules (one per view, plus shared helpers), loaded without a build step.
//
// Rules every module keeps:
// - Data never becomes markup. Every node is built with createElement and every piece of data
//   enters the page as a Text node or an attribute value (see `h` in dom.js). The server's
//   Content-Security-Policy forbids inline script as a second line of defence.
// - The URL is the view. Every state worth sharing (filters, sort, page, selected span) lives in
//   the path and query string, and rendering reads it from there, so links can be shared and
//   the back button restores what was on screen.
//
// This module is the router: it picks the view the URL names and renders it.

import { api, canRead, scopesText, session } from './api.js';
import { renderDashboard } from './dashboard.js';
import { h } from './dom.js';
import { renderList } from './trace-list.js';
import { currentRoute, errorBanner, navigate, paths, renderSignIn, setRenderer, shell } from './shell.js';
import { renderThread, renderThreads } from './threads.js';
import { renderTrace } from './trace-view.js';
import { renderUser, renderUsers } from './users.js';

// Same-page links carry data-nav; plain clicks become History navigation, while modified
// clicks (new tab, new window) keep the browser's behaviour.
document.addEventListener('click', (event) => {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target.closest && event.target.closest('a[data-nav]');
  if (!link) return;
  event.preventDefault();
  navigate(link.getAttribute('href'));
});
window.addEventListener('popstate', () => renderRoute());

// Each view module exports one renderer; the route's `view` names it.
const VIEWS = {
  list: renderList,
  dashboard: renderDashboard,
  trace: renderTrace,
  threads: renderThreads,
  thread: renderThread,
  users: renderUsers,
  user: renderUser,
};

let renderSeq = 0;
let teardown = null;
async function renderRoute() {
  const seq = ++renderSeq;
  const isCurrent = () => seq === renderSeq;
  if (teardown) {
    teardown();
    teardown = null;
  }
  if (!session.key) {
    renderSignIn();
    return;
  }
  if (!session.project) {
    try {
      session.project = await api('/api/projects/current/');
    } catch (error) {
      if (!isCurrent()) return;
      if (error.status === 401) {
        session.clear();
        renderSignIn(`Signed out: ${error.message}`);
        return;
      }
      shell(h('main', { class: 'page' }, errorBanner(error)));
      return;
    }
    if (!isCurrent()) return;
    if (!canRead(session.project)) {
      const scopes = scopesText(session.project);
      session.clear();
      renderSignIn(`Signed out: this key has the ${scopes} scope and cannot read traces`);
      return;
    }
  }
  const route = currentRoute();
  if (route.view === 'list' &&
    (location.pathname === '/' || location.pathname.replace(/\/+$/, '') === '/ui')) {
    // One canonical address per view, so history entries and shared links compare equal.
    history.replaceState(null, '', paths.list + location.search);
  }
  const view = VIEWS[route.view];
  if (view) {
    // A view returns its teardown (timers, window listeners), or a promise of it.
    const done = await view(route, isCurrent);
    if (isCurrent()) teardown = done;
    else if (done) done();
  } else {
    document.title = 'Not found · tracehouse';
    shell(h('main', { class: 'page' }, h('div', { class: 'empty' },
      h('h2', null, 'Nothing here'),
      h('p', null, 'This address is not a view of the trace viewer.'),
      h('a', { href: paths.list, 'data-nav': '' }, 'Go to the trace list'))));
  }
}

setRenderer(renderRoute);
// A module script runs after the document is parsed, so #app exists already.
renderRoute();
