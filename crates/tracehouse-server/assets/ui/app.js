// tracehouse web viewer: the page's one classic script. The viewer itself is a set of ES
// modules (modules/main.js and what it imports), embedded in the binary and loaded from this
// origin without a build step; a dynamic import keeps the page's script tag unchanged for
// every version of the viewer.
'use strict';

import('/ui/static/modules/main.js').catch((error) => {
  const app = document.getElementById('app');
  const message = document.createElement('p');
  message.className = 'error-banner';
  message.setAttribute('role', 'alert');
  message.textContent = `The viewer failed to load: ${error && error.message ? error.message : error}`;
  if (app) app.replaceChildren(message);
});
