// DOM construction: the only way the viewer puts anything on the page. Data enters as Text
// nodes or attribute values, never as markup.

export function h(tag, props, ...children) {
  const element = document.createElement(tag);
  if (props) {
    for (const [name, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'class') element.className = value;
      else if (name === 'dataset') Object.assign(element.dataset, value);
      // Through the CSSOM: the Content-Security-Policy (style-src 'self') refuses a `style`
      // attribute, but not properties set from a script.
      else if (name === 'style' && typeof value === 'object') Object.assign(element.style, value);
      else if (name.startsWith('on') && typeof value === 'function') {
        element.addEventListener(name.slice(2), value);
      } else element.setAttribute(name, value === true ? '' : String(value));
    }
  }
  return appendAll(element, children);
}

export function appendAll(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    // append() of a string makes a Text node: it is never parsed as HTML.
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

export const code = (text) => h('code', null, text);

export function badge(kind, text, title) {
  return h('span', { class: `badge badge-${kind}`, title }, text);
}
const SVG_NS = 'http://www.w3.org/2000/svg';
export function svg(tag, attrs, ...children) {
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

export function copyButton(text, label = 'Copy') {
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

