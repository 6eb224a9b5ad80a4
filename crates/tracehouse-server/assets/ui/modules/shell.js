// The page frame shared by every view: routing paths, navigation, the top bar, sign-in, and
// the error and empty-state pieces the views have in common.

import { api, canAdmin, canRead, scopesText, session } from './api.js';
import { code, h } from './dom.js';

export const paths = {
  list: '/ui/traces',
  dashboard: '/ui/dashboard',
  trace: (traceId, spanId) => `/ui/traces/${encodeURIComponent(traceId)}${
    spanId ? `?span=${encodeURIComponent(spanId)}` : ''}`,
  threads: '/ui/threads',
  thread: (threadId) => `/ui/threads/${encodeURIComponent(threadId)}`,
  users: '/ui/users',
  user: (customerId) => `/ui/users/${encodeURIComponent(customerId)}`,
};

// One path segment, decoded; a malformed escape stays as it came.
function segment(raw) {
  try {
    return decodeURIComponent(raw);
  } catch (_) {
    return raw;
  }
}

export function currentRoute() {
  const path = location.pathname.replace(/\/+$/, '') || '/';
  const params = new URLSearchParams(location.search);
  if (path === '/' || path === '/ui' || path === paths.list) return { view: 'list', params };
  if (path === paths.dashboard) return { view: 'dashboard', params };
  if (path === paths.threads) return { view: 'threads', params };
  if (path === paths.users) return { view: 'users', params };
  const match = /^\/ui\/(traces|threads|users)\/([^/]+)$/.exec(path);
  if (match && match[1] === 'traces') return { view: 'trace', traceId: segment(match[2]), params };
  if (match && match[1] === 'threads') return { view: 'thread', threadId: segment(match[2]), params };
  if (match && match[1] === 'users') return { view: 'user', customerId: segment(match[2]), params };
  return { view: 'missing', params };
}

// The router (main.js) renders the view the URL names; views reach it through `render`, so no
// view module has to import the router that imports it.
let renderer = () => {};

export function setRenderer(fn) {
  renderer = fn;
}

function render() {
  return renderer();
}

export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

const root = () => document.getElementById('app');

// Where each top-level view was left, so the navigation bar returns to the same filters.
export const remembered = {
  list: paths.list,
  dashboard: paths.dashboard,
  threads: paths.threads,
  users: paths.users,
};

export function handleAuthFailure(error) {
  if (error && error.status === 401) {
    session.clear();
    renderSignIn(`Signed out: ${error.message}`);
    return true;
  }
  return false;
}

export function errorBanner(error) {
  return h('div', { class: 'error-banner', role: 'alert' }, String(error.message || error));
}

// ---------------------------------------------------------------------------------------
// Page frame.

export function shell(main) {
  const project = session.project;
  const header = h('header', { class: 'topbar' },
    h('a', { class: 'brand', href: paths.list, 'data-nav': '' },
      h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, h('i'), h('i'), h('i')),
      'tracehouse'),
    h('nav', { class: 'topnav' },
      h('a', { href: remembered.list, 'data-nav': '', id: 'nav-traces', 'aria-current': currentRoute().view === 'list' ? 'page' : null }, 'Traces'),
      h('a', { href: remembered.threads, 'data-nav': '', id: 'nav-threads', 'aria-current': ['threads', 'thread'].includes(currentRoute().view) ? 'page' : null }, 'Threads'),
      h('a', { href: remembered.users, 'data-nav': '', id: 'nav-users', 'aria-current': ['users', 'user'].includes(currentRoute().view) ? 'page' : null }, 'Users'),
      h('a', { href: remembered.dashboard, 'data-nav': '', id: 'nav-dashboard', 'aria-current': currentRoute().view === 'dashboard' ? 'page' : null }, 'Dashboard')),
    h('div', { class: 'spacer' }),
    project && h('span', { class: 'project', title: 'project of the API key' },
      'project ', h('strong', null, project.name)),
    project && !canAdmin(project) && h('span', {
      class: 'badge badge-muted', id: 'key-scopes',
      title: 'What this key may do: deleting traces needs a key with the admin scope',
    }, `${scopesText(project)} key`),
    h('button', {
      type: 'button',
      class: 'ghost',
      id: 'sign-out',
      onclick: () => {
        session.clear();
        render();
      },
    }, 'Sign out'));
  root().replaceChildren(header, main);
}

// ---------------------------------------------------------------------------------------
// Sign-in.

export function renderSignIn(message) {
  document.title = 'Sign in · tracehouse';
  const input = h('input', {
    id: 'api-key',
    name: 'api-key',
    type: 'password',
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'th_…',
    required: true,
  });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const feedback = h('p', { class: 'form-error', id: 'sign-in-error', role: 'alert' }, message || '');
  const form = h('form', { class: 'signin-card', id: 'sign-in' },
    h('div', { class: 'brand big' },
      h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, h('i'), h('i'), h('i')),
      'tracehouse'),
    h('label', { for: 'api-key' }, 'API key'),
    input,
    submit,
    feedback,
    h('p', { class: 'hint' },
      'The first ', code('tracehouse serve'), ' prints a key; ',
      code('tracehouse keys create --project NAME'), ' makes more. ',
      'The key is kept only in this browser tab and sent as ',
      code('Authorization: Bearer'), ' to the API.'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    submit.disabled = true;
    feedback.textContent = '';
    try {
      const project = await api('/api/projects/current/', undefined, key);
      if (!canRead(project)) {
        feedback.textContent = `This key has the ${scopesText(project)} scope: it can send spans ` +
          'but not read them. Sign in with a key that has the read (or admin) scope, made with ' +
          '`tracehouse keys create --scope read`.';
        return;
      }
      session.set(key);
      session.project = project;
      render();
    } catch (error) {
      feedback.textContent = error.status === 401
        ? `That key was not accepted: ${error.message}`
        : String(error.message);
    } finally {
      submit.disabled = false;
    }
  });
  root().replaceChildren(h('main', { class: 'signin' }, form));
  input.focus();
}

export function curlExample() {
  const now = new Date();
  const started = new Date(now.getTime() - 420);
  const span = {
    trace_unique_id: 'hello-trace',
    span_unique_id: 'hello-span',
    span_name: 'hello.chat',
    model: 'gpt-4o-mini',
    start_time: started.toISOString(),
    timestamp: now.toISOString(),
    prompt_messages: [{ role: 'user', content: 'Say hello' }],
    completion_message: { role: 'assistant', content: 'Hello!' },
    prompt_tokens: 9,
    completion_tokens: 3,
    customer_identifier: 'first-customer',
  };
  return [
    `curl -X POST ${location.origin}/api/v1/traces/ingest \\`,
    '  -H "Authorization: Bearer $TRACEHOUSE_API_KEY" \\',
    "  -H 'Content-Type: application/json' \\",
    `  -d '${JSON.stringify([span])}'`,
  ].join('\n');
}

