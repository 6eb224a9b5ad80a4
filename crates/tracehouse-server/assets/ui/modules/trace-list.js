// The trace list: filters, sorting and paging in the URL, live refresh.

import { api } from './api.js';
import { feedbackFields, feedbackFilters, isScoreFilter } from './feedback.js';
import { badge, code, copyButton, h } from './dom.js';
import { fmtCost, fmtDuration, fmtInt, fmtRelative, fmtTime, parseTime, plural } from './format.js';
import { curlExample, errorBanner, handleAuthFailure, navigate, paths, remembered, shell } from './shell.js';

const LIVE_INTERVAL_MS = 5000;
export const DEFAULT_SORT = '-start_time';
const PAGE_SIZES = [25, 50, 100];
export const DEFAULT_PAGE_SIZE = 50;

export const TIME_PRESETS = [
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
    feedback: params.get('feedback') || '',
    score: isScoreFilter(params.get('score') || '') ? params.get('score') : '',
    sort: params.get('sort') || DEFAULT_SORT,
    page: positiveInt(params.get('page'), 1),
    size: PAGE_SIZES.includes(size) ? size : DEFAULT_PAGE_SIZE,
    live: params.get('live') === '1',
  };
}

export function listUrl(state) {
  const params = new URLSearchParams();
  for (const key of ['q', 'time', 'status', 'model', 'customer', 'env', 'from', 'to', 'span', 'feedback', 'score']) {
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
  state.meta.length || state.from || state.to || state.span || state.feedback || state.score);

// A metadata value typed as text may have been sent as a number or boolean; the values of
// one filter are OR-ed, so asking for every reading matches whichever was stored.
export function metadataValues(raw) {
  const values = [raw];
  if (/^-?\d+(\.\d+)?$/.test(raw)) values.push(Number(raw));
  if (raw === 'true' || raw === 'false') values.push(raw === 'true');
  return values;
}

// Adds `key=value` metadata pairs to a `filters` object; pairs of one key are OR-ed.
export function metadataFilters(pairs, filters) {
  for (const pair of pairs) {
    const split = pair.indexOf('=');
    const key = pair.slice(0, split).trim();
    if (!key) continue;
    const field = `metadata__${key}`;
    const values = metadataValues(pair.slice(split + 1).trim());
    filters[field] = filters[field]
      ? { operator: '', value: filters[field].value.concat(values) }
      : { operator: '', value: values };
  }
  return filters;
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
  // Traces with a span that has not ended (running or abandoned: both are stored as running).
  if (state.status === 'running') filters.status = { operator: '', value: ['running'] };
  metadataFilters(state.meta, filters);
  feedbackFilters(state, filters);
  if (Object.keys(filters).length) body.filters = filters;
  return body;
}

const seenModels = new Set();

export function renderList(route, isCurrent) {
  const state = listStateFrom(route.params);
  remembered.list = listUrl(state);
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
      select('status', 'Status', [['', 'Any'], ['error', 'Errors'], ['ok', 'No errors'], ['running', 'Running']],
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
      feedbackFields(state, 'filter'),
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
      feedback: text('feedback'),
      score: isScoreFilter(text('score')) ? text('score') : '',
      meta,
    });
  });
  for (const name of ['time', 'status', 'feedback']) {
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

  function statusBadge(trace, errors) {
    if (trace.status === 'running') return badge('running', 'running', 'a span of this trace has not ended yet');
    if (trace.status === 'abandoned') return badge('abandoned', 'abandoned', 'a span is still running past the running timeout');
    return errors ? badge('error', errors === 1 ? 'error' : `${fmtInt(errors)} errors`) : badge('ok', 'ok');
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
      h('td', { class: 'c-status' }, statusBadge(trace, errors)),
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
    remembered.list = listUrl(state);
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

