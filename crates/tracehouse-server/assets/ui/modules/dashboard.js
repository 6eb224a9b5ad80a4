// Dashboard: metrics over time from /api/metrics/timeseries/ and /api/metrics/top/, drawn as
// hand-written SVG. Every label is a Text node (SVG <text>/<title> get textContent), like
// everything else the viewer draws.

import { api, session } from './api.js';
import { code, copyButton, h, svg } from './dom.js';
import { fmtCost, fmtDuration, fmtInt, fmtNumber, fmtPercent, fmtTime, pad, parseTime, plural } from './format.js';
import { DEFAULT_PAGE_SIZE, DEFAULT_SORT, TIME_PRESETS, listUrl, metadataFilters } from './trace-list.js';
import { curlExample, errorBanner, handleAuthFailure, navigate, paths, remembered, shell } from './shell.js';

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
  metadataFilters(state.meta, filters);
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
    h('span', { class: 'ch-swatch', style: { background: s.colour } }),
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

export function renderDashboard(route, isCurrent) {
  const state = dashboardStateFrom(route.params);
  remembered.dashboard = dashboardUrl(state);
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

