// The trace view: totals, and the waterfall beside the span tree. Big traces stay cheap: only
// the rows in view are rendered (virtual scrolling).

import { api, canAdmin, scopesText, session } from './api.js';
import { badge, code, copyButton, h } from './dom.js';
import { fmtCost, fmtDuration, fmtInt, fmtTime, parseTime, plural } from './format.js';
import { errorBanner, handleAuthFailure, navigate, paths, remembered, shell } from './shell.js';
import { spanDetail, typeClass } from './span-detail.js';

const ROW_HEIGHT = 28; // px; must match .wf-row in app.css
const OVERSCAN_ROWS = 12;
const MAX_INDENT_LEVELS = 24;
// While a trace has a running span its open bars grow every second, and the trace is fetched
// again every few seconds until nothing in it runs.
const GROW_EVERY_MS = 1000;
const REFRESH_EVERY_MS = 3000;
// A refresh fetches the trace before re-rendering; the renderer takes it from here instead of
// fetching it again (and showing "Loading" in between).
let refreshed = null;

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
      // A running span has no end yet: its bar is open and reaches to now. An abandoned one
      // (running past --running-timeout) is drawn open but no longer grows.
      running: span.status === 'running',
      abandoned: span.status === 'abandoned',
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
  const model = { nodes, roots, t0: 0, total: 1 };
  fitAxis(model);
  return model;
}

// Sets the time axis, with running spans reaching to now.
function fitAxis(model) {
  const { nodes } = model;
  const now = Date.now();
  for (const node of nodes) {
    if (node.running && Number.isFinite(node.start)) node.end = Math.max(node.start, now);
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
  model.t0 = t0;
  model.total = Math.max(t1 - t0, 0.001);
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

export async function renderTrace(route, isCurrent) {
  const traceId = route.traceId;
  document.title = 'Trace · tracehouse';
  if (!refreshed || refreshed.traceId !== traceId) {
    shell(h('main', { class: 'page trace-view' }, h('div', { class: 'loading-note' }, 'Loading trace…')));
  }
  let trace;
  try {
    if (refreshed && refreshed.traceId === traceId) trace = refreshed.trace;
    else trace = await api(`/api/traces/${encodeURIComponent(traceId)}/`);
  } catch (error) {
    if (!isCurrent()) return null;
    if (handleAuthFailure(error)) return null;
    shell(h('main', { class: 'page' }, error.status === 404
      ? h('div', { class: 'empty', id: 'trace-missing' },
        h('h2', null, 'Trace not found'),
        h('p', null, 'No trace ', code(traceId), ' in project ',
          h('strong', null, session.project ? session.project.name : '?'), '.'),
        h('a', { href: remembered.list, 'data-nav': '', class: 'button' }, '← Back to traces'))
      : errorBanner(error)));
    return null;
  }
  refreshed = null;
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
          navigate(remembered.list);
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
      h('a', { href: remembered.list, 'data-nav': '', id: 'back-to-list' }, '← Traces'),
      h('span', { class: 'sep' }, '/'),
      h('span', { class: 'mono trace-id', title: 'trace_unique_id' }, trace.trace_unique_id),
      copyButton(trace.trace_unique_id, 'Copy id')),
    h('div', { class: 'title-row' },
      h('h1', { class: 'trace-title', id: 'trace-title' }, trace.name || '(unnamed trace)'),
      traceBadge(trace),
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
      node.error && badge('error', 'error'),
      node.running && badge('running', 'running', 'started and not ended yet'),
      node.abandoned && badge('abandoned', 'abandoned', 'still running past the running timeout: it may never end'));
    name.style.paddingLeft = `${6 + Math.min(node.depth, MAX_INDENT_LEVELS) * 14}px`;
    const [left, width] = barGeometry(model, node);
    const bar = h('div', {
      class: `wf-bar ${typeClass(span.log_type)}${node.error ? ' is-error' : ''}${node.inferred ? ' is-inferred' : ''}` +
        `${node.running || node.abandoned ? ' is-open' : ''}`,
      title: `${span.span_name || '(unnamed)'} · ${node.running ? 'running' : fmtDuration(span.latency)}`,
    });
    bar.style.left = `${left}%`;
    bar.style.width = `${width}%`;
    const label = h('span', { class: 'wf-dur' }, node.running
      ? `running ${fmtDuration((node.end - node.start) / 1000)}`
      : node.abandoned ? 'abandoned' : fmtDuration(span.latency));
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
    detail.replaceChildren(spanDetail(nodes[index], trace, (stored) => {
      // The stored log carries no tree fields (children, orphan): keep those, take the rest.
      for (const key of ['positive_feedback', 'note', 'scores']) delete nodes[index].span[key];
      Object.assign(nodes[index].span, stored);
      if (selected === index) select(index, { updateUrl: false });
    }));
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

  // Until nothing runs: open bars grow, and the trace is fetched again; a changed trace is
  // rendered again in place (same address, same selected span).
  const timers = [];
  if (nodes.some((node) => node.running)) {
    timers.push(setInterval(() => {
      fitAxis(model);
      paint(true);
    }, GROW_EVERY_MS));
    const seen = JSON.stringify(trace);
    timers.push(setInterval(async () => {
      let fresh;
      try {
        fresh = await api(`/api/traces/${encodeURIComponent(traceId)}/`);
      } catch {
        return; // A failed refresh keeps what is on screen; the next one tries again.
      }
      if (!isCurrent() || JSON.stringify(fresh) === seen) return;
      refreshed = { traceId, trace: fresh };
      navigate(location.pathname + location.search, { replace: true });
    }, REFRESH_EVERY_MS));
  }
  return () => {
    window.removeEventListener('resize', onResize);
    for (const timer of timers) clearInterval(timer);
  };
}

// The trace's status as a badge: running (or abandoned) before errors, then ok.
function traceBadge(trace) {
  if (trace.status === 'running') return badge('running', 'running', 'a span of this trace has not ended yet');
  if (trace.status === 'abandoned') {
    return badge('abandoned', 'abandoned', 'a span is still running past the running timeout');
  }
  return trace.error_count > 0 ? badge('error', plural(trace.error_count, 'error', 'errors')) : badge('ok', 'ok');
}

