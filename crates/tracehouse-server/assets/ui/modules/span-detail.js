// The span detail panel: conversation, input and output, metadata, identifiers. JSON and
// long text render their hidden parts only when opened.

import { appendAll, badge, code, copyButton, h } from './dom.js';
import { feedbackEditor } from './feedback.js';
import { fmtCost, fmtDuration, fmtInt, fmtTime, parseTime, plural } from './format.js';

const TEXT_PREVIEW_CHARS = 2000;
const TEXT_PREVIEW_LINES = 30;
const JSON_STRING_PREVIEW = 300;
const JSON_CHILDREN_BATCH = 200;
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
  'content_expired_at',
  'positive_feedback', 'note', 'scores',
]);

export function typeClass(logType) {
  const kind = String(logType || 'custom').toLowerCase();
  if (LOG_TYPE_CLASS[kind]) return LOG_TYPE_CLASS[kind];
  let hash = 0;
  for (const ch of kind) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return `lt-x${hash % 4}`;
}

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

export function messageView([message, phase]) {
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

// `onFeedback(stored)` is told the span as stored after a feedback or score change (the
// feedback section shows only with it and with a log id to address).
export function spanDetail(node, trace, onFeedback) {
  const span = node.span;
  const spanWithoutChildren = Object.fromEntries(Object.entries(span).filter(([key]) => key !== 'children'));
  const parts = [];
  parts.push(h('div', { class: 'detail-head' },
    h('div', { class: 'kicker' },
      h('span', { class: `type-chip ${typeClass(span.log_type)}` }, span.log_type || 'custom'),
      node.error ? badge('error', 'error') : badge(span.status === 'running' || span.status === 'abandoned' ? span.status : 'ok', span.status || 'success'),
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
  // Retention dropped the payload (input, output, messages, tools) of this old span; its
  // numbers, identifiers and metadata are still here.
  if (span.content_expired_at) {
    parts.push(h('p', { class: 'notice', id: 'content-expired' },
      'Content expired: input, output, messages and tools were removed by the retention policy on ',
      h('time', { datetime: span.content_expired_at }, fmtTime(parseTime(span.content_expired_at), true)),
      '. Times, tokens, cost, identifiers and metadata are kept.'));
  }
  if (node.inferred) {
    parts.push(h('p', { class: 'notice' },
      'Sent without start or end time: drawn at the time it was received, and it does not stretch the trace.'));
  }

  const tokens = (value) => (typeof value === 'number' ? fmtInt(value) : '—');
  // A running span has no end yet: its stored end and latency are placeholders.
  const open = span.status === 'running' || span.status === 'abandoned';
  parts.push(h('div', { class: 'metrics', id: 'span-metrics' },
    metric('model', 'Model', span.model || '—'),
    metric('provider', 'Provider', span.provider_id || '—'),
    metric('latency', 'Latency', open ? span.status : fmtDuration(span.latency)),
    metric('ttft', 'Time to first token', fmtDuration(span.time_to_first_token)),
    metric('prompt_tokens', 'Prompt tokens', tokens(span.prompt_tokens)),
    metric('completion_tokens', 'Completion tokens', tokens(span.completion_tokens)),
    metric('total_tokens', 'Total tokens', tokens(span.total_tokens)),
    metric('cost', 'Cost', fmtCost(span.cost), typeof span.cost === 'number' ? `$${span.cost}` : null),
    metric('start', 'Start', fmtTime(parseTime(span.start_time), true), span.start_time),
    metric('end', 'End', open ? 'not yet' : fmtTime(parseTime(span.end_time || span.timestamp), true),
      open ? null : span.end_time || span.timestamp),
    span.status_code !== null && span.status_code !== undefined ? metric('status_code', 'Status code', String(span.status_code)) : null));

  if (onFeedback && span.id) {
    const marks = [
      span.positive_feedback === true ? '👍' : null,
      span.positive_feedback === false ? '👎' : null,
      span.scores && typeof span.scores === 'object' ? plural(Object.keys(span.scores).length, 'score', 'scores') : null,
    ].filter(Boolean);
    parts.push(section('Feedback', feedbackEditor(span, onFeedback), {
      id: 'span-feedback-section',
      count: marks.length ? marks.join(' · ') : undefined,
    }));
  }
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

