// The server's HTTP and WebSocket API, as the app page uses it. Every URL is relative to the page, so the
// app works under a sub-path as the editor does.

/** An error answered by the server, with ComfyUI's error JSON when there is one. */
export class ApiError extends Error {
  constructor(status, body) {
    super(describeError(status, body));
    this.status = status;
    this.body = body;
  }
}

/** A readable message for ComfyUI's `{"error": {...}, "node_errors": {...}}` body, naming the nodes. */
export function describeError(status, body, titles = {}) {
  if (!body || typeof body !== 'object') return `HTTP ${status}${body ? `: ${body}` : ''}`;
  const error = typeof body.error === 'object' && body.error ? body.error : { message: String(body.error ?? '') };
  const lines = [[error.message, error.details].filter(Boolean).join(': ')];
  for (const [node, entry] of Object.entries(body.node_errors ?? {})) {
    const name = titles[node] ? `${titles[node]} (node ${node})` : `node ${node}`;
    for (const e of entry?.errors ?? []) {
      lines.push(`${name}: ${[e.message, e.details].filter(Boolean).join(': ')}`);
    }
  }
  return lines.filter(Boolean).join('\n') || `HTTP ${status}`;
}

async function answer(response) {
  const text = await response.text();
  let body = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: keep the text.
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

/** GET a JSON answer; `null` for a 404 when `missingOk`. */
export async function getJson(path, { missingOk = false } = {}) {
  const response = await fetch(path, { cache: 'no-store' });
  if (missingOk && response.status === 404) return null;
  return answer(response);
}

/** POST a body (JSON-encoded unless it is already a Blob, FormData or string). */
export async function post(path, body) {
  const raw = body instanceof Blob || body instanceof FormData || typeof body === 'string';
  const response = await fetch(path, {
    method: 'POST',
    headers: raw ? {} : { 'Content-Type': 'application/json' },
    body: raw ? body : JSON.stringify(body),
  });
  return answer(response);
}

/** `{prompt, workflow}` for any graph document: API graph, body, UI workflow, or PNG bytes. */
export function convert(document) {
  return post('api/omnigen/convert', document);
}

/** A URL of /api/view for a file reference `{filename, subfolder, type}`. */
export function viewUrl(file, extra = {}) {
  const query = new URLSearchParams({
    filename: file.filename,
    subfolder: file.subfolder ?? '',
    type: file.type ?? 'output',
    ...extra,
  });
  return `api/view?${query}`;
}

/** A userdata path (`workflows/a.json`) as the one URL segment the server expects. */
export function userdataUrl(path, query = '') {
  return `api/userdata/${encodeURIComponent(path)}${query}`;
}

/** A random client id (hex; crypto.randomUUID needs a secure context, plain http on a LAN is not one). */
export function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The server's WebSocket for `clientId`, reconnecting after a close. `onMessage({type, data})` gets text
 * messages, `onPreview(blob)` preview images (binary frames of type 1, and type 4 if ever negotiated),
 * `onState(connected)` the connection's state.
 */
export function connectSocket(clientId, { onMessage, onPreview, onState }) {
  const url = new URL(`ws?clientId=${encodeURIComponent(clientId)}`, location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  let socket;
  const open = () => {
    socket = new WebSocket(url);
    socket.binaryType = 'arraybuffer';
    socket.onopen = () => onState(true);
    socket.onclose = () => {
      onState(false);
      setTimeout(open, 1000);
    };
    socket.onmessage = (event) => {
      if (typeof event.data === 'string') {
        try {
          onMessage(JSON.parse(event.data));
        } catch {
          // A message that is not JSON is not for us.
        }
        return;
      }
      const preview = previewOf(event.data);
      if (preview) onPreview(preview);
    };
  };
  open();
  return { close: () => socket?.close() };
}

/** The image of a binary preview frame, or null for other frames. */
export function previewOf(buffer) {
  if (buffer.byteLength < 8) return null;
  const view = new DataView(buffer);
  const kind = view.getUint32(0);
  if (kind === 1) {
    const type = view.getUint32(4) === 2 ? 'image/png' : 'image/jpeg';
    return new Blob([buffer.slice(8)], { type });
  }
  if (kind === 4) {
    const length = view.getUint32(4);
    if (8 + length > buffer.byteLength) return null;
    let type = 'image/jpeg';
    try {
      const meta = JSON.parse(new TextDecoder().decode(buffer.slice(8, 8 + length)));
      if (typeof meta.image_type === 'string') type = meta.image_type;
    } catch {
      // Keep the default type.
    }
    return new Blob([buffer.slice(8 + length)], { type });
  }
  return null;
}
