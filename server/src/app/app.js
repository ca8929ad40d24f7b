// The app page: pick a workflow, fill its inputs, run it, watch it, browse the results. Everything shown
// is put into the page as text (textContent, attributes), never as HTML.

import { ApiError, connectSocket, convert, describeError, getJson, newClientId, post, userdataUrl, viewUrl } from './api.js';
import { applyToPrompt, applyToWorkflow, fieldKey, fieldsOf, parseValue, randomSeed } from './form.js';

const $ = (id) => document.getElementById(id);
const HISTORY_ITEMS = 48;

/** An element with properties (`text`, `class`, `on*` handlers, attributes) and children. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') node.textContent = String(value);
    else if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== 'string') node[key] = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function show(node, visible) {
  node.hidden = !visible;
}

function say(node, message) {
  node.textContent = message ?? '';
  show(node, Boolean(message));
}

const state = {
  clientId: newClientId(),
  catalogue: null,
  current: null, // {name, prompt, workflow, fields, controls: Map(key → () => raw value)}
  mine: new Set(),
  running: null,
  titles: {},
  previewUrl: null,
};

async function catalogue({ refresh = false } = {}) {
  if (!state.catalogue || refresh) state.catalogue = await getJson('api/object_info');
  return state.catalogue;
}

// --- Picking a workflow -------------------------------------------------------------------------------

async function loadLists() {
  const [templates, saved] = await Promise.allSettled([
    getJson('api/workflow_templates', { missingOk: true }),
    getJson('api/userdata?dir=workflows&recurse=true&split=false&full_info=true', { missingOk: true }),
  ]);
  const examples = $('examples');
  examples.replaceChildren();
  const names = templates.status === 'fulfilled' ? templates.value?.omnigen ?? [] : [];
  for (const name of names) examples.append(el('option', { value: `template:${name}`, text: prettyName(name) }));
  const savedGroup = $('saved');
  savedGroup.replaceChildren();
  const files = saved.status === 'fulfilled' && Array.isArray(saved.value) ? saved.value : [];
  for (const file of files) {
    const path = typeof file === 'string' ? file : file?.path;
    if (typeof path === 'string' && path.endsWith('.json') && !path.split('/').pop().startsWith('.')) {
      savedGroup.append(el('option', { value: `saved:${path}`, text: path.replace(/\.json$/, '') }));
    }
  }
  show(examples, names.length > 0);
  show(savedGroup, files.length > 0);
}

function prettyName(name) {
  return String(name).replace(/[_-]+/g, ' ').replace(/^./, (c) => c.toUpperCase());
}

async function pick(value) {
  say($('pick-error'), '');
  if (!value) return;
  $('workflow-file').value = '';
  const [source, name] = [value.slice(0, value.indexOf(':')), value.slice(value.indexOf(':') + 1)];
  try {
    const url = source === 'template'
      ? `api/workflow_templates/omnigen/${encodeURIComponent(name)}.json`
      : userdataUrl(`workflows/${name}`);
    const response = await fetch(url, { cache: 'no-store' });
    if (!response.ok) throw new ApiError(response.status, await response.text());
    const converted = await convert(await response.blob());
    await open(source === 'template' ? prettyName(name) : name.replace(/\.json$/, ''), converted);
  } catch (error) {
    say($('pick-error'), `Cannot open ${name}: ${error.message}`);
  }
}

async function openFile(file) {
  say($('pick-error'), '');
  if (!file) return;
  $('workflow-select').value = ''; // the form shows the file now, not the saved workflow
  try {
    await open(file.name.replace(/\.(json|png)$/i, ''), await convert(file));
  } catch (error) {
    say($('pick-error'), `Cannot open ${file.name}: ${error.message}`);
  }
}

// --- The form -------------------------------------------------------------------------------------------

async function open(name, { prompt, workflow }) {
  const fields = fieldsOf(prompt, await catalogue());
  state.current = { name, prompt, workflow: workflow ?? null, fields, controls: new Map() };
  state.titles = titlesOf(prompt);
  $('workflow-name').textContent = name;
  const form = $('inputs');
  form.replaceChildren();
  const compact = el('div', { class: 'grid2' });
  for (const field of fields) {
    const control = fieldControl(field);
    if (field.role === 'plain' && field.spec.kind !== 'STRING') compact.append(control);
    else form.append(control);
  }
  if (compact.childElementCount) form.append(compact);
  if (!fields.length) form.append(el('p', { class: 'note', text: 'This workflow has no inputs to fill.' }));
  say($('run-error'), '');
  show($('inputs-card'), true);
}

function titlesOf(prompt) {
  return Object.fromEntries(Object.entries(prompt ?? {}).map(([id, node]) => [id, String(node?._meta?.title ?? node?.class_type ?? id)]));
}

function fieldControl(field) {
  const key = fieldKey(field);
  const label = `${field.title} · ${field.name}`;
  const tooltip = field.spec.options.tooltip;
  const id = `field-${key}`;
  const caption = el('span', { class: 'caption', text: label, id: `${id}-label` });
  const wrap = (control, extra = null, cls = 'field') => el('label', { class: cls, title: tooltip }, caption, control, extra);
  const { kind, options, choices } = field.spec;

  if (kind === 'BOOLEAN') {
    const box = el('input', { type: 'checkbox', name: key, id, 'data-label': label, checked: Boolean(field.value) });
    state.current.controls.set(key, () => box.checked);
    return el('label', { class: 'field inline', title: tooltip }, box, caption);
  }
  if (field.role === 'prompt') {
    const area = el('textarea', { name: key, id, 'data-label': label, rows: 4, spellcheck: true });
    area.value = String(field.value ?? '');
    state.current.controls.set(key, () => area.value);
    return wrap(area);
  }
  if (field.role === 'image') return imageControl(field, key, id, caption, tooltip);
  if (kind === 'COMBO') {
    const select = comboSelect(choices, field.value, key, id, label);
    state.current.controls.set(key, () => select.value);
    return wrap(select);
  }
  if (kind === 'INT' || kind === 'FLOAT') {
    const input = el('input', {
      type: 'number', name: key, id, 'data-label': label, inputmode: kind === 'INT' ? 'numeric' : 'decimal',
      min: options.min, max: options.max, step: options.step ?? (kind === 'INT' ? 1 : 'any'),
    });
    input.value = String(field.value ?? '');
    state.current.controls.set(key, () => input.value);
    if (field.role !== 'seed') return wrap(input);
    const dice = el('button', {
      type: 'button', text: 'Randomize', 'aria-label': `Randomize ${label}`,
      onclick: () => { input.value = String(randomSeed(field.spec)); },
    });
    return el('div', { class: 'field', title: tooltip }, el('label', { for: id }, caption), el('div', { class: 'row' }, input, dice));
  }
  const input = el('input', { type: 'text', name: key, id, 'data-label': label });
  input.value = String(field.value ?? '');
  state.current.controls.set(key, () => input.value);
  return wrap(input);
}

function comboSelect(choices, value, key, id, label) {
  const select = el('select', { name: key, id, 'data-label': label });
  const all = choices.includes(String(value)) || value === undefined ? choices : [String(value), ...choices];
  for (const choice of all) select.append(el('option', { value: choice, text: choice }));
  select.value = String(value ?? '');
  return select;
}

/** An image input: the input folder's files (when the catalogue lists them) or a name, and an upload. */
function imageControl(field, key, id, caption, tooltip) {
  const label = `${field.title} · ${field.name}`;
  const thumb = el('img', { class: 'thumb', alt: `The image for ${field.title}` });
  const chooser = field.spec.kind === 'COMBO'
    ? comboSelect(field.spec.choices, field.value, key, id, label)
    : el('input', { type: 'text', name: key, id, 'data-label': label, value: String(field.value ?? '') });
  // Only names known to be in the input folder (listed by the catalogue, or just uploaded) are shown, so
  // a graph naming a file this server lacks does not request it.
  const known = new Set(field.spec.choices);
  const showThumb = () => {
    const name = known.has(chooser.value) ? String(chooser.value) : '';
    const slash = name.lastIndexOf('/');
    thumb.src = name ? viewUrl({ filename: name.slice(slash + 1), subfolder: slash > 0 ? name.slice(0, slash) : '', type: 'input' }, { preview: 'webp;80' }) : '';
    show(thumb, Boolean(name));
  };
  thumb.addEventListener('error', () => show(thumb, false));
  chooser.addEventListener('change', showThumb);
  const problem = el('span', { class: 'error', role: 'alert', hidden: true });
  const upload = el('input', {
    type: 'file', accept: 'image/png,image/jpeg,image/webp', 'aria-label': `Upload an image for ${field.title} · ${field.name}`,
    onchange: async (event) => {
      const file = event.target.files?.[0];
      if (!file) return;
      say(problem, '');
      try {
        const form = new FormData();
        form.append('image', file, file.name);
        form.append('type', 'input');
        const saved = await post('api/upload/image', form);
        const name = saved.subfolder ? `${saved.subfolder}/${saved.name}` : saved.name;
        if (chooser.tagName === 'SELECT' && ![...chooser.options].some((o) => o.value === name)) {
          chooser.prepend(el('option', { value: name, text: name }));
        }
        chooser.value = name;
        known.add(name);
        showThumb();
      } catch (error) {
        say(problem, `Upload failed: ${error.message}`);
      }
    },
  });
  state.current.controls.set(key, () => chooser.value);
  showThumb();
  return el('div', { class: 'field', title: tooltip }, el('label', { for: id }, caption), chooser, upload, thumb, problem);
}

/** The form's values, or the first problem. */
function formValues() {
  const values = new Map();
  for (const field of state.current.fields) {
    const read = state.current.controls.get(fieldKey(field));
    const parsed = parseValue(field, read());
    if (parsed.error) return { error: parsed.error };
    values.set(fieldKey(field), parsed.value);
  }
  return { values };
}

// --- Running --------------------------------------------------------------------------------------------

async function runCurrent() {
  say($('run-error'), '');
  const { values, error } = formValues();
  if (error) return say($('run-error'), error);
  const { prompt, workflow } = state.current;
  await queue(applyToPrompt(prompt, values), applyToWorkflow(workflow, values), $('run-error'));
}

async function queue(prompt, workflow, errorNode) {
  const button = $('run');
  button.disabled = true;
  try {
    const body = { prompt, client_id: state.clientId };
    if (workflow) body.extra_data = { extra_pnginfo: { workflow } };
    const answer = await post('api/prompt', body);
    state.mine.add(answer.prompt_id);
    state.running = answer.prompt_id;
    state.titles = { ...state.titles, ...titlesOf(prompt) };
    startProgress('Queued');
    // A fast run may have finished before its id was known here (its messages were not ours yet).
    refreshGallery();
    return true;
  } catch (error) {
    const message = error instanceof ApiError ? describeError(error.status, error.body, titlesOf(prompt)) : error.message;
    say(errorNode, message);
    return false;
  } finally {
    button.disabled = false;
  }
}

function startProgress(text) {
  show($('progress-card'), true);
  show($('interrupt'), true);
  $('progress-title').textContent = 'Running';
  $('progress-text').textContent = text;
  $('progress').value = 0;
  show($('preview'), false);
}

function finishProgress(title, text) {
  show($('preview'), false); // the result is in the gallery now
  $('progress-title').textContent = title;
  $('progress-text').textContent = text;
  show($('interrupt'), false);
  state.running = null;
}

function onMessage({ type, data }) {
  if (type === 'status') {
    $('queue').textContent = `queue ${data?.status?.exec_info?.queue_remaining ?? 0}`;
    if (typeof data?.sid === 'string' && data.sid && state.mine.size === 0) state.clientId = data.sid;
    return;
  }
  if (!data || !state.mine.has(data.prompt_id)) return;
  const node = (id) => (state.titles[id] ? `${state.titles[id]}` : `node ${id}`);
  switch (type) {
    case 'execution_start':
      startProgress('Started');
      break;
    case 'executing':
      if (data.node === null) {
        if (state.running === data.prompt_id) finishProgress('Done', 'Finished.');
        refreshGallery();
      } else {
        $('progress-text').textContent = `Running ${node(data.node)}`;
      }
      break;
    case 'progress':
      $('progress').max = Math.max(Number(data.max) || 1, 1);
      $('progress').value = Number(data.value) || 0;
      $('progress-text').textContent = `${node(data.node)}: step ${data.value} of ${data.max}`;
      break;
    case 'executed':
      refreshGallery();
      break;
    case 'execution_error':
      finishProgress('Failed', `${node(data.node_id)} (${data.node_type}): ${data.exception_message}`);
      refreshGallery();
      break;
    case 'execution_interrupted':
      finishProgress('Stopped', 'Stopped before the end.');
      refreshGallery();
      break;
    default:
      break;
  }
}

function onPreview(blob) {
  if (!state.running) return;
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = URL.createObjectURL(blob);
  const img = $('preview');
  img.src = state.previewUrl;
  show(img, true);
}

// --- The gallery ----------------------------------------------------------------------------------------

let galleryRefresh = null;
let galleryStale = false;
function refreshGallery() {
  // Several messages may ask at once; one request answers them all. A request made while one is in flight
  // asks for one more after it: the history it read may predate the run that just finished.
  if (galleryRefresh) {
    galleryStale = true;
    return galleryRefresh;
  }
  galleryRefresh = loadGallery().finally(() => {
    galleryRefresh = null;
    if (galleryStale) {
      galleryStale = false;
      refreshGallery();
    }
  });
  return galleryRefresh;
}

async function loadGallery() {
  let history;
  try {
    history = await getJson(`api/history?max_items=${HISTORY_ITEMS}`);
  } catch {
    return;
  }
  const items = [];
  for (const [id, entry] of Object.entries(history ?? {}).reverse()) {
    const images = Object.values(entry?.outputs ?? {}).flatMap((out) => (Array.isArray(out?.images) ? out.images : []));
    const failed = entry?.status?.status_str === 'error';
    if (!images.length && !failed) continue;
    items.push(...(images.length ? images.map((image) => galleryItem(id, entry, image)) : [failedItem(id, entry)]));
  }
  $('gallery').replaceChildren(...items);
  show($('gallery-empty'), items.length === 0);
}

function entryGraph(entry) {
  const [, , prompt, extra] = Array.isArray(entry?.prompt) ? entry.prompt : [];
  return { prompt, workflow: extra?.extra_pnginfo?.workflow ?? null };
}

function when(entry) {
  const start = (entry?.status?.messages ?? []).find(([type]) => type === 'execution_start');
  const ms = start?.[1]?.timestamp;
  return ms ? new Date(ms).toLocaleString() : '';
}

function failedItem(id, entry) {
  const error = (entry?.status?.messages ?? []).find(([type]) => type === 'execution_error')?.[1];
  const text = error ? `Failed: ${error.node_type}: ${error.exception_message}` : 'Failed';
  return el('li', { 'data-prompt-id': id }, el('p', { class: 'meta failed', text }), galleryTools(id, entry, null));
}

function galleryItem(id, entry, image) {
  const src = viewUrl(image);
  return el('li', { 'data-prompt-id': id },
    el('a', { href: src, target: '_blank', rel: 'noopener' },
      el('img', { src: viewUrl(image, { preview: 'webp;85' }), alt: `Result ${image.filename}`, loading: 'lazy', 'data-filename': image.filename })),
    el('p', { class: 'meta', text: [image.filename, when(entry)].filter(Boolean).join(' · ') }),
    galleryTools(id, entry, image));
}

function galleryTools(id, entry, image) {
  const problem = el('span', { class: 'error', role: 'alert', hidden: true });
  const again = (newSeed) => async () => {
    say(problem, '');
    const { prompt, workflow } = entryGraph(entry);
    if (!prompt) return say(problem, 'This result has no graph to run again.');
    let values = new Map();
    if (newSeed) {
      const seeds = fieldsOf(prompt, await catalogue()).filter((f) => f.role === 'seed');
      if (!seeds.length) return say(problem, 'This graph has no seed.');
      values = new Map(seeds.map((f) => [fieldKey(f), randomSeed(f.spec)]));
    }
    await queue(applyToPrompt(prompt, values), applyToWorkflow(workflow, values), problem);
  };
  const { prompt, workflow } = entryGraph(entry);
  return el('div', { class: 'tools' },
    el('button', { type: 'button', text: 'Run again', onclick: again(false), disabled: !prompt }),
    el('button', { type: 'button', text: 'New seed', onclick: again(true), disabled: !prompt }),
    el('button', { type: 'button', text: 'Edit inputs', disabled: !prompt, onclick: () => open(`Result ${id.slice(0, 8)}`, { prompt, workflow }) }),
    image && el('a', { class: 'button', href: viewUrl(image), download: image.filename, text: 'Download' }),
    workflow && editorInstalled && el('button', { type: 'button', text: 'Open in editor', onclick: () => openInEditor(id, workflow, problem) }),
    problem);
}

/**
 * Saves the workflow where the editor lists its own (user/default/workflows/app/) and opens the editor.
 * The editor has no URL that opens a saved workflow by name (docs/ui.md, not yet), so the user picks
 * `app/NAME` from the editor's Workflows panel.
 */
async function openInEditor(id, workflow, problem) {
  say(problem, '');
  const path = `workflows/app/result-${id.slice(0, 8)}.json`;
  try {
    const response = await fetch(userdataUrl(path, '?overwrite=true'), { method: 'POST', body: JSON.stringify(workflow) });
    if (!response.ok) throw new ApiError(response.status, await response.text());
    window.open('./', '_blank', 'noopener');
    say(problem, `Saved as ${path.replace(/^workflows\//, '')}: open it from the editor's Workflows panel.`);
  } catch (error) {
    say(problem, `Cannot save for the editor: ${error.message}`);
  }
}

// --- Start ------------------------------------------------------------------------------------------------

let editorInstalled = false;

function detectEditor() {
  // The server marks the page: `installed` when it serves the editor at `/`.
  editorInstalled = document.documentElement.dataset.editor === 'installed';
  show($('editor-link'), editorInstalled);
  show($('editor-missing'), !editorInstalled);
}

function start() {
  $('workflow-select').addEventListener('change', (event) => pick(event.target.value));
  $('workflow-file').addEventListener('change', (event) => openFile(event.target.files?.[0]));
  $('run').addEventListener('click', runCurrent);
  $('interrupt').addEventListener('click', () => state.running && post('api/interrupt', { prompt_id: state.running }).catch(() => {}));
  connectSocket(state.clientId, {
    onMessage,
    onPreview,
    onState: (on) => {
      const pill = $('connection');
      pill.dataset.state = on ? 'on' : 'off';
      pill.textContent = on ? 'connected' : 'offline';
      if (on) refreshGallery();
    },
  });
  detectEditor();
  refreshGallery();
  loadLists().then(() => {
    const wanted = new URLSearchParams(location.search).get('template');
    if (wanted) {
      $('workflow-select').value = `template:${wanted}`;
      pick(`template:${wanted}`);
    }
  });
}

start();
