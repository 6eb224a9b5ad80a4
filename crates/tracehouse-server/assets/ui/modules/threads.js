// Threads: the list of conversations (`/api/log_threads/`) and one conversation as a chat
// (`/api/log_thread/{id}/`), each turn with its messages, cost, tokens, latency and errors, and
// a link to its trace.

import { api, session } from './api.js';
import { badge, code, h } from './dom.js';
import { feedbackMark } from './feedback.js';
import { fmtCost, fmtDuration, fmtInt, fmtRelative, fmtTime, parseTime, plural } from './format.js';
import { renderGroupList, rowLink, stat } from './group-list.js';
import { errorBanner, handleAuthFailure, paths, remembered, shell } from './shell.js';
import { messageView } from './span-detail.js';

const DEFAULT_SORT = '-last_seen';

const COLUMNS = [
  { label: 'Thread', sort: 'thread_identifier' },
  { label: 'Customer' },
  { label: 'Traces', sort: 'trace_count', numeric: true },
  { label: 'Requests', sort: 'number_of_requests', numeric: true },
  { label: 'Tokens', sort: 'total_tokens', numeric: true },
  { label: 'Cost', sort: 'total_cost', numeric: true },
  { label: 'Latency p50', numeric: true },
  { label: 'Errors', sort: 'error_count', numeric: true },
  { label: 'Last activity', sort: 'last_seen' },
];

function threadRow(thread) {
  const href = paths.thread(thread.thread_identifier);
  const last = parseTime(thread.last_seen);
  const errors = Number(thread.error_count) || 0;
  const row = h('tr', { class: errors ? 'has-error' : null, dataset: { threadId: thread.thread_identifier } },
    h('td', { class: 'c-name' },
      h('a', { href, 'data-nav': '', class: 'thread-link trace-link', title: thread.thread_identifier }, thread.thread_identifier),
      thread.first_user_message ? h('span', { class: 'sub preview' }, thread.first_user_message) : null),
    h('td', { class: 'c-customer' }, thread.customer_identifier
      ? h('a', { href: paths.user(thread.customer_identifier), 'data-nav': '' }, thread.customer_identifier)
      : h('span', { class: 'muted' }, '—')),
    h('td', { class: 'num c-traces' }, fmtInt(thread.trace_count)),
    h('td', { class: 'num' }, fmtInt(thread.number_of_requests)),
    h('td', { class: 'num' }, fmtInt(thread.total_tokens)),
    h('td', { class: 'num c-cost' }, fmtCost(thread.total_cost)),
    h('td', { class: 'num' }, fmtDuration(thread.latency_p50)),
    h('td', { class: 'num' }, errors ? badge('error', fmtInt(errors)) : '0'),
    h('td', { title: thread.last_seen }, fmtTime(last), h('span', { class: 'sub' }, fmtRelative(last))));
  return rowLink(row, href);
}

export function renderThreads(route, isCurrent) {
  return renderGroupList({
    base: paths.threads,
    defaultSort: DEFAULT_SORT,
    endpoint: '/api/log_threads/',
    title: 'Threads',
    noun: ['thread', 'threads'],
    columns: COLUMNS,
    row: threadRow,
    tableId: 'thread-table',
    remember: (url) => { remembered.threads = url; },
    emptyText: 'Spans that name a thread_identifier (or session.id, gen_ai.conversation.id over OTLP) are grouped into threads here.',
  }, route, isCurrent);
}

function turnView(trace, turn, index) {
  const messages = (turn.new_messages || []).map((message) => messageView([message, 'prompt']));
  if (turn.completion_message) messages.push(messageView([turn.completion_message, 'completion']));
  const failed = turn.status === 'error';
  return h('article', { class: `turn${failed ? ' is-error' : ''}`, dataset: { spanId: turn.span_unique_id, turn: String(index) } },
    h('div', { class: 'turn-messages' }, messages.length ? messages : h('p', { class: 'muted' }, 'No messages recorded.')),
    failed && turn.error_message ? h('div', { class: 'error-box', role: 'alert' }, turn.error_message) : null,
    h('div', { class: 'turn-meta' },
      h('a', { href: paths.trace(trace.trace_unique_id, turn.span_unique_id), 'data-nav': '', class: 'turn-span' },
        turn.span_name || 'span'),
      turn.model ? h('span', null, turn.model) : null,
      h('span', { title: 'latency' }, fmtDuration(turn.latency)),
      h('span', { title: 'prompt + completion tokens' }, `${fmtInt(turn.prompt_tokens)} + ${fmtInt(turn.completion_tokens)} tokens`),
      h('span', { class: 'turn-cost' }, fmtCost(turn.cost)),
      failed ? badge('error', 'error') : null,
      feedbackMark(turn.positive_feedback)));
}

function traceGroupView(trace) {
  const errors = Number(trace.error_count) || 0;
  return h('section', { class: 'turn-group', dataset: { traceId: trace.trace_unique_id } },
    h('header', { class: 'turn-group-head' },
      h('a', { href: paths.trace(trace.trace_unique_id), 'data-nav': '', class: 'trace-link' }, trace.name || '(unnamed trace)'),
      h('span', { class: 'muted', title: trace.start_time }, fmtTime(parseTime(trace.start_time))),
      h('span', { class: 'spacer' }),
      h('span', null, fmtDuration(trace.duration)),
      h('span', null, `${fmtInt(trace.total_tokens)} tokens`),
      h('span', { class: 'turn-cost' }, fmtCost(trace.total_cost)),
      errors ? badge('error', plural(errors, 'error', 'errors')) : null),
    (trace.turns || []).length
      ? trace.turns.map((turn, i) => turnView(trace, turn, i))
      : h('p', { class: 'muted' }, 'This trace made no LLM call.'));
}

export async function renderThread(route, isCurrent) {
  const threadId = route.threadId;
  document.title = 'Thread · tracehouse';
  shell(h('main', { class: 'page thread-view' }, h('div', { class: 'loading-note' }, 'Loading thread…')));
  const page = Math.max(1, Number(route.params.get('page')) || 1);
  let thread;
  try {
    thread = await api(`/api/log_thread/${encodeURIComponent(threadId)}/?page=${page}`);
  } catch (error) {
    if (!isCurrent() || handleAuthFailure(error)) return null;
    shell(h('main', { class: 'page' }, error.status === 404
      ? h('div', { class: 'empty', id: 'thread-missing' },
        h('h2', null, 'Thread not found'),
        h('p', null, 'No thread ', code(threadId), ' in project ',
          h('strong', null, session.project ? session.project.name : '?'), '.'),
        h('a', { href: remembered.threads, 'data-nav': '', class: 'button' }, '← Back to threads'))
      : errorBanner(error)));
    return null;
  }
  if (!isCurrent()) return null;
  document.title = `${threadId} · tracehouse`;
  const pageLink = (label, number, id) => h('a', {
    href: `${paths.thread(threadId)}${number > 1 ? `?page=${number}` : ''}`, 'data-nav': '', class: 'button', id,
  }, label);
  const head = h('section', { class: 'trace-head' },
    h('div', { class: 'crumbs' },
      h('a', { href: remembered.threads, 'data-nav': '', id: 'back-to-threads' }, '← Threads'),
      h('span', { class: 'sep' }, '/'),
      h('span', { class: 'mono trace-id' }, threadId)),
    h('h1', { class: 'trace-title', id: 'thread-title' }, threadId),
    h('div', { class: 'meta-line' },
      thread.customer_identifier ? h('span', null, 'customer ',
        h('a', { href: paths.user(thread.customer_identifier), 'data-nav': '', id: 'thread-customer' }, thread.customer_identifier)) : null,
      h('span', null, 'from ', h('strong', null, fmtTime(parseTime(thread.first_seen)))),
      h('span', null, 'to ', h('strong', null, fmtTime(parseTime(thread.last_seen))))),
    h('dl', { class: 'totals', id: 'thread-totals' },
      stat('Traces', fmtInt(thread.trace_count), 'traces'),
      stat('Requests', fmtInt(thread.number_of_requests), 'requests'),
      stat('Tokens', fmtInt(thread.total_tokens), 'tokens'),
      stat('Cost', fmtCost(thread.total_cost), 'cost'),
      stat('Latency p50', fmtDuration(thread.latency_p50), 'p50'),
      stat('Errors', fmtInt(thread.error_count), 'errors')));
  const pager = h('nav', { class: 'pager', 'aria-label': 'pages of the thread' },
    page > 1 ? pageLink('‹ Earlier traces', page - 1, 'thread-prev') : null,
    thread.next_page ? pageLink('Later traces ›', thread.next_page, 'thread-next') : null);
  shell(h('main', { class: 'page thread-view' }, head,
    h('div', { class: 'chat', id: 'conversation-thread' }, (thread.traces || []).map(traceGroupView)),
    pager));
  return null;
}
