// Generates the editor templates graphs/workflows/NAME.json (+ NAME.jpg, the template card's picture)
// from every example graph graphs/NAME.json, through ComfyUI's real editor in headless Chromium: the
// editor loads the API graph (`app.loadApiJson`), the nodes are laid out in columns by dependency (a
// node sits one column right of its deepest input), and `app.graph.serialize()` is written as it would
// save it. `omnigen serve` embeds the files and offers them at /api/workflow_templates.
//
//   node ui/oracle/templates.mjs --frontend STATIC_DIR [--omnigen target/debug/omnigen] [--out graphs/workflows]
//
// Needs /usr/bin/chromium and `npm install --no-package-lock --prefix ui` (playwright-core).

import { mkdtempSync, readFileSync, readdirSync, writeFileSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve, basename } from 'node:path'

import { describe, launchBrowser, repo, startServer } from '../browser/support.mjs'

function args() {
  const out = { omnigen: join(repo, 'target', 'debug', 'omnigen'), frontend: null, out: join(repo, 'graphs', 'workflows') }
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '')
    if (!(key in out) || argv[i + 1] === undefined) throw new Error(`unknown or incomplete argument ${argv[i]}`)
    out[key] = resolve(argv[i + 1])
  }
  if (!out.frontend) throw new Error('--frontend STATIC_DIR is required (the editor to load the graphs in)')
  return out
}

// A wide page drawn at half resolution: the graph fits at a zoom where the editor still draws its text,
// and the thumbnail stays small. CLIP is the canvas area without the editor's bars and minimap.
const VIEWPORT = { width: 2000, height: 1000 }
const CLIP = [70, 110, 1900, 640]

/** Runs in the page: lays out the loaded graph in dependency columns and fits the view to it. */
function layOut(CLIP) {
  const GAP_X = 80
  const GAP_Y = 50
  const nodes = [...app.graph._nodes].sort((a, b) => a.id - b.id)
  const depth = new Map()
  const depthOf = (node, seen = new Set()) => {
    if (depth.has(node.id)) return depth.get(node.id)
    if (seen.has(node.id)) return 0
    seen.add(node.id)
    const sources = (node.inputs ?? [])
      .map((input) => input.link != null && app.graph.links.get?.(input.link) || app.graph.links[input.link])
      .filter(Boolean)
      .map((link) => app.graph.getNodeById(link.origin_id))
      .filter(Boolean)
    const d = sources.length ? 1 + Math.max(...sources.map((s) => depthOf(s, seen))) : 0
    depth.set(node.id, d)
    return d
  }
  const columns = []
  for (const node of nodes) (columns[depthOf(node)] ??= []).push(node)
  const title = LiteGraph.NODE_TITLE_HEIGHT
  let x = 0
  for (const column of columns.filter(Boolean)) {
    let y = 0
    for (const node of column) {
      node.pos = [x, y + title]
      y += title + node.size[1] + GAP_Y
    }
    x += Math.max(...column.map((n) => n.size[0])) + GAP_X
  }
  const right = Math.max(...nodes.map((n) => n.pos[0] + n.size[0]))
  const bottom = Math.max(...nodes.map((n) => n.pos[1] + n.size[1]))
  // Fit the graph into the canvas area right of the side bar and below the top bar (the thumbnail's clip).
  const [x0, y0, w, h] = CLIP
  app.canvas.ds.fitToBounds([-20, -20, right + 40, bottom + 40], { zoom: 0.95, viewport: [x0, y0, w, h] })
  app.graph.setDirtyCanvas(true, true)
}

async function main() {
  const opts = args()
  const scratch = mkdtempSync(join(tmpdir(), 'omnigen-templates-'))
  const browser = await launchBrowser()
  const server = await startServer({ omnigen: opts.omnigen, frontend: opts.frontend, dataDir: join(scratch, 'data') })
  try {
    const page = await browser.newPage({ viewport: VIEWPORT, deviceScaleFactor: 0.5 })
    const errors = []
    page.on('console', (msg) => msg.type() === 'error' && errors.push({ text: msg.text() }))
    page.on('pageerror', (err) => errors.push({ text: String(err) }))
    await page.goto(server.url + '/')
    await page.waitForFunction(() => window.app?.graph && window.LiteGraph?.registered_node_types?.OmniGenSample, null, { timeout: 120_000 })
    mkdirSync(opts.out, { recursive: true })
    const graphsDir = join(repo, 'graphs')
    for (const file of readdirSync(graphsDir).filter((f) => f.endsWith('.json')).sort()) {
      const name = basename(file, '.json')
      const api = JSON.parse(readFileSync(join(graphsDir, file), 'utf8'))
      await page.evaluate(async ({ api, name }) => app.loadApiJson(api, name), { api, name })
      await page.evaluate(layOut, CLIP)
      await page.waitForTimeout(500)
      const ui = await page.evaluate(() => app.graph.serialize())
      writeFileSync(join(opts.out, `${name}.json`), JSON.stringify(ui, null, 2) + '\n')
      const [x, y, width, height] = CLIP
      await page.screenshot({ path: join(opts.out, `${name}.jpg`), type: 'jpeg', quality: 70, scale: 'device', clip: { x, y, width, height } })
      console.log(`wrote ${name}`)
    }
    if (errors.length) console.error(`console errors in the page:\n  ${describe(errors)}`)
  } finally {
    await browser.close()
    await server.stop()
    rmSync(scratch, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
