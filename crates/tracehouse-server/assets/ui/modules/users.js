// Users: the customers of the project (`/api/users/list/`) with their totals and a small
// cost-over-time chart per row, and one user (`/api/users/{id}/`) with their threads, traces
// and daily cost.

import { api, session } from './api.js';
import { badge, code, h } from './dom.js';
import { fmtCost, fmtDuration, fmtInt, fmtRelative, fmtTime, parseTime } from './format.js';
import { costBars, renderGroupList, rowLink, seriesBuckets, seriesParams, stat } from './group-list.js';
import { errorBanner, handleAuthFailure, paths, remembered, shell } from './shell.js';
import { listUrl } from './trace-list.js';

const DEFAULT_SORT = '-last_seen';

const COLUMNS = [
  { label: 'Customer', sort: 'customer_identifier' },
  { label: 'Traces', sort: 'trace_count', numeric: true },
  { label: 'Threads', sort: 'thread_count', numeric: true },
  { label: 'Active days', sort: 'active_days', numeric: true },
  { label: 'Requests', sort: 'number_of_requests', numeric: true },
  { label: 'Tokens', sort: 'total_tokens', numeric: true },
  { label: 'Cost', sort: 'total_cost', numeric: true },
  { label: 'Cost over time' },
  { label: 'Last seen', sort: 'last_seen' },
];

function userRow(user, state) {
  const href = paths.user(user.customer_identifier);
  const last = parseTime(user.last_seen);
  const profile = [user.name, user.email].filter((v) => typeof v === 'string' && v).join(' · ');
  const row = h('tr', { dataset: { customerId: user.customer_identifier } },
    h('td', { class: 'c-name' },
      h('a', { href, 'data-nav': '', class: 'user-link trace-link' }, user.customer_identifier),
      profile ? h('span', { class: 'sub' }, profile) : null),
    h('td', { class: 'num' }, fmtInt(user.trace_count)),
    h('td', { class: 'num c-threads' }, fmtInt(user.thread_count)),
    h('td', { class: 'num c-days' }, fmtInt(user.active_days)),
    h('td', { class: 'num' }, fmtInt(user.number_of_requests)),
    h('td', { class: 'num' }, fmtInt(user.total_tokens)),
    h('td', { class: 'num c-cost' }, fmtCost(user.total_cost)),
    h('td', { class: 'c-spark' }, Array.isArray(user.cost_series)
      ? costBars(seriesBuckets(seriesParams(state)), user.cost_series) : null),
    h('td', { title: user.last_seen }, fmtTime(last), h('span', { class: 'sub' }, fmtRelative(last))));
  return rowLink(row, href);
}

export function renderUsers(route, isCurrent) {
  return renderGroupList({
    base: paths.users,
    defaultSort: DEFAULT_SORT,
    endpoint: '/api/users/list/',
    title: 'Users',
    noun: ['user', 'users'],
    columns: COLUMNS,
    row: userRow,
    tableId: 'user-table',
    remember: (url) => { remembered.users = url; },
    extras: seriesParams,
    profileFields: true,
    emptyText: 'Spans that name a customer_identifier (or customer_params, user.id over OTLP) are grouped into users here.',
  }, route, isCurrent);
}

function miniTable(id, headings, rows) {
  return h('table', { class: 'trace-table mini-table', id },
    h('thead', null, h('tr', null, headings.map(([label, numeric]) => h('th', { class: numeric ? 'num' : null }, label)))),
    h('tbody', null, rows));
}

export async function renderUser(route, isCurrent) {
  const customer = route.customerId;
  document.title = 'User · tracehouse';
  shell(h('main', { class: 'page user-view' }, h('div', { class: 'loading-note' }, 'Loading user…')));
  const encoded = encodeURIComponent(customer);
  let user;
  let threads;
  let traces;
  try {
    [user, threads, traces] = await Promise.all([
      api(`/api/users/${encoded}/`),
      api('/api/log_threads/', { page_size: 20, filters: { customer_identifier: { operator: '', value: [customer] } } }),
      api('/api/traces/list/', { page_size: 20, filters: { customer_identifier: { operator: '', value: [customer] } } }),
    ]);
  } catch (error) {
    if (!isCurrent() || handleAuthFailure(error)) return null;
    shell(h('main', { class: 'page' }, error.status === 404
      ? h('div', { class: 'empty', id: 'user-missing' },
        h('h2', null, 'User not found'),
        h('p', null, 'No trace of project ', h('strong', null, session.project ? session.project.name : '?'),
          ' names customer ', code(customer), '.'),
        h('a', { href: remembered.users, 'data-nav': '', class: 'button' }, '← Back to users'))
      : errorBanner(error)));
    return null;
  }
  if (!isCurrent()) return null;
  document.title = `${customer} · tracehouse`;
  const series = seriesParams({});
  const chart = h('div', { class: 'user-chart', id: 'user-usage' }, h('span', { class: 'muted' }, 'Loading usage…'));
  const threadRows = (threads.results || []).map((thread) => rowLink(h('tr', { dataset: { threadId: thread.thread_identifier } },
    h('td', null, h('a', { href: paths.thread(thread.thread_identifier), 'data-nav': '', class: 'thread-link' }, thread.thread_identifier),
      thread.first_user_message ? h('span', { class: 'sub preview' }, thread.first_user_message) : null),
    h('td', { class: 'num' }, fmtInt(thread.trace_count)),
    h('td', { class: 'num' }, fmtCost(thread.total_cost)),
    h('td', null, fmtTime(parseTime(thread.last_seen)))), paths.thread(thread.thread_identifier)));
  const traceRows = (traces.results || []).map((trace) => rowLink(h('tr', { dataset: { traceId: trace.trace_unique_id } },
    h('td', null, h('a', { href: paths.trace(trace.trace_unique_id), 'data-nav': '', class: 'trace-link' }, trace.name || '(unnamed)')),
    h('td', { class: 'num' }, fmtDuration(trace.duration)),
    h('td', { class: 'num' }, fmtCost(trace.total_cost)),
    h('td', null, Number(trace.error_count) > 0 ? badge('error', 'error') : badge('ok', 'ok')),
    h('td', null, fmtTime(parseTime(trace.start_time)))), paths.trace(trace.trace_unique_id)));
  const profile = [
    ['Name', user.name], ['Email', user.email], ['Period budget', typeof user.period_budget === 'number' ? fmtCost(user.period_budget) : null],
    ['Budget period', user.budget_duration], ['Usage this period', typeof user.total_period_usage === 'number' ? fmtCost(user.total_period_usage) : null],
  ].filter(([, value]) => value !== null && value !== undefined && value !== '');
  shell(h('main', { class: 'page user-view' },
    h('section', { class: 'trace-head' },
      h('div', { class: 'crumbs' },
        h('a', { href: remembered.users, 'data-nav': '', id: 'back-to-users' }, '← Users'),
        h('span', { class: 'sep' }, '/'),
        h('span', { class: 'mono trace-id' }, customer)),
      h('h1', { class: 'trace-title', id: 'user-title' }, user.name || customer),
      profile.length ? h('div', { class: 'meta-line', id: 'user-profile' },
        profile.map(([label, value]) => h('span', null, `${label} `, h('strong', null, value)))) : null,
      h('dl', { class: 'totals', id: 'user-totals' },
        stat('Traces', fmtInt(user.trace_count), 'traces'),
        stat('Threads', fmtInt(user.thread_count), 'threads'),
        stat('Requests', fmtInt(user.number_of_requests), 'requests'),
        stat('Tokens', fmtInt(user.total_tokens), 'tokens'),
        stat('Cost', fmtCost(user.total_cost), 'cost'),
        stat('Errors', fmtInt(user.error_count), 'errors'),
        stat('Active days', fmtInt(user.active_days), 'active-days'),
        stat('Avg time to first token', fmtDuration(user.average_ttft), 'ttft'))),
    h('section', { class: 'results user-section' }, h('div', { class: 'results-head' }, h('strong', null, 'Daily cost, last 30 days')), chart),
    h('section', { class: 'results user-section' },
      h('div', { class: 'results-head' }, h('strong', null, `Threads (${fmtInt(threads.count)})`)),
      threadRows.length ? miniTable('user-threads', [['Thread'], ['Traces', true], ['Cost', true], ['Last activity']], threadRows)
        : h('p', { class: 'muted empty small' }, 'No threads: this user\'s traces name none.')),
    h('section', { class: 'results user-section' },
      h('div', { class: 'results-head' }, h('strong', null, `Traces (${fmtInt(traces.count)})`),
        h('span', { class: 'spacer' }),
        h('a', { href: listUrl({ customer, meta: [], page: 1 }), 'data-nav': '', id: 'user-all-traces' }, 'All traces in the trace list')),
      miniTable('user-traces', [['Trace'], ['Duration', true], ['Cost', true], ['Status'], ['Start']], traceRows))));
  // The list route draws the series; asked for this one user, it is the user's own.
  api('/api/users/list/', { ...series, filters: { customer_identifier: { operator: '', value: [customer] } } }).then((answer) => {
    if (!isCurrent()) return;
    const row = (answer.results || [])[0];
    const values = row && Array.isArray(row.cost_series) ? row.cost_series : [];
    chart.replaceChildren(costBars(seriesBuckets(series), values, { width: 600, height: 80, id: 'user-cost-chart' }));
  }, (error) => {
    if (isCurrent() && !handleAuthFailure(error)) chart.replaceChildren(errorBanner(error));
  });
  return null;
}
