// Formatting of times, durations, counts and costs, shared by every view.

const TIME_RE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/;

// Milliseconds since the epoch, keeping the sub-millisecond digits Date.parse would drop:
// spans of a few microseconds must still get distinct waterfall positions.
export function parseTime(text) {
  if (typeof text !== 'string') return NaN;
  const match = TIME_RE.exec(text);
  if (!match) return Date.parse(text);
  const whole = Date.parse(match[1] + (match[3] || 'Z'));
  return whole + (match[2] ? Number(`0${match[2]}`) * 1000 : 0);
}

export const pad = (n, width = 2) => String(n).padStart(width, '0');

export function fmtTime(ms, withMillis = false) {
  if (!Number.isFinite(ms)) return '—';
  const d = new Date(ms);
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return `${date} ${time}${withMillis ? `.${pad(d.getMilliseconds(), 3)}` : ''}`;
}

export function fmtRelative(ms) {
  if (!Number.isFinite(ms)) return '';
  const seconds = Math.round((Date.now() - ms) / 1000);
  if (seconds < 0) return 'in the future';
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86400)}d ago`;
}

export function fmtDuration(seconds) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return '—';
  const ms = seconds * 1000;
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
  if (seconds < 60) return `${seconds.toFixed(2)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${Math.round(seconds - minutes * 60)}s`;
  return `${Math.floor(minutes / 60)}h ${minutes % 60}m`;
}

export function fmtInt(value) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return '—';
  return value.toLocaleString('en-US');
}

// Costs span many orders of magnitude (a cached embedding vs. a long agent run): keep three
// significant digits below a dollar instead of rounding small costs to $0.00.
export function fmtCost(value) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return '—';
  if (value === 0) return '$0';
  if (Math.abs(value) >= 1) return `$${value.toFixed(2)}`;
  const digits = Math.min(12, 3 - Math.floor(Math.log10(Math.abs(value))));
  return `$${value.toFixed(digits).replace(/0+$/, '').replace(/\.$/, '')}`;
}

export function plural(n, one, many) {
  return `${fmtInt(n)} ${n === 1 ? one : many}`;
}

export const fmtNumber = (value) => (Math.abs(value) >= 1000 || Number.isInteger(value)
  ? fmtInt(Math.round(value))
  : value.toPrecision(3));
export const fmtPercent = (value) => `${(value * 100).toFixed(value > 0 && value < 0.01 ? 2 : 1)}%`;

