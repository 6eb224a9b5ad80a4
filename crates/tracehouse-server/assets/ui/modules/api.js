// The signed-in session (the API key, kept only in this tab) and the one function that calls
// the JSON API.

const KEY_STORAGE = 'tracehouse.apiKey';

export const session = {
  project: null,
  get key() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || '';
    } catch (_) {
      return '';
    }
  },
  set(key) {
    sessionStorage.setItem(KEY_STORAGE, key);
  },
  clear() {
    this.project = null;
    try {
      sessionStorage.removeItem(KEY_STORAGE);
    } catch (_) {
      // Storage disabled: nothing was kept, nothing to clear.
    }
  },
};

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(path, body, key = session.key, method = body === undefined ? 'GET' : 'POST') {
  const init = {
    method,
    headers: { Authorization: `Bearer ${key}` },
    cache: 'no-store',
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, `cannot reach the server (${error.message})`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (_) {
      data = null;
    }
  }
  if (!response.ok) {
    const message = data && typeof data.message === 'string'
      ? data.message
      : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return data;
}


// What the signed-in key may do, from /api/projects/current/ (older servers send no
// scopes: their keys could do everything).
export function scopesText(project) {
  return Array.isArray(project.scopes) ? project.scopes.join(', ') : 'admin';
}
export function canRead(project) {
  return !project.can || Boolean(project.can.read);
}
export function canAdmin(project) {
  return !project || !project.can || Boolean(project.can.admin);
}

