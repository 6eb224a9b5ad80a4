// Feedback and scores: the filters that narrow trace and thread lists by them, and the editor
// in the span detail that sets them through the logging API (`PATCH /api/request-logs/{id}/`
// and `/api/logs/{id}/scores/`), which needs a key with the admin scope.

import { api, canAdmin, scopesText, session } from './api.js';
import { h } from './dom.js';
import { fmtTime, parseTime } from './format.js';

export const FEEDBACK_OPTIONS = [['', 'Any'], ['up', 'Thumbs up'], ['down', 'Thumbs down'], ['none', 'No feedback']];

const SCORE_RE = /^\s*([^<>=\s]+)\s*(>=|<=|>|<|=)\s*(-?\d+(?:\.\d+)?)\s*$/;
const SCORE_OPERATORS = { '>=': 'gte', '<=': 'lte', '>': 'gt', '<': 'lt', '=': '' };

// Whether a score filter reads as `evaluator>=4` (or <=, >, <, =).
export const isScoreFilter = (text) => SCORE_RE.test(text);

// Adds the feedback and score conditions of a list's state to its `filters` object.
export function feedbackFilters(state, filters) {
  if (state.feedback === 'up') filters.positive_feedback = { operator: '', value: [true] };
  if (state.feedback === 'down') filters.positive_feedback = { operator: '', value: [false] };
  if (state.feedback === 'none') filters.positive_feedback = { operator: 'isnull', value: [true] };
  const match = SCORE_RE.exec(state.score || '');
  if (match) {
    filters[`scores__${match[1]}`] = { operator: SCORE_OPERATORS[match[2]], value: [Number(match[3])] };
  }
  return filters;
}

// The two filter fields, for a filter form whose ids start with `prefix`.
export function feedbackFields(state, prefix) {
  return [
    h('label', { class: 'field field-feedback' },
      h('span', null, 'Feedback'),
      h('select', { name: 'feedback', id: `${prefix}-feedback` },
        FEEDBACK_OPTIONS.map(([id, text]) => h('option', { value: id, selected: id === state.feedback }, text)))),
    h('label', { class: 'field field-score' },
      h('span', null, 'Score'),
      h('input', {
        name: 'score', id: `${prefix}-score`, value: state.score, autocomplete: 'off',
        placeholder: 'evaluator>=4', title: 'an evaluator, a comparison (>=, <=, >, <, =) and a number',
      })),
  ];
}

// The thumbs of a span or turn, as text for lists.
export function feedbackMark(value) {
  if (value === true) return h('span', { class: 'thumb thumb-up', title: 'positive feedback' }, '👍');
  if (value === false) return h('span', { class: 'thumb thumb-down', title: 'negative feedback' }, '👎');
  return null;
}

function scoreValue(score) {
  for (const key of ['numerical_value', 'string_value', 'boolean_value']) {
    if (score[key] !== undefined && score[key] !== null) return String(score[key]);
  }
  if (Array.isArray(score.categorical_value)) return score.categorical_value.join(', ');
  return '—';
}

// The outcome of the last save, kept across the redraw the save causes.
let lastOutcome = { id: null, text: '' };

// The feedback section of the span detail: thumbs, note and scores, editable with an admin
// key. `onSaved(span)` gets the span as the server stored it, to redraw from.
export function feedbackEditor(span, onSaved) {
  const allowed = canAdmin(session.project);
  const why = allowed ? null
    : `This key has the ${scopesText(session.project)} scope: feedback and scores need a key with the admin scope`;
  const status = h('p', { class: 'feedback-status', id: 'feedback-status', role: 'status' },
    lastOutcome.id === span.id ? lastOutcome.text : '');
  const logPath = `/api/request-logs/${encodeURIComponent(span.id)}/`;
  const scoresPath = `/api/logs/${encodeURIComponent(span.id)}/scores/`;
  const busy = (on) => {
    for (const control of box.querySelectorAll('button, input, textarea')) control.disabled = on || !allowed;
  };
  const save = async (path, body, method) => {
    busy(true);
    status.textContent = 'Saving…';
    try {
      await api(path, body, session.key, method);
      const stored = await api(logPath);
      lastOutcome = { id: span.id, text: `Saved ${fmtTime(Date.now()).slice(11)}` };
      status.textContent = lastOutcome.text;
      onSaved(stored);
    } catch (error) {
      status.textContent = `Not saved: ${error.message}`;
      busy(false);
    }
  };
  const thumb = (value, label, id) => h('button', {
    type: 'button', class: `ghost small thumb-button${span.positive_feedback === value ? ' active' : ''}`, id,
    'aria-pressed': span.positive_feedback === value ? 'true' : 'false', title: why || label,
    onclick: () => save(logPath, { positive_feedback: span.positive_feedback === value ? null : value }, 'PATCH'),
  }, value ? '👍' : '👎', ` ${label}`);
  const note = h('textarea', { id: 'feedback-note', rows: '2', placeholder: 'a note about this span' });
  note.value = typeof span.note === 'string' ? span.note : '';
  const noteForm = h('form', { class: 'feedback-note' }, note,
    h('button', { type: 'submit', class: 'ghost small', id: 'save-note', title: why }, 'Save note'));
  noteForm.addEventListener('submit', (event) => {
    event.preventDefault();
    save(logPath, { note: note.value.trim() || null }, 'PATCH');
  });
  const scores = span.scores && typeof span.scores === 'object' && !Array.isArray(span.scores)
    ? Object.entries(span.scores) : [];
  const evaluator = h('input', { id: 'score-evaluator', placeholder: 'evaluator', autocomplete: 'off', required: true });
  const value = h('input', { id: 'score-value', type: 'number', step: 'any', placeholder: 'value', required: true });
  const scoreForm = h('form', { class: 'feedback-score' }, evaluator, value,
    h('button', { type: 'submit', class: 'ghost small', id: 'save-score', title: why }, 'Set score'));
  scoreForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const number = Number(value.value);
    if (!evaluator.value.trim() || !Number.isFinite(number)) return;
    save(scoresPath, { evaluator_slug: evaluator.value.trim(), numerical_value: number });
  });
  const box = h('div', { class: 'feedback', id: 'span-feedback' },
    h('div', { class: 'feedback-thumbs' },
      thumb(true, 'Good', 'thumb-up'), thumb(false, 'Bad', 'thumb-down')),
    noteForm,
    scores.length
      ? h('table', { class: 'kv', id: 'span-scores' }, h('tbody', null, scores.map(([name, score]) => h('tr', { dataset: { evaluator: name } },
        h('th', { scope: 'row' }, name),
        h('td', null, scoreValue(score || {}),
          score && score.updated_at ? h('span', { class: 'sub' }, fmtTime(parseTime(score.updated_at))) : null)))))
      : h('p', { class: 'muted', id: 'span-no-scores' }, 'No scores yet.'),
    scoreForm,
    allowed ? null : h('p', { class: 'hint' }, why),
    status);
  busy(false);
  return box;
}
