// What the threads and users lists share: their state in the URL (filters, sort, page), the
// request body of the grouped list routes, a sortable table with a pager, and the small
// cost-over-time bars drawn as SVG.

import { api } from './api.js';
import { h, svg } from './dom.js';
import { feedbackFields, feedbackFilters, isScoreFilter } from './feedback.js';
import { fmtCost, fmtInt, fmtTime, parseTime } from './format.js';
import { errorBanner, handleAuthFailure, navigate, shell } from './shell.js';
import { TIME_PRESETS } from './trace-list.js';

const PAGE_SIZE = 50;

function positive(text, fallback) {
  const n = Number(text);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

export function groupStateFrom(params, defaultSort) {
  return {
    q: params.get('q') || '',
    time: params.get('time') || '',
    customer: params.get('customer') || '',
    name: params.get('name') || '',
    email: params.get('email') || '',
    feedback: params.get('feedback') || '',
    score: isScoreFilter(params.get('score') || '') ? params.get('score') : '',
    sort: params.get('sort') || defaultSort,
    page: positive(params.get('page'), 1),
  };
}

export function groupUrl(base, state, defaultSort) {
  const params = new URLSearchParams();
  for (const key of ['q', 'time', 'customer', 'name', 'email', 'feedback', 'score']) {
    if (state[key]) params.set(key, state[key]);
  }
  if (state.sort && state.sort !== defaultSort) params.set('sort', state.sort);
  if (state.page > 1) params.set('page', String(state.page));
  const query = params.toString();
  return query ? `${base}?${query}` : base;
}

// The start of the list's time preset, as the API wants it, or null for all time.
function presetStart(state) {
  const preset = TIME_PRESETS.find(([id]) => id === state.time);
  return preset && preset[2] > 0 ? new Date(Date.now() - preset[2]).toISOString() : null;
}

function requestBody(state, extras) {
  const body = { page: state.page, page_size: PAGE_SIZE, sort_by: state.sort, ...extras };
  const start = presetStart(state);
  if (start) body.start_time = start;
  if (state.q) body.search = state.q;
  const filters = {};
  if (state.customer) filters.customer_identifier = { operator: 'icontains', value: [state.customer] };
  // The users' profile fields (`profileFields`); a threads page never sets them.
  if (state.name) filters.name = { operator: 'icontains', value: [state.name] };
  if (state.email) filters.email = { operator: 'icontains', value: [state.email] };
  feedbackFilters(state, filters);
  if (Object.keys(filters).length) body.filters = filters;
  return body;
}

// One list page: `columns` are {label, sort?, numeric?}; `row(item, state)` draws a <tr>;
// `extras(state)` adds parameters to the request (the users' cost series); `profileFields`
// adds the users' name and email boxes.
export function renderGroupList(options, route, isCurrent) {
  const { base, defaultSort, endpoint, title, noun, columns, row, tableId } = options;
  const state = groupStateFrom(route.params, defaultSort);
  const url = (changes) => groupUrl(base, { ...state, ...changes }, defaultSort);
  options.remember(url({}));
  document.title = `${title} · tracehouse`;
  const go = (changes) => navigate(url({ page: 1, ...changes }));

  const form = h('form', { class: 'filters', id: `${tableId}-filters`, role: 'search' },
    h('div', { class: 'filter-row' },
      h('label', { class: 'field field-q' }, h('span', null, 'Search'),
        h('input', { name: 'q', type: 'search', value: state.q, autocomplete: 'off', placeholder: 'words in span names, inputs or outputs' })),
      h('label', { class: 'field field-time' }, h('span', null, 'Time'),
        h('select', { name: 'time' }, TIME_PRESETS.map(([id, text]) => h('option', { value: id, selected: id === state.time }, text)))),
      h('label', { class: 'field field-customer' }, h('span', null, 'Customer'),
        h('input', { name: 'customer', value: state.customer, autocomplete: 'off', placeholder: 'any' })),
      options.profileFields ? [
        h('label', { class: 'field field-name' }, h('span', null, 'Name'),
          h('input', { name: 'name', id: `${tableId}-name`, value: state.name, autocomplete: 'off', placeholder: 'any' })),
        h('label', { class: 'field field-email' }, h('span', null, 'Email'),
          h('input', { name: 'email', id: `${tableId}-email`, value: state.email, autocomplete: 'off', placeholder: 'any' })),
      ] : null,
      feedbackFields(state, tableId),
      h('div', { class: 'filter-actions' },
        h('button', { type: 'submit', class: 'primary' }, 'Apply'))));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const text = (name) => String(data.get(name) || '').trim();
    go({
      q: text('q'),
      time: text('time'),
      customer: text('customer'),
      name: options.profileFields ? text('name') : '',
      email: options.profileFields ? text('email') : '',
      feedback: text('feedback'),
      score: isScoreFilter(text('score')) ? text('score') : '',
    });
  });
  for (const name of ['time', 'feedback']) {
    form.querySelector(`select[name="${name}"]`).addEventListener('change', () => form.requestSubmit());
  }

  const [sortField, descending] = state.sort.startsWith('-') ? [state.sort.slice(1), true] : [state.sort, false];
  const head = h('tr', null, columns.map((column) => {
    if (!column.sort) return h('th', { scope: 'col', class: column.numeric ? 'num' : null }, column.label);
    const active = column.sort === sortField;
    const next = active ? (descending ? column.sort : `-${column.sort}`) : `-${column.sort}`;
    return h('th', {
      scope: 'col', class: column.numeric ? 'num' : null,
      'aria-sort': active ? (descending ? 'descending' : 'ascending') : 'none',
    }, h('a', { href: url({ sort: next, page: 1 }), 'data-nav': '', class: `sort${active ? ' active' : ''}` },
      column.label, h('span', { class: 'sort-mark', 'aria-hidden': 'true' }, active ? (descending ? '▼' : '▲') : '↕')));
  }));
  const body = h('tbody');
  const table = h('table', { class: 'trace-table group-table', id: tableId }, h('thead', null, head), body);
  const summary = h('div', { class: 'results-summary', id: `${tableId}-summary` }, 'Loading…');
  const pager = h('nav', { class: 'pager', 'aria-label': 'pages' });
  const results = h('section', { class: 'results' }, h('div', { class: 'results-head' }, summary), table, pager);
  shell(h('main', { class: `page ${tableId}-view` }, form, results));

  (async () => {
    let data;
    try {
      data = await api(endpoint, requestBody(state, options.extras ? options.extras(state) : {}));
    } catch (error) {
      if (!isCurrent() || handleAuthFailure(error)) return;
      summary.replaceChildren(errorBanner(error));
      table.hidden = true;
      return;
    }
    if (!isCurrent()) return;
    const items = Array.isArray(data.results) ? data.results : [];
    const total = typeof data.total === 'number' ? data.total : data.count;
    summary.replaceChildren(h('strong', { id: `${tableId}-count` }, `${fmtInt(total)} ${total === 1 ? noun[0] : noun[1]}`));
    const rows = items.map((item) => row(item, state));
    body.replaceChildren(...rows);
    table.hidden = items.length === 0;
    if (!items.length) {
      results.insertBefore(h('div', { class: 'empty', id: `${tableId}-empty` },
        h('h2', null, `No ${noun[1]}`),
        h('p', null, options.emptyText)), pager);
    }
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    const link = (label, page, enabled, id) => (enabled
      ? h('a', { href: url({ page }), 'data-nav': '', class: 'button', id }, label)
      : h('span', { class: 'button disabled', id, 'aria-disabled': 'true' }, label));
    if (total > 0) {
      pager.replaceChildren(
        link('‹ Previous', state.page - 1, state.page > 1, `${tableId}-prev`),
        h('span', { class: 'page-of' }, `Page ${fmtInt(state.page)} of ${fmtInt(pages)}`),
        link('Next ›', state.page + 1, Boolean(data.next), `${tableId}-next`));
    }
  })();
  return null;
}

// One total in a page's head.
export function stat(label, value, key) {
  return h('div', { class: 'stat', dataset: { stat: key } }, h('dt', null, label), h('dd', null, value));
}

// Clicking anywhere on a row opens `href`, as in the trace list.
export function rowLink(row, href) {
  row.addEventListener('click', (event) => {
    if (event.target.closest('a, button')) return;
    navigate(href);
  });
  return row;
}

// Cost per bucket as bars: `buckets` are {start}, `values` numbers; every bar has a title.
export function costBars(buckets, values, { width = 120, height = 28, id } = {}) {
  const max = Math.max(0, ...values);
  const step = buckets.length ? width / buckets.length : width;
  const bars = buckets.map((bucket, i) => {
    const value = Number(values[i]) || 0;
    const barHeight = max > 0 ? Math.max(value > 0 ? 1 : 0, (value / max) * (height - 2)) : 0;
    return svg('rect', {
      class: 'spark-bar',
      x: (i * step + step * 0.1).toFixed(1),
      y: (height - barHeight).toFixed(1),
      width: Math.max(0.5, step * 0.8).toFixed(1),
      height: barHeight.toFixed(1),
      dataset: { value: String(value) },
    }, svg('title', null, `${fmtTime(parseTime(bucket.start)).slice(0, 10)} · ${fmtCost(value)}`));
  });
  return svg('svg', {
    class: 'spark', id, viewBox: `0 0 ${width} ${height}`, width, height,
    role: 'img', 'aria-label': `cost over time, at most ${fmtCost(max)} a bucket`,
  }, svg('line', { class: 'spark-base', x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5 }), bars);
}

// The cost series a list asks for: hourly for a preset of a day or less, else daily, over the
// preset (30 days when none). The server aligns buckets to the step in UTC, the last holding now.
export function seriesParams(state) {
  const preset = TIME_PRESETS.find(([id]) => id === state.time);
  const span = preset && preset[2] > 0 ? preset[2] : 30 * 86400e3;
  return span <= 86400e3
    ? { cost_interval: 'hour', cost_buckets: Math.max(1, Math.ceil(span / 3600e3)) }
    : { cost_interval: 'day', cost_buckets: Math.min(400, Math.ceil(span / 86400e3)) };
}

// The starts of a series' buckets, as the server laid them out.
export function seriesBuckets({ cost_interval: interval, cost_buckets: count }) {
  const step = interval === 'hour' ? 3600e3 : 86400e3;
  const last = Math.floor(Date.now() / step) * step;
  return Array.from({ length: count }, (_, i) => ({ start: new Date(last - (count - 1 - i) * step).toISOString() }));
}
