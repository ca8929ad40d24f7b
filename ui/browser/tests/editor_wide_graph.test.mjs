// A wide graph in the editor: N independent output nodes (the server's --test-nodes TestSlowCount), one
// of them slow. The WebSocket traffic of a run grows linearly with N (the server sends node state as
// changes, not ComfyUI's cumulative snapshots, which grow with N²), and the editor still shows the
// right node running: the slow one, and only nodes of the graph.

import assert from 'node:assert/strict'

import { describe, isOfflineNoise } from '../support.mjs'

const SLOW = 'slow'

/** N quick counters and one slow one, as an API graph. */
function wide(n) {
  const graph = {}
  for (let k = 1; k < n; k++) graph[String(k)] = { class_type: 'TestSlowCount', inputs: { steps: 1, delay_ms: 0 } }
  graph[String(n)] = { class_type: 'TestSlowCount', inputs: { steps: 40, delay_ms: 100 }, _meta: { title: SLOW } }
  return graph
}

/**
 * A fresh server with the test nodes (so its cache holds nothing of an earlier run) and the editor on
 * it, counting the bytes its WebSocket receives.
 */
async function freshEditor(ctx) {
  await ctx.restartServer({ extraArgs: ['--test-nodes'] })
  const counter = { bytes: 0, errors: [] }
  const page = await ctx.browser.newPage({ viewport: { width: 1400, height: 800 } })
  page.on('websocket', (ws) => ws.on('framereceived', (frame) => { counter.bytes += Buffer.byteLength(frame.payload) }))
  page.on('pageerror', (err) => counter.errors.push({ text: String(err) }))
  page.on('console', (msg) => msg.type() === 'error' && counter.errors.push({ text: msg.text(), url: msg.location()?.url }))
  await page.goto(ctx.server.url + '/')
  await page.waitForFunction(() => window.app?.graph && window.LiteGraph?.registered_node_types?.TestSlowCount, null, { timeout: 120_000 })
  return { page, counter }
}

/** Loads `graph`, runs it from the editor and returns the bytes the page's socket received meanwhile. */
async function runWide(ctx, n) {
  const { page, counter } = await freshEditor(ctx)
  await page.evaluate(async ({ graph, n }) => app.loadApiJson(graph, `wide_${n}`), { graph: wide(n), n })
  // What the editor shows: the node it reports running, and the slow node's progress bar (the
  // editor sets `progress` on every node its store has running).
  await page.evaluate((slow) => {
    window.__running = new Set()
    window.__slowProgress = new Set()
    window.__timer = setInterval(() => {
      if (app.runningNodeId != null) window.__running.add(String(app.runningNodeId))
      const progress = app.graph.getNodeById(slow)?.progress
      if (typeof progress === 'number') window.__slowProgress.add(progress)
    }, 10)
  }, n)
  const before = counter.bytes
  const done = await (await fetch(`${ctx.server.url}/api/history`)).json()
  const finishedBefore = Object.keys(done).length
  await page.getByRole('button', { name: 'Run', exact: true }).click()
  for (let tries = 0; ; tries++) {
    assert.ok(tries < 1200, `the ${n}-node run did not finish`)
    await new Promise((r) => setTimeout(r, 250))
    const history = await (await fetch(`${ctx.server.url}/api/history`)).json()
    const jobs = Object.values(history)
    if (jobs.length > finishedBefore) {
      assert.ok(jobs.every((j) => j.status?.status_str === 'success'), JSON.stringify(jobs.map((j) => j.status)))
      break
    }
  }
  await page.waitForTimeout(500) // the last messages reach the page
  const { running, slowProgress } = await page.evaluate(() => {
    clearInterval(window.__timer)
    return { running: [...window.__running], slowProgress: [...window.__slowProgress] }
  })
  if (n === 1000) await ctx.screenshot(page, 'editor_wide_graph')
  await page.close()
  return { bytes: counter.bytes - before, running, slowProgress, errors: counter.errors.filter((e) => !isOfflineNoise(e)) }
}

export async function run(ctx) {
  const small = await runWide(ctx, 100)
  const large = await runWide(ctx, 1000)
  console.log(`WebSocket bytes: 100 nodes ${small.bytes}, 1000 nodes ${large.bytes} (x${(large.bytes / small.bytes).toFixed(1)})`)
  // Linear: ten times the nodes, about ten times the bytes (cumulative snapshots would be ~100 times).
  assert.ok(large.bytes > 5 * small.bytes, `the 1000-node run sent too little to have run: ${small.bytes} -> ${large.bytes}`)
  assert.ok(large.bytes < 20 * small.bytes, `WebSocket bytes grew faster than the graph: ${small.bytes} -> ${large.bytes}`)
  for (const [n, seen] of [[100, small], [1000, large]]) {
    const shown = seen.slowProgress.some((p) => p > 0 && p < 1) || seen.running.includes(String(n))
    assert.ok(shown, `the slow node ${n} was never shown running: progress ${seen.slowProgress}, running ${seen.running.slice(0, 30)}`)
    assert.ok(seen.running.length > 0, 'no node was ever shown running')
    const ids = new Set(Array.from({ length: n }, (_, k) => String(k + 1)))
    assert.deepEqual(seen.running.filter((id) => !ids.has(id)), [], 'a node outside the graph was shown running')
    assert.equal(describe(seen.errors), '', `console errors in the editor (${n} nodes)`)
  }
}
