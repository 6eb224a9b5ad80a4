// tracehouse web viewer: a client of the JSON API, written by hand, embedded in the binary.
//
// Rules this file keeps:
// - Data never becomes markup. Every node is built with createElement and every piece of data
//   enters the page as a Text node or an attribute value (see `h`). The server's
//   Content-Security-Policy forbids inline script as a second line of defence.
// - The URL is the view. Every state worth sharing (filters, sort, page, selected span) lives in
//   the path and query string, and rendering reads it from there, so links can be shared and
//   the back button restores what was on screen.
// - Big traces stay cheap: the waterfall renders only the rows in view (virtual scrolling), and
//   JSON and long text render their hidden parts only when opened.
'use strict';

(() => {
  const KEY_STORAGE = 'tracehouse.apiKey';
  const ROW_HEIGHT = 28; // px; must match .wf-row in app.css
  const OVERSCAN_ROWS = 12;
  const LIVE_INTERVAL_MS = 5000;
  const TEXT_PREVIEW_CHARS = 2000;
  const TEXT_PREVIEW_LINES = 30;
  const JSON_STRING_PREVIEW = 300;
  const JSON_CHILDREN_BATCH = 200;
  const MAX_INDENT_LEVELS = 24;
  const DEFAULT_SORT = '-start_time';
  const PAGE_SIZES = [25, 50, 100];
  const DEFAULT_PAGE_SIZE = 50;

  const TIME_PRESETS = [
    ['', 'All time', 0],
    ['15m', 'Last 15 minutes', 15 * 60e3],
    ['1h', 'Last hour', 3600e3],
    ['6h', 'Last 6 hours', 6 * 3600e3],
    ['24h', 'Last 24 hours', 24 * 3600e3],
    ['7d', 'Last 7 days', 7 * 86400e3],
    ['30d', 'Last 30 days', 30 * 86400e3],
  ];

  const LIST_COLUMNS = [
    { label: 'Name', sort: 'name', firstDescending: false },
    { label: 'Start', sort: 'start_time', firstDescending: true },
    { label: 'Duration', sort: 'duration', firstDescending: true, numeric: true },
    { label: 'Spans', sort: 'span_count', firstDescending: true, numeric: true },
    { label: 'Tokens', sort: 'total_tokens', firstDescending: true, numeric: true },
    { label: 'Cost', sort: 'total_cost', firstDescending: true, numeric: true },
    { label: 'Status', sort: 'error_count', firstDescending: true },
    { label: 'Customer', sort: 'customer_identifier', firstDescending: false },
  ];

  // Colours per kind of span; kinds are an open set, so unknown ones hash onto spare colours.
  const LOG_TYPE_CLASS = {
    workflow: 'lt-workflow',
    agent: 'lt-agent',
    task: 'lt-task',
    tool: 'lt-tool',
    chat: 'lt-llm',
    completion: 'lt-llm',
    response: 'lt-llm',
    generation: 'lt-llm',
    embedding: 'lt-embedding',
    transcription: 'lt-audio',
    speech: 'lt-audio',
    custom: 'lt-custom',
  };

  // Span fields shown in their own sections of the detail panel; everything else is listed
  // under "Other fields", so no field a client sent is ever hidden.
  const SHOWN_FIELDS = new Set([
    'children', 'orphan', 'times_inferred', 'depth_truncated', 'trace_unique_id',
    'span_unique_id', 'span_parent_id', 'span_name', 'log_type', 'start_time', 'timestamp',
    'end_time', 'latency', 'model', 'provider_id', 'status', 'status_code', 'error_message',
    'prompt_tokens', 'completion_tokens', 'total_tokens', 'cost', 'customer_identifier',
    'session_identifier', 'thread_identifier', 'trace_group_identifier', 'environment',
    'span_workflow_name', 'span_path', 'prompt_messages', 'completion_message',
    'completion_messages', 'input', 'output', 'metadata', 'tools', 'time_to_first_token',
  ]);

  // ---------------------------------------------------------------------------------------
  // DOM construction. The only way this file puts anything on the page.

  function h(tag, props, ...children) {
    const element = document.createElement(tag);
    if (props) {
      for (const [name, value] of Object.entries(props)) {
        if (value === undefined || value === null || value === false) continue;
        if (name === 'class') element.className = value;
        else if (name === 'dataset') Object.assign(element.dataset, value);
        else if (name.startsWith('on') && typeof value === 'function') {
          element.addEventListener(name.slice(2), value);
        } else element.setAttribute(name, value === true ? '' : String(value));
      }
    }
    return appendAll(element, children);
  }

  function appendAll(element, children) {
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      // append() of a string makes a Text node: it is never parsed as HTML.
      element.append(child instanceof Node ? child : String(child));
    }
    return element;
  }

  const code = (text) => h('code', null, text);

  function badge(kind, text, title) {
    return h('span', { class: `badge badge-${kind}`, title }, text);
  }

  // ---------------------------------------------------------------------------------------
  // Formatting.

  const TIME_RE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/;

  // Milliseconds since the epoch, keeping the sub-millisecond digits Date.parse would drop:
  // spans of a few microseconds must still get distinct waterfall positions.
  function parseTime(text) {
    if (typeof text !== 'string') return NaN;
    const match = TIME_RE.exec(text);
    if (!match) return Date.parse(text);
    const whole = Date.parse(match[1] + (match[3] || 'Z'));
    return whole + (match[2] ? Number(`0${match[2]}`) * 1000 : 0);
  }

  const pad = (n, width = 2) => String(n).padStart(width, '0');

  function fmtTime(ms, withMillis = false) {
    if (!Number.isFinite(ms)) return '—';
    const d = new Date(ms);
    const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    return `${date} ${time}${withMillis ? `.${pad(d.getMilliseconds(), 3)}` : ''}`;
  }

  function fmtRelative(ms) {
    if (!Number.isFinite(ms)) return '';
    const seconds = Math.round((Date.now() - ms) / 1000);
    if (seconds < 0) return 'in the future';
    if (seconds < 60) return `${seconds}s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ago`;
    return `${Math.floor(seconds / 86400)}d ago`;
  }

  function fmtDuration(seconds) {
    if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return '—';
    const ms = seconds * 1000;
    if (ms < 1) return `${Math.round(ms * 1000)} µs`;
    if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
    if (seconds < 60) return `${seconds.toFixed(2)} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes}m ${Math.round(seconds - minutes * 60)}s`;
    return `${Math.floor(minutes / 60)}h ${minutes % 60}m`;
  }

  function fmtInt(value) {
    if (typeof value !== 'number' || !Number.isFinite(value)) return '—';
    return value.toLocaleString('en-US');
  }

  // Costs span many orders of magnitude (a cached embedding vs. a long agent run): keep three
  // significant digits below a dollar instead of rounding small costs to $0.00.
  function fmtCost(value) {
    if (typeof value !== 'number' || !Number.isFinite(value)) return '—';
    if (value === 0) return '$0';
    if (Math.abs(value) >= 1) return `$${value.toFixed(2)}`;
    const digits = Math.min(12, 3 - Math.floor(Math.log10(Math.abs(value))));
    return `$${value.toFixed(digits).replace(/0+$/, '').replace(/\.$/, '')}`;
  }

  function plural(n, one, many) {
    return `${fmtInt(n)} ${n === 1 ? one : many}`;
  }

  // ---------------------------------------------------------------------------------------
  // Clipboard.

  async function copyText(text, button) {
    let copied = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        copied = true;
      }
    } catch (_) {
      copied = false;
    }
    if (!copied) {
      // Plain-HTTP origins other than localhost have no clipboard API; fall back to a
      // selection copy.
      const buffer = h('textarea', { class: 'copy-buffer', 'aria-hidden': 'true' });
      buffer.value = text;
      document.body.append(buffer);
      buffer.select();
      try {
        copied = document.execCommand('copy');
      } catch (_) {
        copied = false;
      }
      buffer.remove();
    }
    if (button) {
      const label = button.textContent;
      button.textContent = copied ? 'Copied' : 'Copy failed';
      button.classList.add('flash');
      setTimeout(() => {
        button.textContent = label;
        button.classList.remove('flash');
      }, 1200);
    }
  }

  function copyButton(text, label = 'Copy') {
    return h('button', {
      type: 'button',
      class: 'copy',
      title: 'Copy to clipboard',
      onclick: (event) => {
        event.stopPropagation();
        event.preventDefault();
        copyText(typeof text === 'function' ? text() : String(text), event.currentTarget);
      },
    }, label);
  }

  // ---------------------------------------------------------------------------------------
  // Session and API.

  const session = {
    project: null,
    get key() {
      try {
        return sessionStorage.getItem(KEY_STORAGE) || '';
      } catch (_) {
        return '';
      }
    },
    set(key) {
      sessionStorage.setItem(KEY_STORAGE, key);
    },
    clear() {
      this.project = null;
      try {
        sessionStorage.removeItem(KEY_STORAGE);
      } catch (_) {
        // Storage disabled: nothing was kept, nothing to clear.
      }
    },
  };

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, body, key = session.key, method = body === undefined ? 'GET' : 'POST') {
    const init = {
      method,
      headers: { Authorization: `Bearer ${key}` },
      cache: 'no-store',
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      throw new ApiError(0, `cannot reach the server (${error.message})`);
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null;
      }
    }
    if (!response.ok) {
      const message = data && typeof data.message === 'string'
        ? data.message
        : `${response.status} ${response.statusText}`;
      throw new ApiError(response.status, message);
    }
    return data;
  }

  // ---------------------------------------------------------------------------------------
  // Routing: History API paths under /ui/, which the server answers with this same page.

  const paths = {
    list: '/ui/traces',
    dashboard: '/ui/dashboard',
    trace: (traceId, spanId) => `/ui/traces/${encodeURIComponent(traceId)}${
      spanId ? `?span=${encodeURIComponent(spanId)}` : ''}`,
  };

  function currentRoute() {
    const path = location.pathname.replace(/\/+$/, '') || '/';
    const params = new URLSearchParams(location.search);
    if (path === '/' || path === '/ui' || path === paths.list) return { view: 'list', params };
    if (path === paths.dashboard) return { view: 'dashboard', params };
    const match = /^\/ui\/traces\/([^/]+)$/.exec(path);
    if (match) {
      let traceId;
      try {
        traceId = decodeURIComponent(match[1]);
      } catch (_) {
        traceId = match[1];
      }
      return { view: 'trace', traceId, params };
    }
    return { view: 'missing', params };
  }

  function navigate(url, { replace = false } = {}) {
    if (replace) history.replaceState(null, '', url);
    else history.pushState(null, '', url);
    render();
  }

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
  window.addEventListener('popstate', () => render());

  const root = () => document.getElementById('app');
  let renderSeq = 0;
  let teardown = null;
  let lastListUrl = paths.list;
  let lastDashboardUrl = paths.dashboard;

  // What the signed-in key may do, from /api/projects/current/ (older servers send no
  // scopes: their keys could do everything).
  function scopesText(project) {
    return Array.isArray(project.scopes) ? project.scopes.join(', ') : 'admin';
  }
  function canRead(project) {
    return !project.can || Boolean(project.can.read);
  }
  function canAdmin(project) {
    return !project || !project.can || Boolean(project.can.admin);
  }

  async function render() {
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
    if (route.view === 'list') {
      if (location.pathname === '/' || location.pathname.replace(/\/+$/, '') === '/ui') {
        // One canonical address per view, so history entries and shared links compare equal.
        history.replaceState(null, '', paths.list + location.search);
      }
      teardown = renderList(route, isCurrent);
    } else if (route.view === 'dashboard') {
      teardown = renderDashboard(route, isCurrent);
    } else if (route.view === 'trace') {
      teardown = await renderTrace(route, isCurrent);
    } else {
      document.title = 'Not found · tracehouse';
      shell(h('main', { class: 'page' }, h('div', { class: 'empty' },
        h('h2', null, 'Nothing here'),
        h('p', null, 'This address is not a view of the trace viewer.'),
        h('a', { href: paths.list, 'data-nav': '' }, 'Go to the trace list'))));
    }
  }

  function handleAuthFailure(error) {
    if (error && error.status === 401) {
      session.clear();
      renderSignIn(`Signed out: ${error.message}`);
      return true;
    }
    return false;
  }

  function errorBanner(error) {
    return h('div', { class: 'error-banner', role: 'alert' }, String(error.message || error));
  }

  // ---------------------------------------------------------------------------------------
  // Page frame.

  function shell(main) {
    const project = session.project;
    const header = h('header', { class: 'topbar' },
      h('a', { class: 'brand', href: paths.list, 'data-nav': '' },
        h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, h('i'), h('i'), h('i')),
        'tracehouse'),
      h('nav', { class: 'topnav' },
        h('a', { href: lastListUrl, 'data-nav': '', id: 'nav-traces', 'aria-current': currentRoute().view === 'list' ? 'page' : null }, 'Traces'),
        h('a', { href: lastDashboardUrl, 'data-nav': '', id: 'nav-dashboard', 'aria-current': currentRoute().view === 'dashboard' ? 'page' : null }, 'Dashboard')),
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

  function renderSignIn(message) {
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

  // ---------------------------------------------------------------------------------------
  // Trace list.

  function positiveInt(text, fallback) {
    const n = Number(text);
    return Number.isInteger(n) && n > 0 ? n : fallback;
  }

  function listStateFrom(params) {
    const size = positiveInt(params.get('size'), DEFAULT_PAGE_SIZE);
    return {
      time: params.get('time') || '',
      status: params.get('status') || '',
      model: params.get('model') || '',
      customer: params.get('customer') || '',
      env: params.get('env') || '',
      q: params.get('q') || '',
      meta: params.getAll('meta').filter((pair) => pair.includes('=')),
      from: params.get('from') || '',
      to: params.get('to') || '',
      span: (params.get('span') || '').includes('=') ? params.get('span') : '',
      sort: params.get('sort') || DEFAULT_SORT,
      page: positiveInt(params.get('page'), 1),
      size: PAGE_SIZES.includes(size) ? size : DEFAULT_PAGE_SIZE,
      live: params.get('live') === '1',
    };
  }

  function listUrl(state) {
    const params = new URLSearchParams();
    for (const key of ['q', 'time', 'status', 'model', 'customer', 'env', 'from', 'to', 'span']) {
      if (state[key]) params.set(key, state[key]);
    }
    for (const pair of state.meta || []) params.append('meta', pair);
    if (state.sort && state.sort !== DEFAULT_SORT) params.set('sort', state.sort);
    if (state.page > 1) params.set('page', String(state.page));
    if (state.size && state.size !== DEFAULT_PAGE_SIZE) params.set('size', String(state.size));
    if (state.live) params.set('live', '1');
    const query = params.toString();
    return query ? `${paths.list}?${query}` : paths.list;
  }

  const hasFilters = (state) => Boolean(
    state.time || state.status || state.model || state.customer || state.env || state.q ||
    state.meta.length || state.from || state.to || state.span);

  // A metadata value typed as text may have been sent as a number or boolean; the values of
  // one filter are OR-ed, so asking for every reading matches whichever was stored.
  function metadataValues(raw) {
    const values = [raw];
    if (/^-?\d+(\.\d+)?$/.test(raw)) values.push(Number(raw));
    if (raw === 'true' || raw === 'false') values.push(raw === 'true');
    return values;
  }

  function listRequestBody(state) {
    const body = { page: state.page, page_size: state.size, sort_by: state.sort };
    const filters = {};
    const preset = TIME_PRESETS.find(([id]) => id === state.time);
    if (preset && preset[2] > 0) body.start_time = new Date(Date.now() - preset[2]).toISOString();
    // A dashboard bucket: traces with a span that started in it (and, with a span filter,
    // the same span matches it), which is what the bucket counted.
    if (state.from) body.span_start_time = state.from;
    if (state.to) body.span_end_time = state.to;
    if (state.span) {
      const split = state.span.indexOf('=');
      const field = state.span.slice(0, split);
      const value = state.span.slice(split + 1);
      filters[field] = value === '' ? { operator: 'isnull', value: [true] } : { operator: '', value: [value] };
    }
    if (state.q) body.search = state.q;
    if (state.env) body.environment = state.env;
    if (state.model) filters.model = { operator: 'icontains', value: [state.model] };
    if (state.customer) {
      filters.customer_identifier = { operator: 'icontains', value: [state.customer] };
    }
    if (state.status === 'error') filters.error_count = { operator: 'gt', value: [0] };
    if (state.status === 'ok') filters.error_count = { operator: '', value: [0] };
    for (const pair of state.meta) {
      const split = pair.indexOf('=');
      const key = pair.slice(0, split).trim();
      if (!key) continue;
      const field = `metadata__${key}`;
      const values = metadataValues(pair.slice(split + 1).trim());
      filters[field] = filters[field]
        ? { operator: '', value: filters[field].value.concat(values) }
        : { operator: '', value: values };
    }
    if (Object.keys(filters).length) body.filters = filters;
    return body;
  }

  const seenModels = new Set();

  function renderList(route, isCurrent) {
    const state = listStateFrom(route.params);
    lastListUrl = listUrl(state);
    document.title = 'Traces · tracehouse';
    const go = (changes) => navigate(listUrl({ ...state, page: 1, ...changes }));

    // Filter bar.
    const field = (name, label, value, attrs = {}) => h('label', { class: `field field-${name}` },
      h('span', null, label),
      h('input', { name, id: `filter-${name}`, value, autocomplete: 'off', ...attrs }));
    const select = (name, label, options, value) => h('label', { class: `field field-${name}` },
      h('span', null, label),
      h('select', { name, id: `filter-${name}` },
        options.map(([id, text]) => h('option', { value: id, selected: id === value }, text))));
    const metaInput = h('input', {
      name: 'meta',
      id: 'filter-meta',
      placeholder: 'key=value',
      autocomplete: 'off',
    });
    const metaError = h('span', { class: 'field-error', role: 'alert' });
    const chip = (text, label, id, changes) => h('span', { class: 'chip', id },
      h('span', { class: 'chip-text' }, text),
      h('button', { type: 'button', 'aria-label': `remove filter ${label}`, onclick: () => go(changes) }, '×'));
    const chips = h('div', { class: 'chips' },
      (state.from || state.to) && chip(
        `${state.from ? fmtTime(parseTime(state.from)) : '…'} – ${state.to ? fmtTime(parseTime(state.to)) : '…'}`,
        'time range', 'chip-range', { from: '', to: '' }),
      state.span && chip(state.span.endsWith('=') ? `${state.span.slice(0, -1)} is empty` : state.span.replace('=', ' = '),
        state.span, 'chip-span', { span: '' }),
      state.meta.map((pair) => chip(pair, pair, null, { meta: state.meta.filter((p) => p !== pair) })));
    const liveToggle = h('input', { type: 'checkbox', id: 'live-toggle', checked: state.live });
    const form = h('form', { class: 'filters', id: 'filters', role: 'search' },
      h('div', { class: 'filter-row' },
        field('q', 'Search', state.q, {
          type: 'search',
          placeholder: 'words in span names, inputs or outputs',
          class: 'wide',
        }),
        select('time', 'Time', TIME_PRESETS.map(([id, text]) => [id, text]), state.time),
        select('status', 'Status', [['', 'Any'], ['error', 'Errors'], ['ok', 'No errors']],
          state.status),
        h('div', { class: 'filter-actions' },
          h('button', { type: 'submit', class: 'primary', id: 'apply-filters' }, 'Apply'),
          hasFilters(state) && h('a', {
            href: listUrl({ sort: state.sort, size: state.size, meta: [], page: 1 }),
            'data-nav': '',
            id: 'clear-filters',
            class: 'subtle',
          }, 'Clear'))),
      h('div', { class: 'filter-row' },
        field('model', 'Model', state.model, { list: 'model-options', placeholder: 'any' }),
        field('customer', 'Customer', state.customer, { placeholder: 'any' }),
        field('env', 'Environment', state.env, { placeholder: 'any' }),
        h('label', { class: 'field field-meta' }, h('span', null, 'Metadata'), metaInput),
        chips,
        metaError,
        h('div', { class: 'spacer' }),
        h('label', { class: 'live', title: `re-reads this page every ${LIVE_INTERVAL_MS / 1000} s` },
          liveToggle, h('span', null, 'Live'))),
      h('datalist', { id: 'model-options' },
        [...seenModels].sort().map((model) => h('option', { value: model }))));

    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const meta = [...state.meta];
      const pending = metaInput.value.trim();
      if (pending) {
        if (!pending.includes('=') || pending.startsWith('=')) {
          metaError.textContent = 'metadata filters look like key=value';
          metaInput.focus();
          return;
        }
        if (!meta.includes(pending)) meta.push(pending);
      }
      const text = (name) => String(data.get(name) || '').trim();
      go({
        from: state.from,
        to: state.to,
        span: state.span,
        q: text('q'),
        time: text('time'),
        status: text('status'),
        model: text('model'),
        customer: text('customer'),
        env: text('env'),
        meta,
      });
    });
    for (const name of ['time', 'status']) {
      form.querySelector(`select[name="${name}"]`).addEventListener('change', () => form.requestSubmit());
    }

    // Results.
    const summary = h('div', { class: 'results-summary', id: 'results-summary' }, 'Loading…');
    const updated = h('span', { class: 'updated', id: 'updated-at' });
    const tableBody = h('tbody');
    const [sortField, sortDescending] = state.sort.startsWith('-')
      ? [state.sort.slice(1), true]
      : [state.sort, false];
    const headRow = h('tr', null, LIST_COLUMNS.map((column) => {
      const active = column.sort === sortField;
      const next = active
        ? (sortDescending ? column.sort : `-${column.sort}`)
        : (column.firstDescending ? `-${column.sort}` : column.sort);
      return h('th', {
        scope: 'col',
        class: column.numeric ? 'num' : null,
        'aria-sort': active ? (sortDescending ? 'descending' : 'ascending') : 'none',
        dataset: { sort: column.sort },
      }, h('a', {
        href: listUrl({ ...state, sort: next, page: 1 }),
        'data-nav': '',
        class: `sort${active ? ' active' : ''}`,
        title: `sort by ${column.label.toLowerCase()}`,
      }, column.label, h('span', { class: 'sort-mark', 'aria-hidden': 'true' },
        active ? (sortDescending ? '▼' : '▲') : '↕')));
    }));
    const table = h('table', { class: 'trace-table', id: 'trace-table' }, h('thead', null, headRow), tableBody);
    const pager = h('nav', { class: 'pager', id: 'pager', 'aria-label': 'pages' });
    const results = h('section', { class: 'results' },
      h('div', { class: 'results-head' }, summary, updated), table, pager);
    const main = h('main', { class: 'page list-view' }, form, results);
    shell(main);

    let lastData = null;
    async function load(quiet) {
      if (!quiet) results.classList.add('loading');
      let data;
      try {
        data = await api('/api/traces/list/', listRequestBody(state));
      } catch (error) {
        if (!isCurrent()) return;
        if (handleAuthFailure(error)) return;
        results.classList.remove('loading');
        // A failed live refresh keeps the rows it has and says why next to them.
        if (quiet && lastData) {
          updated.textContent = `refresh failed: ${error.message}`;
          return;
        }
        summary.replaceChildren(errorBanner(error));
        tableBody.replaceChildren();
        table.hidden = true;
        return;
      }
      if (!isCurrent()) return;
      lastData = data;
      results.classList.remove('loading');
      showResults(data);
      updated.textContent = state.live ? `live · updated ${fmtTime(Date.now()).slice(11)}` : '';
    }

    function showResults(data) {
      const rows = Array.isArray(data.results) ? data.results : [];
      for (const trace of rows) {
        for (const model of trace.models || []) seenModels.add(model);
      }
      const datalist = form.querySelector('#model-options');
      datalist.replaceChildren(...[...seenModels].sort().map((model) => h('option', { value: model })));
      const count = typeof data.count === 'number' ? data.count : rows.length;
      // Past 10,000 matches a filtered list stops counting: the count is a lower bound.
      const exact = data.count_is_exact !== false;
      const counted = exact ? plural(count, 'trace', 'traces') : `${fmtInt(count)}+ traces`;
      const first = count ? (state.page - 1) * state.size + 1 : 0;
      const last = (state.page - 1) * state.size + rows.length;
      summary.replaceChildren(rows.length
        ? h('span', null, h('strong', { id: 'trace-count' }, counted),
          count > rows.length ? ` · showing ${fmtInt(first)}–${fmtInt(last)}` : '')
        : h('span', null, counted));
      table.hidden = rows.length === 0;
      tableBody.replaceChildren(...rows.map(traceRow));
      const empty = results.querySelector('.empty');
      if (empty) empty.remove();
      if (!rows.length) {
        results.insertBefore(emptyState(state), pager);
      }
      pager.replaceChildren();
      if (count > 0) {
        const pages = Math.max(1, Math.ceil(count / state.size));
        const pageLink = (label, page, enabled, id) => (enabled
          ? h('a', { href: listUrl({ ...state, page }), 'data-nav': '', class: 'button', id, rel: id === 'next-page' ? 'next' : 'prev' }, label)
          : h('span', { class: 'button disabled', id, 'aria-disabled': 'true' }, label));
        const sizeSelect = h('select', { id: 'page-size', 'aria-label': 'rows per page' },
          PAGE_SIZES.map((size) => h('option', { value: String(size), selected: size === state.size },
            `${size} per page`)));
        sizeSelect.addEventListener('change', () => go({ size: Number(sizeSelect.value) }));
        pager.append(
          pageLink('‹ Previous', state.page - 1, state.page > 1, 'prev-page'),
          h('span', { class: 'page-of', id: 'page-of' },
            exact ? `Page ${fmtInt(state.page)} of ${fmtInt(pages)}` : `Page ${fmtInt(state.page)} of ${fmtInt(pages)}+`),
          pageLink('Next ›', state.page + 1, Boolean(data.next), 'next-page'),
          h('div', { class: 'spacer' }),
          sizeSelect);
      }
    }

    function traceRow(trace) {
      const href = paths.trace(trace.trace_unique_id);
      const errors = Number(trace.error_count) || 0;
      const start = parseTime(trace.start_time);
      const models = Array.isArray(trace.models) ? trace.models : [];
      const row = h('tr', { class: errors ? 'has-error' : null, dataset: { traceId: trace.trace_unique_id } },
        h('td', { class: 'c-name' },
          h('a', { href, 'data-nav': '', class: 'trace-link', title: trace.name }, trace.name || '(unnamed)'),
          models.length ? h('span', { class: 'sub models' }, models.join(', ')) : null),
        h('td', { class: 'c-start', title: trace.start_time },
          fmtTime(start), h('span', { class: 'sub' }, fmtRelative(start))),
        h('td', { class: 'num' }, fmtDuration(trace.duration)),
        h('td', { class: 'num c-spans' }, fmtInt(trace.span_count)),
        h('td', {
          class: 'num',
          title: `${fmtInt(trace.total_prompt_tokens)} prompt + ${fmtInt(trace.total_completion_tokens)} completion`,
        }, fmtInt(trace.total_tokens)),
        h('td', { class: 'num' }, fmtCost(trace.total_cost)),
        h('td', { class: 'c-status' }, errors
          ? badge('error', errors === 1 ? 'error' : `${fmtInt(errors)} errors`)
          : badge('ok', 'ok')),
        h('td', { class: 'c-customer' }, trace.customer_identifier || h('span', { class: 'muted' }, '—')));
      row.addEventListener('click', (event) => {
        if (event.target.closest('a, button')) return;
        navigate(href);
      });
      return row;
    }

    let timer = null;
    const startLive = () => {
      if (timer) return;
      timer = setInterval(() => {
        if (!document.hidden) load(true);
      }, LIVE_INTERVAL_MS);
    };
    const stopLive = () => {
      clearInterval(timer);
      timer = null;
    };
    liveToggle.addEventListener('change', () => {
      state.live = liveToggle.checked;
      // Live is a mode of this view, not a new view: replace the entry instead of adding one.
      history.replaceState(null, '', listUrl(state));
      lastListUrl = listUrl(state);
      if (state.live) {
        startLive();
        load(true);
      } else {
        stopLive();
        updated.textContent = '';
      }
    });
    if (state.live) startLive();
    load(false);
    return stopLive;
  }

  function curlExample() {
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

  function emptyState(state) {
    if (hasFilters(state) || state.page > 1) {
      return h('div', { class: 'empty', id: 'empty-state' },
        h('h2', null, 'No traces match'),
        h('p', null, state.page > 1
          ? 'This page is past the last trace.'
          : 'Nothing matches these filters. Widen the time range or remove a filter.'),
        h('a', { href: listUrl({ sort: state.sort, size: state.size, meta: [], page: 1 }), 'data-nav': '', class: 'button' },
          'Clear filters'));
    }
    const example = curlExample();
    return h('div', { class: 'empty', id: 'empty-state' },
      h('h2', null, 'No traces yet'),
      h('p', null, 'No traces yet — POST span logs to ', code('/api/v1/traces/ingest'),
        ' and they appear here. For example, with ', code('TRACEHOUSE_API_KEY'),
        ' set to the key you signed in with:'),
      h('div', { class: 'code-block' },
        h('pre', { class: 'curl-example', id: 'curl-example' }, example),
        copyButton(example)),
      h('p', { class: 'hint' },
        'OpenTelemetry exporters can send to ', code(`${location.origin}/v1/traces`),
        ' with the same header. Turn on ', h('strong', null, 'Live'),
        ' above to see traces as they arrive.'));
  }

  // ---------------------------------------------------------------------------------------
  // Dashboard: metrics over time from /api/metrics/timeseries/ and /api/metrics/top/, drawn as
  // hand-written SVG. Every label is a Text node (SVG <text>/<title> get textContent), like
  // the rest of this file.

  const SVG_NS = 'http://www.w3.org/2000/svg';
  const DASHBOARD_PRESETS = TIME_PRESETS.filter(([id]) => id !== '');
  const DEFAULT_DASHBOARD_TIME = '24h';
  const GROUP_OPTIONS = [
    ['', 'Nothing'],
    ['model', 'Model'],
    ['customer_identifier', 'Customer'],
    ['provider_id', 'Provider'],
    ['environment', 'Environment'],
    ['log_type', 'Span type'],
    ['span_workflow_name', 'Workflow'],
    ['status', 'Status'],
  ];
  const INTERVALS = [['', 'Auto'], ['minute', 'Minute'], ['hour', 'Hour'], ['day', 'Day'], ['week', 'Week']];
  // Series colours; "other" is always grey so it never reads as a named group.
  const SERIES_COLOURS = ['#4f46e5', '#0ea5e9', '#10b981', '#f59e0b', '#ec4899', '#8b5cf6', '#14b8a6', '#ef4444', '#84cc16', '#a16207'];
  const OTHER_COLOUR = '#94a3b8';
  const CHART_WIDTH = 640;
  const CHART_HEIGHT = 210;
  const CHART_MARGIN = { top: 10, right: 10, bottom: 24, left: 58 };

  function svg(tag, attrs, ...children) {
    const element = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'dataset') Object.assign(element.dataset, value);
      else if (name.startsWith('on') && typeof value === 'function') element.addEventListener(name.slice(2), value);
      else element.setAttribute(name, String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      element.append(child instanceof Node ? child : String(child));
    }
    return element;
  }

  function dashboardStateFrom(params) {
    const time = params.get('time') || '';
    return {
      time: DASHBOARD_PRESETS.some(([id]) => id === time) ? time : (params.get('from') ? '' : DEFAULT_DASHBOARD_TIME),
      from: params.get('from') || '',
      to: params.get('to') || '',
      group: params.get('group') || '',
      interval: INTERVALS.some(([id]) => id === params.get('interval')) ? params.get('interval') : '',
      model: params.get('model') || '',
      customer: params.get('customer') || '',
      env: params.get('env') || '',
      meta: params.getAll('meta').filter((pair) => pair.includes('=')),
    };
  }

  function dashboardUrl(state) {
    const params = new URLSearchParams();
    for (const key of ['time', 'from', 'to', 'group', 'interval', 'model', 'customer', 'env']) {
      if (state[key] && !(key === 'time' && state.time === DEFAULT_DASHBOARD_TIME && !state.from)) {
        params.set(key, state[key]);
      }
    }
    for (const pair of state.meta || []) params.append('meta', pair);
    const query = params.toString();
    return query ? `${paths.dashboard}?${query}` : paths.dashboard;
  }

  // `datetime-local` inputs speak local wall time without a zone; the API wants an instant.
  function localInputValue(ms) {
    const d = new Date(ms);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  function browserZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    } catch (_) {
      return 'UTC';
    }
  }

  // The request body shared by every chart: one range, one zone, the filters of the bar.
  function metricsBody(state, range) {
    const body = { start_time: range.start, end_time: range.end, tz: browserZone() };
    if (state.interval) body.interval = state.interval;
    if (state.env) body.environment = state.env;
    const filters = {};
    if (state.model) filters.model = { operator: 'icontains', value: [state.model] };
    if (state.customer) filters.customer_identifier = { operator: 'icontains', value: [state.customer] };
    for (const pair of state.meta) {
      const split = pair.indexOf('=');
      const key = pair.slice(0, split).trim();
      if (!key) continue;
      const field = `metadata__${key}`;
      const values = metadataValues(pair.slice(split + 1).trim());
      filters[field] = filters[field]
        ? { operator: '', value: filters[field].value.concat(values) }
        : { operator: '', value: values };
    }
    if (Object.keys(filters).length) body.filters = filters;
    return body;
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (value <= step * power) return step * power;
    }
    return 10 * power;
  }

  function bucketLabel(text, interval) {
    const ms = parseTime(text);
    if (!Number.isFinite(ms)) return text;
    const d = new Date(ms);
    const date = `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    if (interval === 'day' || interval === 'week') return date;
    return `${date} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  const fmtNumber = (value) => (Math.abs(value) >= 1000 || Number.isInteger(value)
    ? fmtInt(Math.round(value))
    : value.toPrecision(3));
  const fmtPercent = (value) => `${(value * 100).toFixed(value > 0 && value < 0.01 ? 2 : 1)}%`;

  // One chart. `series` are {label, kind, group, colour, values[]}; bars stack, lines overlay.
  // `onPick(bucketIndex, series|null)` opens the trace list for a bucket.
  function chart({ id, title, kind, buckets, series, interval, format, onPick }) {
    const width = CHART_WIDTH;
    const height = CHART_HEIGHT;
    const m = CHART_MARGIN;
    const plotWidth = width - m.left - m.right;
    const plotHeight = height - m.top - m.bottom;
    const n = buckets.length;
    const step = n ? plotWidth / n : plotWidth;
    let max = 0;
    for (let i = 0; i < n; i += 1) {
      if (kind === 'bar') {
        max = Math.max(max, series.reduce((sum, s) => sum + (Number(s.values[i]) || 0), 0));
      } else {
        for (const s of series) max = Math.max(max, Number(s.values[i]) || 0);
      }
    }
    const top = niceMax(max);
    const y = (value) => m.top + plotHeight - (value / top) * plotHeight;
    const grid = [0, 0.25, 0.5, 0.75, 1].map((f) => svg('g', { class: 'ch-tick' },
      svg('line', { x1: m.left, x2: width - m.right, y1: y(top * f), y2: y(top * f) }),
      svg('text', { x: m.left - 6, y: y(top * f) + 4, 'text-anchor': 'end' }, f === 0 ? '0' : format(top * f))));
    const labelEvery = Math.max(1, Math.ceil(n / 6));
    const xLabels = buckets.map((bucket, i) => (i % labelEvery === 0
      ? svg('text', { class: 'ch-x-label', x: m.left + i * step + step / 2, y: height - 6, 'text-anchor': 'middle' },
        bucketLabel(bucket.start, interval))
      : null));
    const marks = [];
    const pick = (i, s) => (event) => {
      event.stopPropagation();
      onPick(i, s);
    };
    if (kind === 'bar') {
      const barWidth = Math.max(1, step * 0.8);
      for (let i = 0; i < n; i += 1) {
        let base = 0;
        series.forEach((s, j) => {
          const value = Number(s.values[i]) || 0;
          if (value <= 0) return;
          marks.push(svg('rect', {
            class: 'ch-bar',
            x: m.left + i * step + (step - barWidth) / 2,
            y: y(base + value),
            width: barWidth,
            height: Math.max(0.5, y(base) - y(base + value)),
            fill: s.colour,
            dataset: { bucket: String(i), series: String(j) },
            onclick: pick(i, s),
          }, svg('title', null, `${s.label} · ${fmtTime(parseTime(buckets[i].start))} · ${format(value)}`)));
          base += value;
        });
      }
    } else {
      series.forEach((s, j) => {
        const points = s.values.map((value, i) => [m.left + i * step + step / 2, y(Number(value) || 0)]);
        marks.push(svg('polyline', {
          class: 'ch-line',
          fill: 'none',
          stroke: s.colour,
          points: points.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(' '),
        }));
        points.forEach(([px, py], i) => marks.push(svg('circle', {
          class: 'ch-point',
          cx: px.toFixed(1),
          cy: py.toFixed(1),
          r: n > 120 ? 1.5 : 3,
          fill: s.colour,
          dataset: { bucket: String(i), series: String(j) },
          onclick: pick(i, s),
        }, svg('title', null, `${s.label} · ${fmtTime(parseTime(buckets[i].start))} · ${format(Number(s.values[i]) || 0)}`))));
      });
    }
    // A transparent column per bucket under the marks: a click anywhere in it opens the bucket.
    const hits = buckets.map((_, i) => svg('rect', {
      class: 'ch-hit',
      x: m.left + i * step,
      y: m.top,
      width: step,
      height: plotHeight,
      dataset: { bucket: String(i) },
      onclick: pick(i, null),
    }));
    const picture = svg('svg', {
      class: `chart chart-${kind}`,
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-label': title,
      preserveAspectRatio: 'xMidYMid meet',
    }, grid, hits, marks, xLabels);
    const legend = h('ul', { class: 'ch-legend' }, series.map((s) => h('li', { dataset: { kind: s.kind } },
      h('span', { class: 'ch-swatch', style: `background:${s.colour}` }),
      h('span', { class: 'legend-label' }, s.label),
      s.total !== undefined && h('span', { class: 'legend-total' }, format(Number(s.total) || 0)))));
    return h('section', { class: 'chart-card', id },
      h('h3', null, title), picture, legend);
  }

  // One colour per series label across every chart of a page, so a model keeps its colour
  // from the cost chart to the error-rate chart.
  function colourer() {
    const assigned = new Map();
    return (series) => series.map((s) => {
      if (s.kind === 'other') return { ...s, colour: OTHER_COLOUR };
      const key = `${s.kind}:${s.label}`;
      if (!assigned.has(key)) assigned.set(key, SERIES_COLOURS[assigned.size % SERIES_COLOURS.length]);
      return { ...s, colour: assigned.get(key) };
    });
  }

  function renderDashboard(route, isCurrent) {
    const state = dashboardStateFrom(route.params);
    lastDashboardUrl = dashboardUrl(state);
    document.title = 'Dashboard · tracehouse';
    const go = (changes) => navigate(dashboardUrl({ ...state, ...changes }));

    const now = Date.now();
    const preset = DASHBOARD_PRESETS.find(([id]) => id === state.time);
    const fromMs = state.from ? parseTime(state.from) : now - (preset ? preset[2] : 86400e3);
    const toMs = state.to ? parseTime(state.to) : now;
    const range = { start: new Date(fromMs).toISOString(), end: new Date(toMs).toISOString() };

    const field = (name, label, value, attrs = {}) => h('label', { class: `field field-${name}` },
      h('span', null, label),
      h('input', { name, id: `dash-${name}`, value, autocomplete: 'off', ...attrs }));
    const select = (name, label, options, value) => h('label', { class: `field field-${name}` },
      h('span', null, label),
      h('select', { name, id: `dash-${name}` },
        options.map(([id, text]) => h('option', { value: id, selected: id === value }, text))));
    const isMetaGroup = state.group.startsWith('metadata__');
    const groupOptions = isMetaGroup
      ? GROUP_OPTIONS.concat([[state.group, `Metadata ${state.group.slice(10)}`]])
      : GROUP_OPTIONS;
    const form = h('form', { class: 'filters', id: 'dash-filters', role: 'search' },
      h('div', { class: 'filter-row' },
        select('time', 'Time', DASHBOARD_PRESETS.map(([id, text]) => [id, text]).concat([['', 'Custom range']]),
          state.from ? '' : state.time),
        field('from', 'From', localInputValue(fromMs), { type: 'datetime-local' }),
        field('to', 'To', localInputValue(toMs), { type: 'datetime-local' }),
        select('interval', 'Interval', INTERVALS, state.interval),
        select('group', 'Group by', groupOptions, state.group),
        field('group-meta', 'or metadata key', '', { placeholder: 'key' }),
        h('div', { class: 'filter-actions' },
          h('button', { type: 'submit', class: 'primary', id: 'dash-apply' }, 'Apply'))),
      h('div', { class: 'filter-row' },
        field('model', 'Model', state.model, { placeholder: 'any' }),
        field('customer', 'Customer', state.customer, { placeholder: 'any' }),
        field('env', 'Environment', state.env, { placeholder: 'any' }),
        field('meta', 'Metadata', state.meta.join(' '), { placeholder: 'key=value' })));
    const text = (name) => String(new FormData(form).get(name) || '').trim();
    const submit = () => {
      const custom = text('time') === '';
      const groupMeta = text('group-meta');
      go({
        time: custom ? '' : text('time'),
        from: custom && text('from') ? new Date(text('from')).toISOString() : '',
        to: custom && text('to') ? new Date(text('to')).toISOString() : '',
        interval: text('interval'),
        group: groupMeta ? `metadata__${groupMeta}` : text('group'),
        model: text('model'),
        customer: text('customer'),
        env: text('env'),
        meta: text('meta').split(/\s+/).filter((pair) => pair.includes('=') && !pair.startsWith('=')),
      });
    };
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      submit();
    });
    for (const name of ['time', 'interval', 'group']) {
      form.querySelector(`select[name="${name}"]`).addEventListener('change', () => {
        if (name === 'group') form.querySelector('input[name="group-meta"]').value = '';
        submit();
      });
    }
    for (const name of ['from', 'to']) {
      form.querySelector(`input[name="${name}"]`).addEventListener('change', () => {
        form.querySelector('select[name="time"]').value = '';
      });
    }

    const status = h('div', { class: 'results-summary', id: 'dash-status' }, 'Loading…');
    const charts = h('div', { class: 'charts', id: 'charts' });
    const tables = h('div', { class: 'leaderboards', id: 'leaderboards' });
    const main = h('main', { class: 'page dashboard-view' }, form,
      h('section', { class: 'results' }, h('div', { class: 'results-head' }, status), charts, tables));
    shell(main);

    // The trace list for a bucket (and a group when one was clicked).
    const listFor = (bucket, series, groupBy) => {
      const list = { sort: DEFAULT_SORT, size: DEFAULT_PAGE_SIZE, page: 1, meta: [], env: state.env, model: state.model, customer: state.customer };
      if (bucket) {
        list.from = bucket.start;
        // The list's end_time is inclusive; a bucket's end belongs to the next one.
        list.to = new Date(parseTime(bucket.end) - 1).toISOString();
      }
      list.meta = [...state.meta];
      if (series && groupBy && (series.kind === 'value' || series.kind === 'none')) {
        const value = series.kind === 'none' ? '' : series.group;
        if (groupBy.startsWith('metadata__') && series.kind === 'value') {
          list.meta.push(`${groupBy.slice(10)}=${value}`);
        } else {
          list.span = `${groupBy}=${value}`;
        }
      }
      return listUrl(list);
    };

    const body = metricsBody(state, range);
    const timeseries = (metric, groupBy) => api('/api/metrics/timeseries/',
      { ...body, metric, ...(groupBy ? { group_by: groupBy, limit: 6 } : {}) });
    const group = state.group;
    async function load() {
      let answers;
      try {
        answers = await Promise.all([
          timeseries('cost', group),
          timeseries('prompt_tokens'),
          timeseries('completion_tokens'),
          timeseries('requests', group),
          timeseries('latency_p50'),
          timeseries('latency_p90'),
          timeseries('latency_p99'),
          timeseries('error_rate', group),
          // Fresh counts: the project may have received its first spans since sign-in.
          api('/api/projects/current/'),
        ]);
      } catch (error) {
        if (!isCurrent() || handleAuthFailure(error)) return;
        status.replaceChildren(errorBanner(error));
        return;
      }
      if (!isCurrent()) return;
      const [cost, prompt, completion, requests, p50, p90, p99, errorRate, project] = answers;
      session.project = project;
      const buckets = cost.buckets || [];
      const colourSeries = colourer();
      const seriesOf = (answer) => colourSeries((answer.series || []).map((s, j) => ({
        label: s.label,
        kind: s.kind,
        group: s.group,
        total: s.total,
        values: (answer.buckets || []).map((b) => Number(b.values[j]) || 0),
      })));
      const single = (answer, label, kind) => ({ ...seriesOf(answer)[0], label, kind, group: null });
      const interval = cost.interval;
      const totalRequests = (requests.series || []).reduce((sum, s) => sum + (Number(s.total) || 0), 0);
      const projectEmpty = Number(project.span_count) === 0;
      status.replaceChildren(h('span', null,
        h('strong', null, plural(totalRequests, 'span', 'spans')),
        ` · ${fmtCost((cost.series || []).reduce((sum, s) => sum + (Number(s.total) || 0), 0))}`,
        ` · ${fmtTime(parseTime(cost.start_time))} – ${fmtTime(parseTime(cost.end_time))}`,
        ` · ${plural(buckets.length, 'bucket', 'buckets')} of ${interval === 'hour' ? 'an' : 'a'} ${interval}`));
      if (projectEmpty) {
        charts.replaceChildren(dashboardEmptyState());
        tables.replaceChildren();
        return;
      }
      const pickFor = (groupBy) => (i, s) => navigate(listFor(buckets[i], s, groupBy));
      const common = { buckets, interval };
      const colour = (list) => colourSeries(list);
      // replaceChildren would print a null as "null": skip the note with a filter instead.
      charts.replaceChildren(...[
        totalRequests === 0 ? h('p', { class: 'empty small', id: 'dash-no-data' },
          'No spans in this range. Widen the time range or remove a filter.') : null,
        chart({ ...common, id: 'chart-cost', title: 'Cost', kind: 'bar', series: seriesOf(cost), format: fmtCost, onPick: pickFor(group) }),
        chart({ ...common, id: 'chart-tokens', title: 'Tokens (prompt + completion)', kind: 'bar',
          series: colour([single(prompt, 'prompt', 'prompt'), single(completion, 'completion', 'completion')]),
          format: fmtNumber, onPick: pickFor('') }),
        chart({ ...common, id: 'chart-requests', title: 'Requests (spans)', kind: 'bar', series: seriesOf(requests), format: fmtNumber, onPick: pickFor(group) }),
        chart({ ...common, id: 'chart-latency', title: 'Latency percentiles', kind: 'line',
          series: colour([single(p50, 'p50', 'p50'), single(p90, 'p90', 'p90'), single(p99, 'p99', 'p99')]),
          format: (v) => fmtDuration(v), onPick: pickFor('') }),
        chart({ ...common, id: 'chart-errors', title: 'Error rate', kind: 'line', series: seriesOf(errorRate), format: fmtPercent, onPick: pickFor(group) }),
      ].filter(Boolean));
      loadTops(cost.start_time, cost.end_time);
    }

    async function loadTops(start, end) {
      const top = (groupBy) => api('/api/metrics/top/', { ...body, start_time: start, end_time: end, metric: 'cost', group_by: groupBy, limit: 10 });
      let answers;
      try {
        answers = await Promise.all([top('customer_identifier'), top('model')]);
      } catch (error) {
        if (!isCurrent() || handleAuthFailure(error)) return;
        tables.replaceChildren(errorBanner(error));
        return;
      }
      if (!isCurrent()) return;
      const table = (id, title, heading, groupBy, answer) => h('section', { class: 'leaderboard', id },
        h('h3', null, title),
        (answer.results || []).length
          ? h('table', { class: 'trace-table' },
            h('thead', null, h('tr', null, h('th', null, heading), h('th', { class: 'num' }, 'Cost'), h('th', { class: 'num' }, 'Spans'))),
            h('tbody', null, answer.results.map((row) => h('tr', null,
              h('td', null, h('a', {
                href: listFor({ start, end }, row, groupBy),
                'data-nav': '',
              }, row.label)),
              h('td', { class: 'num' }, fmtCost(Number(row.value) || 0)),
              h('td', { class: 'num' }, fmtInt(Number(row.requests) || 0))))))
          : h('p', { class: 'muted' }, 'Nothing in this range.'));
      tables.replaceChildren(
        table('top-customers', 'Top customers by cost', 'Customer', 'customer_identifier', answers[0]),
        table('top-models', 'Top models by cost', 'Model', 'model', answers[1]));
    }

    load();
    return null;
  }

  function dashboardEmptyState() {
    const example = curlExample();
    return h('div', { class: 'empty', id: 'dash-empty' },
      h('h2', null, 'No data yet'),
      h('p', null, 'The dashboard charts cost, tokens, requests, latency and errors of the spans you send. ',
        'POST span logs to ', code('/api/v1/traces/ingest'), ', for example with ', code('TRACEHOUSE_API_KEY'),
        ' set to the key you signed in with:'),
      h('div', { class: 'code-block' },
        h('pre', { class: 'curl-example' }, example),
        copyButton(example)),
      h('p', { class: 'hint' },
        'OpenTelemetry exporters can send to ', code(`${location.origin}/v1/traces`), ' with the same header.'));
  }

  // ---------------------------------------------------------------------------------------
  // Trace view.

  function typeClass(logType) {
    const kind = String(logType || 'custom').toLowerCase();
    if (LOG_TYPE_CLASS[kind]) return LOG_TYPE_CLASS[kind];
    let hash = 0;
    for (const ch of kind) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
    return `lt-x${hash % 4}`;
  }

  // Flattens the span tree depth first. Iterative, so a deep parent chain cannot exhaust the
  // call stack.
  function buildTraceModel(trace) {
    const nodes = [];
    const roots = [];
    const tree = Array.isArray(trace.span_tree) ? trace.span_tree : [];
    const stack = tree.map((span) => [span, 0, -1]).reverse();
    while (stack.length) {
      const [span, depth, parent] = stack.pop();
      const node = {
        index: nodes.length,
        span,
        depth,
        parent,
        children: [],
        orphan: span.orphan === true,
        inferred: span.times_inferred === true,
        truncated: span.depth_truncated === true,
        error: span.status === 'error',
        start: parseTime(span.start_time),
        end: parseTime(span.end_time || span.timestamp),
        collapsed: false,
      };
      nodes.push(node);
      if (parent >= 0) nodes[parent].children.push(node.index);
      else roots.push(node.index);
      const children = Array.isArray(span.children) ? span.children : [];
      for (let i = children.length - 1; i >= 0; i -= 1) stack.push([children[i], depth + 1, node.index]);
    }
    // The time axis covers spans whose times were sent; a span stored at its receive time
    // would otherwise squash every real bar into a sliver.
    let t0 = Infinity;
    let t1 = -Infinity;
    for (const pass of [false, true]) {
      for (const node of nodes) {
        if (node.inferred !== pass) continue;
        if (Number.isFinite(node.start)) t0 = Math.min(t0, node.start);
        if (Number.isFinite(node.end)) t1 = Math.max(t1, node.end);
      }
      if (Number.isFinite(t0) && Number.isFinite(t1)) break;
    }
    if (!Number.isFinite(t0) || !Number.isFinite(t1)) {
      t0 = 0;
      t1 = 1;
    }
    return { nodes, roots, t0, total: Math.max(t1 - t0, 0.001) };
  }

  function visibleRows(model) {
    const rows = [];
    const stack = [...model.roots].reverse();
    while (stack.length) {
      const index = stack.pop();
      rows.push(index);
      const node = model.nodes[index];
      if (!node.collapsed) {
        for (let i = node.children.length - 1; i >= 0; i -= 1) stack.push(node.children[i]);
      }
    }
    return rows;
  }

  function barGeometry(model, node) {
    const clamp = (value, low, high) => Math.min(Math.max(value, low), high);
    const start = Number.isFinite(node.start) ? node.start : model.t0;
    const end = Number.isFinite(node.end) ? Math.max(node.end, start) : start;
    const left = clamp(((start - model.t0) / model.total) * 100, 0, 99.5);
    const width = clamp(((end - start) / model.total) * 100, 0.25, 100 - left);
    return [left, width];
  }

  function axisLabel(ms) {
    return fmtDuration(ms / 1000);
  }

  async function renderTrace(route, isCurrent) {
    const traceId = route.traceId;
    document.title = 'Trace · tracehouse';
    shell(h('main', { class: 'page trace-view' }, h('div', { class: 'loading-note' }, 'Loading trace…')));
    let trace;
    try {
      trace = await api(`/api/traces/${encodeURIComponent(traceId)}/`);
    } catch (error) {
      if (!isCurrent()) return null;
      if (handleAuthFailure(error)) return null;
      shell(h('main', { class: 'page' }, error.status === 404
        ? h('div', { class: 'empty', id: 'trace-missing' },
          h('h2', null, 'Trace not found'),
          h('p', null, 'No trace ', code(traceId), ' in project ',
            h('strong', null, session.project ? session.project.name : '?'), '.'),
          h('a', { href: lastListUrl, 'data-nav': '', class: 'button' }, '← Back to traces'))
        : errorBanner(error)));
      return null;
    }
    if (!isCurrent()) return null;
    document.title = `${trace.name || traceId} · tracehouse`;
    const model = buildTraceModel(trace);
    const { nodes } = model;
    let rows = visibleRows(model);
    const wanted = route.params.get('span');
    let selected = nodes.findIndex((node) => node.span.span_unique_id === wanted);
    if (selected < 0) selected = nodes.length ? 0 : -1;

    // Deleting needs the admin scope: a read key sees the button disabled, and why.
    function deleteTraceButton(trace) {
      const allowed = canAdmin(session.project);
      const why = allowed
        ? 'Delete this trace and all its spans'
        : `This key has the ${scopesText(session.project)} scope: deleting needs a key with the admin scope`;
      const button = h('button', {
        type: 'button', class: 'ghost small danger', id: 'delete-trace', disabled: !allowed,
        'aria-disabled': allowed ? 'false' : 'true',
      }, 'Delete trace');
      if (allowed) {
        button.addEventListener('click', async () => {
          const question = `Delete trace ${trace.trace_unique_id} and its ` +
            `${plural(trace.span_count, 'span', 'spans')}? This cannot be undone.`;
          if (!window.confirm(question)) return;
          button.disabled = true;
          try {
            await api(`/api/traces/${encodeURIComponent(trace.trace_unique_id)}/`, undefined, session.key, 'DELETE');
            navigate(lastListUrl);
          } catch (error) {
            button.disabled = false;
            button.replaceWith(errorBanner(error));
          }
        });
      }
      // A disabled button gets no pointer events, so the explanation sits on its wrapper.
      return h('span', { class: 'delete-trace', title: why }, button);
    }

    // Header with totals.
    const stat = (label, value, extra = {}) => h('div', { class: `stat ${extra.class || ''}`, dataset: { stat: extra.key } },
      h('dt', null, label), h('dd', null, value, extra.sub ? h('span', { class: 'sub' }, extra.sub) : null));
    const orphans = nodes.filter((node) => node.orphan).length;
    const inferred = nodes.filter((node) => node.inferred).length;
    const head = h('section', { class: 'trace-head' },
      h('div', { class: 'crumbs' },
        h('a', { href: lastListUrl, 'data-nav': '', id: 'back-to-list' }, '← Traces'),
        h('span', { class: 'sep' }, '/'),
        h('span', { class: 'mono trace-id', title: 'trace_unique_id' }, trace.trace_unique_id),
        copyButton(trace.trace_unique_id, 'Copy id')),
      h('div', { class: 'title-row' },
        h('h1', { class: 'trace-title', id: 'trace-title' }, trace.name || '(unnamed trace)'),
        trace.error_count > 0 ? badge('error', plural(trace.error_count, 'error', 'errors')) : badge('ok', 'ok'),
        deleteTraceButton(trace)),
      h('div', { class: 'meta-line' },
        h('span', null, 'started ', h('strong', null, fmtTime(parseTime(trace.start_time), true))),
        trace.customer_identifier && h('span', null, 'customer ', h('strong', null, trace.customer_identifier)),
        trace.environment && h('span', null, 'environment ', h('strong', null, trace.environment)),
        Array.isArray(trace.models) && trace.models.length > 0 &&
          h('span', null, 'models ', h('strong', null, trace.models.join(', ')))),
      h('dl', { class: 'totals', id: 'trace-totals' },
        stat('Duration', fmtDuration(trace.duration), { key: 'duration' }),
        stat('Spans', fmtInt(trace.span_count), {
          key: 'spans',
          sub: [orphans && `${orphans} orphan`, inferred && `${inferred} without time`].filter(Boolean).join(' · '),
        }),
        stat('LLM calls', fmtInt(trace.llm_call_count), { key: 'llm' }),
        stat('Tokens', fmtInt(trace.total_tokens), {
          key: 'tokens',
          sub: `${fmtInt(trace.total_prompt_tokens)} in · ${fmtInt(trace.total_completion_tokens)} out`,
        }),
        stat('Cost', fmtCost(trace.total_cost), { key: 'cost' }),
        stat('Errors', fmtInt(trace.error_count), { key: 'errors', class: trace.error_count > 0 ? 'bad' : '' })));

    // Waterfall beside the tree: one row per visible span, the tree column on the left and
    // the time bar on the right, so each bar sits on the line of its span.
    const kinds = new Map();
    for (const node of nodes) {
      const kind = String(node.span.log_type || 'custom');
      kinds.set(kind, (kinds.get(kind) || 0) + 1);
    }
    const legend = h('div', { class: 'legend' }, [...kinds.entries()].map(([kind, count]) => h('span', { class: 'legend-item' },
      h('span', { class: `lt-dot ${typeClass(kind)}` }), `${kind} ${count}`)),
      nodes.some((node) => node.error) && h('span', { class: 'legend-item' }, h('span', { class: 'lt-dot is-error' }), 'error'));
    const setAll = (collapsed) => {
      for (const node of nodes) if (node.children.length) node.collapsed = collapsed;
      relayout();
    };
    const toolbar = h('div', { class: 'wf-toolbar' },
      h('button', { type: 'button', class: 'ghost small', id: 'expand-all', onclick: () => setAll(false) }, 'Expand all'),
      h('button', { type: 'button', class: 'ghost small', id: 'collapse-all', onclick: () => setAll(true) }, 'Collapse all'),
      legend);
    const ticks = [0, 0.25, 0.5, 0.75, 1].map((fraction) => {
      const tick = h('span', { class: 'tick' }, axisLabel(model.total * fraction));
      tick.style.left = `${fraction * 100}%`;
      if (fraction === 1) tick.classList.add('last');
      return tick;
    });
    const header = h('div', { class: 'wf-header' },
      h('div', { class: 'wf-name-col' }, `Span`),
      h('div', { class: 'wf-axis' }, ticks));
    const canvas = h('div', { class: 'wf-canvas', id: 'wf-canvas' });
    const scroller = h('div', {
      class: 'wf-scroll',
      id: 'waterfall',
      tabindex: '0',
      role: 'tree',
      'aria-label': 'spans of the trace',
      dataset: { spanCount: String(nodes.length) },
    }, canvas);
    const waterfall = h('section', { class: 'waterfall-panel' }, toolbar, header, scroller);
    const detail = h('aside', { class: 'detail-panel', id: 'span-detail', 'aria-live': 'polite' });
    const body = h('div', { class: 'trace-body' }, waterfall, detail);
    shell(h('main', { class: 'page trace-view' }, head, body));

    function rowElement(index, position) {
      const node = nodes[index];
      const span = node.span;
      const isSelected = index === selected;
      const row = h('div', {
        class: `wf-row${node.error ? ' is-error' : ''}${isSelected ? ' selected' : ''}`,
        role: 'treeitem',
        'aria-level': String(node.depth + 1),
        'aria-selected': isSelected ? 'true' : 'false',
        'aria-expanded': node.children.length ? String(!node.collapsed) : null,
        dataset: { spanId: span.span_unique_id, index: String(index) },
      });
      row.style.top = `${position * ROW_HEIGHT}px`;
      const toggle = node.children.length
        ? h('button', {
          type: 'button',
          class: 'wf-toggle',
          tabindex: '-1',
          'aria-label': node.collapsed ? 'expand' : 'collapse',
        }, node.collapsed ? '▸' : '▾')
        : h('span', { class: 'wf-toggle' });
      const name = h('div', { class: 'wf-name' },
        toggle,
        h('span', { class: `lt-dot ${node.error ? 'is-error' : typeClass(span.log_type)}` }),
        h('span', { class: 'wf-label', title: span.span_name }, span.span_name || '(unnamed)'),
        node.collapsed && h('span', { class: 'hidden-count' }, `+${node.children.length}`),
        node.orphan && badge('orphan', 'orphan', `parent ${span.span_parent_id} never arrived`),
        node.inferred && badge('notime', 'no time', 'sent without start or end time; drawn at the time it was received'),
        node.truncated && badge('notime', 'flattened', 'deeper descendants are listed flat under this span'),
        node.error && badge('error', 'error'));
      name.style.paddingLeft = `${6 + Math.min(node.depth, MAX_INDENT_LEVELS) * 14}px`;
      const [left, width] = barGeometry(model, node);
      const bar = h('div', {
        class: `wf-bar ${typeClass(span.log_type)}${node.error ? ' is-error' : ''}${node.inferred ? ' is-inferred' : ''}`,
        title: `${span.span_name || '(unnamed)'} · ${fmtDuration(span.latency)}`,
      });
      bar.style.left = `${left}%`;
      bar.style.width = `${width}%`;
      const label = h('span', { class: 'wf-dur' }, fmtDuration(span.latency));
      if (left + width > 80) label.style.right = `calc(${100 - left}% + 4px)`;
      else label.style.left = `calc(${left + width}% + 4px)`;
      row.append(name, h('div', { class: 'wf-track' }, bar, label));
      return row;
    }

    let painted = '';
    function paint(force) {
      const top = scroller.scrollTop;
      const height = scroller.clientHeight || 600;
      const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN_ROWS);
      const last = Math.min(rows.length, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN_ROWS);
      const key = `${first}:${last}`;
      if (!force && key === painted) return;
      painted = key;
      const fragment = document.createDocumentFragment();
      for (let position = first; position < last; position += 1) {
        fragment.append(rowElement(rows[position], position));
      }
      canvas.replaceChildren(fragment);
    }

    function relayout() {
      rows = visibleRows(model);
      canvas.style.height = `${rows.length * ROW_HEIGHT}px`;
      paint(true);
    }

    function reveal(index) {
      for (let parent = nodes[index].parent; parent >= 0; parent = nodes[parent].parent) {
        nodes[parent].collapsed = false;
      }
      relayout();
      const position = rows.indexOf(index);
      const top = position * ROW_HEIGHT;
      if (top < scroller.scrollTop || top + ROW_HEIGHT > scroller.scrollTop + scroller.clientHeight) {
        scroller.scrollTop = Math.max(0, top - scroller.clientHeight / 2);
        paint(false);
      }
    }

    function select(index, { updateUrl = true } = {}) {
      if (index < 0 || index >= nodes.length) return;
      selected = index;
      reveal(index);
      paint(true);
      detail.replaceChildren(spanDetail(nodes[index], trace));
      detail.scrollTop = 0;
      if (updateUrl) {
        // Choosing a span refines the view instead of leaving it: replace the history entry
        // so the back button still goes to where the user came from.
        history.replaceState(null, '', paths.trace(trace.trace_unique_id, nodes[index].span.span_unique_id));
      }
    }

    function toggle(index) {
      const node = nodes[index];
      if (!node.children.length) return;
      node.collapsed = !node.collapsed;
      relayout();
    }

    canvas.addEventListener('click', (event) => {
      const row = event.target.closest('.wf-row');
      if (!row) return;
      const index = Number(row.dataset.index);
      if (event.target.closest('.wf-toggle')) toggle(index);
      else select(index);
    });
    scroller.addEventListener('scroll', () => paint(false), { passive: true });
    scroller.addEventListener('keydown', (event) => {
      if (selected < 0) return;
      const position = rows.indexOf(selected);
      const node = nodes[selected];
      let target = -1;
      if (event.key === 'ArrowDown') target = rows[Math.min(rows.length - 1, position + 1)];
      else if (event.key === 'ArrowUp') target = rows[Math.max(0, position - 1)];
      else if (event.key === 'ArrowRight') {
        if (node.children.length && node.collapsed) toggle(selected);
        else if (node.children.length) target = node.children[0];
      } else if (event.key === 'ArrowLeft') {
        if (node.children.length && !node.collapsed) toggle(selected);
        else if (node.parent >= 0) target = node.parent;
      } else return;
      event.preventDefault();
      if (target >= 0) select(target);
    });
    const onResize = () => paint(true);
    window.addEventListener('resize', onResize);

    relayout();
    if (selected >= 0) select(selected, { updateUrl: false });
    else detail.replaceChildren(h('div', { class: 'empty small' }, h('p', null, 'This trace has no spans.')));
    return () => window.removeEventListener('resize', onResize);
  }

  // ---------------------------------------------------------------------------------------
  // Span detail.

  function maybeJson(value) {
    if (typeof value !== 'string') return value;
    const text = value.trim();
    if (!/^[[{"]/.test(text) && text !== 'null' && text !== 'true' && text !== 'false') return value;
    try {
      return JSON.parse(text);
    } catch (_) {
      return value;
    }
  }

  const isMessage = (value) => Boolean(value) && typeof value === 'object' && !Array.isArray(value) &&
    typeof value.role === 'string';
  const isMessageList = (value) => Array.isArray(value) && value.length > 0 && value.every(isMessage);

  function conversationOf(span) {
    const messages = [];
    let prompt = span.prompt_messages;
    let fromInput = false;
    if (!isMessageList(prompt)) {
      const parsed = maybeJson(span.input);
      if (isMessageList(parsed)) {
        prompt = parsed;
        fromInput = true;
      }
    }
    if (isMessageList(prompt)) for (const message of prompt) messages.push([message, 'prompt']);
    let completion = span.completion_message ?? span.completion_messages;
    let fromOutput = false;
    if (!isMessage(completion) && !isMessageList(completion)) {
      const parsed = maybeJson(span.output);
      if (isMessage(parsed) || isMessageList(parsed)) {
        completion = parsed;
        fromOutput = true;
      }
    }
    if (isMessage(completion)) messages.push([completion, 'completion']);
    else if (isMessageList(completion)) for (const message of completion) messages.push([message, 'completion']);
    return { messages, fromInput, fromOutput };
  }

  function textBlock(text, extraClass = '') {
    const full = String(text);
    const lines = full.split('\n');
    const long = full.length > TEXT_PREVIEW_CHARS || lines.length > TEXT_PREVIEW_LINES;
    const pre = h('pre', { class: `text ${extraClass}` });
    if (!long) {
      pre.textContent = full;
      return pre;
    }
    // Only the preview is put in the page until asked: a megabyte prompt stays cheap.
    const preview = lines.slice(0, TEXT_PREVIEW_LINES).join('\n').slice(0, TEXT_PREVIEW_CHARS);
    pre.textContent = `${preview}…`;
    let expanded = false;
    const more = h('button', { type: 'button', class: 'link more' }, `Show all (${fmtInt(full.length)} characters)`);
    more.addEventListener('click', () => {
      expanded = !expanded;
      pre.textContent = expanded ? full : `${preview}…`;
      more.textContent = expanded ? 'Show less' : `Show all (${fmtInt(full.length)} characters)`;
    });
    return h('div', { class: 'text-long' }, pre, more);
  }

  function jsonString(text) {
    const node = h('span', { class: 'j-str' });
    if (text.length <= JSON_STRING_PREVIEW) {
      node.textContent = JSON.stringify(text);
      return node;
    }
    const preview = `${JSON.stringify(text.slice(0, JSON_STRING_PREVIEW)).slice(0, -1)}…"`;
    node.textContent = preview;
    const more = h('button', { type: 'button', class: 'link more' }, `+${fmtInt(text.length - JSON_STRING_PREVIEW)} chars`);
    let expanded = false;
    more.addEventListener('click', () => {
      expanded = !expanded;
      node.textContent = expanded ? JSON.stringify(text) : preview;
      more.textContent = expanded ? 'less' : `+${fmtInt(text.length - JSON_STRING_PREVIEW)} chars`;
    });
    return h('span', null, node, more);
  }

  function jsonNode(value, depth, openDepth) {
    if (value === null || value === undefined) return h('span', { class: 'j-null' }, 'null');
    if (typeof value === 'string') return jsonString(value);
    if (typeof value === 'number') return h('span', { class: 'j-num' }, String(value));
    if (typeof value === 'boolean') return h('span', { class: 'j-bool' }, String(value));
    if (typeof value !== 'object') return h('span', null, String(value));
    const isArray = Array.isArray(value);
    const entries = isArray ? value.map((item, i) => [i, item]) : Object.entries(value);
    const [open, close] = isArray ? ['[', ']'] : ['{', '}'];
    if (!entries.length) return h('span', { class: 'j-punct' }, open + close);
    const toggle = h('button', { type: 'button', class: 'j-toggle', 'aria-expanded': 'false' }, '▸');
    const summary = h('span', { class: 'j-summary' },
      isArray ? plural(entries.length, 'item', 'items') : plural(entries.length, 'key', 'keys'));
    const body = h('div', { class: 'j-body' });
    let shown = 0;
    // Children are built on first open, a batch at a time, so a 10,000-element array costs
    // nothing until someone looks at it.
    const showMore = () => {
      const end = Math.min(entries.length, shown + JSON_CHILDREN_BATCH);
      const lines = [];
      for (let i = shown; i < end; i += 1) {
        const [key, child] = entries[i];
        lines.push(h('div', { class: 'j-line' },
          isArray ? null : h('span', { class: 'j-key' }, JSON.stringify(String(key))),
          isArray ? null : h('span', { class: 'j-punct' }, ': '),
          jsonNode(child, depth + 1, openDepth),
          i < entries.length - 1 ? h('span', { class: 'j-punct' }, ',') : null));
      }
      shown = end;
      const previous = body.querySelector(':scope > .j-more');
      if (previous) previous.remove();
      appendAll(body, lines);
      if (shown < entries.length) {
        body.append(h('button', { type: 'button', class: 'link j-more', onclick: showMore },
          `show ${fmtInt(Math.min(JSON_CHILDREN_BATCH, entries.length - shown))} more of ${fmtInt(entries.length - shown)}`));
      }
    };
    const closing = h('span', { class: 'j-punct' }, close);
    const setOpen = (isOpen) => {
      if (isOpen && shown === 0) showMore();
      body.hidden = !isOpen;
      summary.hidden = isOpen;
      toggle.textContent = isOpen ? '▾' : '▸';
      toggle.setAttribute('aria-expanded', String(isOpen));
    };
    toggle.addEventListener('click', () => setOpen(body.hidden));
    setOpen(depth < openDepth);
    return h('span', { class: 'j-node' }, toggle, h('span', { class: 'j-punct' }, open), summary, body, closing);
  }

  function jsonView(value, openDepth = 2) {
    return h('div', { class: 'json' }, jsonNode(value, 0, openDepth));
  }

  // A value of unknown shape: text as text, JSON (also JSON inside a string) as a tree.
  function valueView(value, openDepth = 2) {
    const parsed = maybeJson(value);
    if (typeof parsed === 'string') return textBlock(parsed);
    if (parsed === null || parsed === undefined) return h('span', { class: 'j-null' }, 'null');
    if (typeof parsed !== 'object') return h('span', { class: 'scalar' }, String(parsed));
    return jsonView(parsed, openDepth);
  }

  function asCopyText(value) {
    if (typeof value === 'string') return value;
    return JSON.stringify(value, null, 2);
  }

  function section(title, content, { open = true, copy, id, count } = {}) {
    return h('details', { class: 'section', open, id },
      h('summary', null,
        h('span', { class: 'section-title' }, title),
        count !== undefined ? h('span', { class: 'count' }, count) : null,
        copy !== undefined ? copyButton(() => asCopyText(copy)) : null),
      h('div', { class: 'section-body' }, content));
  }

  function toolCallView(call) {
    const fn = call.function && typeof call.function === 'object' ? call.function : {};
    const name = fn.name || call.name || '(unnamed tool)';
    const raw = fn.arguments !== undefined ? fn.arguments : (call.arguments !== undefined ? call.arguments : call.input);
    const args = maybeJson(raw);
    return h('div', { class: 'tool-call' },
      h('div', { class: 'tool-head' },
        h('span', { class: 'tool-kind' }, 'tool call'),
        h('strong', { class: 'tool-name' }, name),
        call.id ? h('span', { class: 'tool-id mono' }, call.id) : null,
        raw !== undefined ? copyButton(() => asCopyText(args)) : null),
      raw === undefined ? null
        : (args !== null && typeof args === 'object' ? jsonView(args, 3) : textBlock(String(args))));
  }

  function partView(part) {
    if (typeof part === 'string') return textBlock(part);
    if (!part || typeof part !== 'object') return jsonView(part);
    switch (part.type) {
      case 'text':
      case 'input_text':
      case 'output_text':
        return textBlock(String(part.text ?? ''));
      case 'image_url':
      case 'input_image': {
        // Shown as a reference, never loaded: the page fetches nothing a span names.
        const url = typeof part.image_url === 'string' ? part.image_url : (part.image_url && part.image_url.url) || '';
        const shortUrl = url.length > 120 ? `${url.slice(0, 120)}…` : url;
        return h('div', { class: 'part-media' }, h('span', { class: 'tool-kind' }, 'image'), code(shortUrl));
      }
      case 'tool_use':
        return toolCallView({ id: part.id, name: part.name, input: part.input });
      case 'tool_result':
        return h('div', { class: 'tool-result' },
          h('div', { class: 'tool-head' }, h('span', { class: 'tool-kind' }, 'tool result'),
            part.tool_use_id ? h('span', { class: 'tool-id mono' }, part.tool_use_id) : null),
          contentView(part.content));
      default:
        return jsonView(part, 1);
    }
  }

  function contentView(content) {
    if (content === null || content === undefined) return null;
    if (typeof content === 'string') return textBlock(content);
    if (Array.isArray(content)) return content.map(partView);
    return jsonView(content);
  }

  const MESSAGE_KEYS = new Set(['role', 'content', 'name', 'tool_calls', 'tool_call_id', 'function_call']);

  function messageView([message, phase]) {
    const role = message.role;
    const known = ['system', 'developer', 'user', 'assistant', 'tool', 'function'];
    const roleClass = known.includes(role) ? role : 'other';
    const box = h('div', {
      class: `msg role-${roleClass}${phase === 'completion' ? ' is-completion' : ''}`,
      dataset: { role },
    });
    const isToolResult = role === 'tool' || role === 'function';
    box.append(h('div', { class: 'msg-head' },
      h('span', { class: 'msg-role' }, role),
      message.name ? h('span', { class: 'msg-name' }, message.name) : null,
      isToolResult && message.tool_call_id ? h('span', { class: 'msg-ref' }, 'result of ', h('span', { class: 'mono' }, message.tool_call_id)) : null,
      phase === 'completion' ? h('span', { class: 'msg-phase' }, 'completion') : null,
      h('span', { class: 'spacer' }),
      copyButton(() => asCopyText(message))));
    appendAll(box, [contentView(message.content)]);
    if (Array.isArray(message.tool_calls)) {
      for (const call of message.tool_calls) box.append(toolCallView(call || {}));
    }
    if (message.function_call && typeof message.function_call === 'object') {
      box.append(toolCallView({ function: message.function_call }));
    }
    const rest = Object.fromEntries(Object.entries(message).filter(([key]) => !MESSAGE_KEYS.has(key)));
    if (Object.keys(rest).length) box.append(jsonView(rest, 0));
    return box;
  }

  function kvTable(entries, id) {
    return h('table', { class: 'kv', id }, h('tbody', null, entries.map(([key, value]) => h('tr', { dataset: { key } },
      h('th', { scope: 'row' }, key),
      h('td', null, scalarView(value))))));
  }

  function scalarView(value) {
    if (value === null || value === undefined) return h('span', { class: 'muted' }, 'null');
    if (typeof value === 'string') return value.length > 200 || value.includes('\n') ? textBlock(value) : value;
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    return jsonView(value, 1);
  }

  function metric(key, label, value, title) {
    return h('div', { class: 'metric', dataset: { field: key }, title },
      h('span', { class: 'label' }, label),
      h('span', { class: 'value' }, value));
  }

  function spanDetail(node, trace) {
    const span = node.span;
    const spanWithoutChildren = Object.fromEntries(Object.entries(span).filter(([key]) => key !== 'children'));
    const parts = [];
    parts.push(h('div', { class: 'detail-head' },
      h('div', { class: 'kicker' },
        h('span', { class: `type-chip ${typeClass(span.log_type)}` }, span.log_type || 'custom'),
        node.error ? badge('error', 'error') : badge('ok', span.status || 'success'),
        node.orphan ? badge('orphan', 'orphan') : null,
        node.inferred ? badge('notime', 'no time') : null),
      h('h2', { class: 'detail-title', id: 'span-title' }, span.span_name || '(unnamed span)'),
      h('div', { class: 'id-line' }, 'span ', h('span', { class: 'mono' }, span.span_unique_id),
        copyButton(span.span_unique_id, 'Copy id'))));

    if (node.error || span.error_message) {
      parts.push(h('div', { class: 'error-box', id: 'span-error', role: 'alert' },
        h('strong', null, `Error${span.status_code ? ` · status ${span.status_code}` : ''}`),
        span.error_message ? textBlock(span.error_message) : h('p', null, 'The span reported status error without a message.')));
    }
    if (node.orphan) {
      parts.push(h('p', { class: 'notice' }, 'Orphan: its parent ',
        h('span', { class: 'mono' }, String(span.span_parent_id)),
        ' never arrived, so it is shown as a root.'));
    }
    if (node.inferred) {
      parts.push(h('p', { class: 'notice' },
        'Sent without start or end time: drawn at the time it was received, and it does not stretch the trace.'));
    }

    const tokens = (value) => (typeof value === 'number' ? fmtInt(value) : '—');
    parts.push(h('div', { class: 'metrics', id: 'span-metrics' },
      metric('model', 'Model', span.model || '—'),
      metric('provider', 'Provider', span.provider_id || '—'),
      metric('latency', 'Latency', fmtDuration(span.latency)),
      metric('ttft', 'Time to first token', fmtDuration(span.time_to_first_token)),
      metric('prompt_tokens', 'Prompt tokens', tokens(span.prompt_tokens)),
      metric('completion_tokens', 'Completion tokens', tokens(span.completion_tokens)),
      metric('total_tokens', 'Total tokens', tokens(span.total_tokens)),
      metric('cost', 'Cost', fmtCost(span.cost), typeof span.cost === 'number' ? `$${span.cost}` : null),
      metric('start', 'Start', fmtTime(parseTime(span.start_time), true), span.start_time),
      metric('end', 'End', fmtTime(parseTime(span.end_time || span.timestamp), true), span.end_time || span.timestamp),
      span.status_code !== null && span.status_code !== undefined ? metric('status_code', 'Status code', String(span.status_code)) : null));

    const conversation = conversationOf(span);
    if (conversation.messages.length) {
      parts.push(section('Conversation', h('div', { class: 'conversation', id: 'conversation' }, conversation.messages.map(messageView)), {
        count: plural(conversation.messages.length, 'message', 'messages'),
      }));
    }
    if (Array.isArray(span.tools) && span.tools.length) {
      parts.push(section('Tools offered', jsonView(span.tools, 1), { open: false, copy: span.tools, count: String(span.tools.length) }));
    }
    // Input and output are often the conversation again as JSON text; then they start closed.
    if (span.input !== undefined && span.input !== null && span.input !== '') {
      parts.push(section('Input', valueView(span.input), {
        id: 'span-input',
        copy: span.input,
        open: !(conversation.messages.length && (conversation.fromInput || span.prompt_messages)),
      }));
    }
    if (span.output !== undefined && span.output !== null && span.output !== '') {
      parts.push(section('Output', valueView(span.output), {
        id: 'span-output',
        copy: span.output,
        open: !(conversation.messages.length && (conversation.fromOutput || span.completion_message)),
      }));
    }
    const metadata = span.metadata && typeof span.metadata === 'object' && !Array.isArray(span.metadata)
      ? Object.entries(span.metadata) : [];
    if (metadata.length) {
      parts.push(section('Metadata', kvTable(metadata, 'span-metadata'), { copy: span.metadata, count: String(metadata.length) }));
    } else if (span.metadata !== undefined && span.metadata !== null && !(typeof span.metadata === 'object' && !Array.isArray(span.metadata))) {
      parts.push(section('Metadata', valueView(span.metadata), { copy: span.metadata }));
    }
    const identifiers = [
      ['trace_unique_id', trace.trace_unique_id],
      ['span_unique_id', span.span_unique_id],
      ['span_parent_id', span.span_parent_id],
      ['customer_identifier', span.customer_identifier],
      ['session_identifier', span.session_identifier],
      ['thread_identifier', span.thread_identifier],
      ['trace_group_identifier', span.trace_group_identifier],
      ['environment', span.environment],
      ['span_workflow_name', span.span_workflow_name],
      ['span_path', span.span_path],
    ].filter(([, value]) => value !== null && value !== undefined && value !== '');
    parts.push(section('Identifiers', kvTable(identifiers, 'span-identifiers'), { open: false }));
    const other = Object.entries(spanWithoutChildren).filter(([key]) => !SHOWN_FIELDS.has(key));
    if (other.length) {
      parts.push(section('Other fields', kvTable(other, 'span-other'), { open: false, count: String(other.length) }));
    }
    parts.push(section('Raw span (JSON)', jsonView(spanWithoutChildren, 1), {
      open: false,
      copy: spanWithoutChildren,
      id: 'span-raw',
    }));
    return h('div', { class: 'detail', dataset: { spanId: span.span_unique_id } }, parts);
  }

  // ---------------------------------------------------------------------------------------

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', render);
  else render();
})();
