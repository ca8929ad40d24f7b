// The editable inputs of an API graph, derived from the graph and the node catalogue (/api/object_info),
// and the edits written back into the graph and its UI workflow. No DOM here.

/** Names of text inputs shown as big text areas even when the catalogue does not say multiline. */
const PROMPT_NAMES = new Set(['prompt', 'text', 'instruction', 'negative_prompt', 'positive', 'negative']);
/** Inputs the editor treats as seeds (it adds `control_after_generate` to them). */
const SEED_NAMES = new Set(['seed', 'noise_seed']);
/** The largest seed the randomize button draws: what the editor draws, exact in a JavaScript number. */
const SEED_RANGE = 1125899906842624;

/** The catalogue's spec of one input: `{kind, options, choices}`, or null when it declares none. */
export function inputSpec(catalogue, classType, name) {
  const def = catalogue?.[classType];
  for (const group of ['required', 'optional']) {
    const spec = def?.input?.[group]?.[name];
    if (Array.isArray(spec)) return normalise(spec);
  }
  return null;
}

function normalise([type, options = {}]) {
  if (Array.isArray(type)) return { kind: 'COMBO', choices: type.map(String), options };
  if (type === 'COMBO') return { kind: 'COMBO', choices: (options.options ?? []).map(String), options };
  return { kind: String(type), choices: [], options: options ?? {} };
}

/** What a value looks like when the catalogue does not know its input. */
function guessedSpec(value) {
  const kind = typeof value === 'boolean' ? 'BOOLEAN' : typeof value === 'number' ? (Number.isInteger(value) ? 'INT' : 'FLOAT') : 'STRING';
  return { kind, choices: [], options: {} };
}

/**
 * The form's fields: every input of every node that holds a value (not a link), labelled by the node's
 * title and the input's name. `role` is `prompt` (a text area), `seed` (with randomize), `image` (with
 * upload), or `plain`. Prompts first, then images, then the rest in graph order.
 */
export function fieldsOf(prompt, catalogue) {
  const fields = [];
  for (const [nodeId, node] of Object.entries(prompt ?? {})) {
    const classType = String(node?.class_type ?? '');
    const title = String(node?._meta?.title || catalogue?.[classType]?.display_name || classType);
    for (const [name, value] of Object.entries(node?.inputs ?? {})) {
      if (Array.isArray(value) || (value !== null && typeof value === 'object')) continue;
      const spec = inputSpec(catalogue, classType, name) ?? guessedSpec(value);
      fields.push({ nodeId, classType, title, name, value, spec, role: roleOf(classType, name, spec) });
    }
  }
  const rank = { prompt: 0, image: 1, seed: 2, plain: 2 };
  return fields
    .map((field, index) => ({ field, index }))
    .sort((a, b) => rank[a.field.role] - rank[b.field.role] || a.index - b.index)
    .map(({ field }) => field);
}

function roleOf(classType, name, spec) {
  if (spec.options.image_upload || (classType === 'LoadImage' && name === 'image')) return 'image';
  if (spec.kind === 'INT' && (SEED_NAMES.has(name) || spec.options.control_after_generate)) return 'seed';
  if (spec.kind === 'STRING' && (spec.options.multiline || PROMPT_NAMES.has(name))) return 'prompt';
  return 'plain';
}

/** A field's key, unique in a graph. */
export function fieldKey(field) {
  return `${field.nodeId}.${field.name}`;
}

/** A new random seed within the input's range. */
export function randomSeed(spec) {
  const min = Number.isFinite(spec.options.min) ? Math.max(spec.options.min, 0) : 0;
  const max = Number.isFinite(spec.options.max) ? Math.min(spec.options.max, SEED_RANGE) : SEED_RANGE;
  return min + Math.floor(Math.random() * Math.max(max - min, 1));
}

/** `value` as the input's kind wants it, or an error message naming the input. */
export function parseValue(field, raw) {
  const { kind, options } = field.spec;
  if (kind === 'BOOLEAN') return { value: Boolean(raw) };
  if (kind !== 'INT' && kind !== 'FLOAT') return { value: String(raw) };
  const number = Number(raw);
  const label = `${field.title} · ${field.name}`;
  if (String(raw).trim() === '' || !Number.isFinite(number)) return { error: `${label}: not a number` };
  if (kind === 'INT' && !Number.isInteger(number)) return { error: `${label}: must be a whole number` };
  if (Number.isFinite(options.min) && number < options.min) return { error: `${label}: at least ${options.min}` };
  if (Number.isFinite(options.max) && number > options.max) return { error: `${label}: at most ${options.max}` };
  return { value: number };
}

/** A copy of `prompt` with `values` (field key → value) written into its nodes' inputs. */
export function applyToPrompt(prompt, values) {
  const copy = structuredClone(prompt);
  for (const [key, value] of values) {
    const dot = key.lastIndexOf('.');
    const node = copy[key.slice(0, dot)];
    if (node?.inputs) node.inputs[key.slice(dot + 1)] = value;
  }
  return copy;
}

/**
 * A copy of the UI workflow with the same edits, so the PNG it travels with opens in the editor with the
 * values that ran. A node's widget is found through `widgets_values_named`, whose keys list the widgets
 * in `widgets_values` order (UI-only ones included); a node saved without it, or inside a subgraph, keeps
 * its saved values (the prompt that ran is still in the PNG's `prompt` chunk).
 */
export function applyToWorkflow(workflow, values) {
  if (!workflow) return workflow;
  const copy = structuredClone(workflow);
  const nodes = new Map((copy.nodes ?? []).map((node) => [String(node.id), node]));
  for (const [key, value] of values) {
    const dot = key.lastIndexOf('.');
    const node = nodes.get(key.slice(0, dot));
    const name = key.slice(dot + 1);
    const named = node?.widgets_values_named;
    if (!named || typeof named !== 'object' || !(name in named)) continue;
    named[name] = value;
    const position = Object.keys(named).indexOf(name);
    if (Array.isArray(node.widgets_values) && node.widgets_values.length === Object.keys(named).length) {
      node.widgets_values[position] = value;
    }
  }
  return copy;
}
