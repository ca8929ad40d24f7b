// Smoke: the editor boots against our server with no console errors but the offline ones, every node of
// our catalogue is registered in it, and the OmniGen nodes carry their widgets.

import assert from 'node:assert/strict'

import { describe } from '../support.mjs'

export async function run(ctx) {
  const page = await ctx.openEditor({ viewport: { width: 1400, height: 800 } })
  const catalogue = await (await fetch(`${ctx.server.url}/api/object_info`)).json()
  const registered = await page.evaluate(() => Object.keys(window.LiteGraph.registered_node_types))
  const missing = Object.keys(catalogue).filter((type) => !registered.includes(type))
  assert.deepEqual(missing, [], 'node types of /object_info missing in the editor')

  // Widgets the editor made for a fresh OmniGenSample: the sampler's numbers and the seed's control.
  const widgets = await page.evaluate(() => {
    const node = window.LiteGraph.createNode('OmniGenSample')
    return node.widgets.map((w) => ({ name: w.name, type: w.type, min: w.options?.min, max: w.options?.max }))
  })
  const byName = Object.fromEntries(widgets.map((w) => [w.name, w]))
  for (const name of ['width', 'height', 'steps', 'guidance_scale', 'seed']) {
    assert.ok(byName[name], `OmniGenSample has no ${name} widget: ${JSON.stringify(widgets)}`)
  }
  assert.equal(byName.steps.type, 'number')
  assert.ok(byName.control_after_generate, 'the seed has no control_after_generate widget')

  await page.waitForTimeout(1000) // late boot requests (extensions, polls) land in the error list too
  assert.deepEqual(describe(ctx.consoleErrors(page)), '', 'console errors in the editor')
  await ctx.screenshot(page, 'editor_loads')
}
