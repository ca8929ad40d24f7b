// LoadImage in the editor: its `image` is a combo of the input folder's images with the upload button;
// a picture uploaded through that button (the editor's own file chooser and /upload/image) joins the
// list, is picked, and an instruction-edit graph (the instruction_edit template on the tiny model) runs
// on it and saves its picture.

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import { describe } from '../support.mjs'

export async function run(ctx) {
  const page = await ctx.openPage('/?template=instruction_edit&source=omnigen', { viewport: { width: 1400, height: 800 } })
  await page.waitForFunction(() => window.app?.graph?._nodes?.some((n) => n.type === 'LoadImage') && !location.search.includes('template='), null, { timeout: 60_000 })

  const loadImage = await page.evaluate(() => {
    const node = app.graph._nodes.find((n) => n.type === 'LoadImage')
    return { id: String(node.id), widgets: node.widgets.map((w) => ({ name: w.name, type: w.type, values: w.options?.values })) }
  })
  const [image, upload] = loadImage.widgets
  assert.equal(image.name, 'image')
  assert.equal(image.type, 'combo')
  assert.deepEqual(image.values, [], 'the fresh input folder is empty')
  assert.equal(upload?.type, 'button', `LoadImage has its upload button: ${JSON.stringify(loadImage.widgets)}`)

  // The upload button opens a file chooser; answer it with an example picture.
  const picture = join(ctx.repo, 'graphs', 'input', 'scene.png')
  const chooser = page.waitForEvent('filechooser')
  await page.evaluate((id) => {
    const node = app.graph.getNodeById(Number(id))
    node.widgets.find((w) => w.type === 'button').callback()
  }, loadImage.id)
  await (await chooser).setFiles(picture)
  // The template already names scene.png: wait for the upload to add it to the combo's list.
  await page.waitForFunction((id) => app.graph.getNodeById(Number(id)).widgets[0].options.values.includes('scene.png'), loadImage.id, { timeout: 30_000 })
  assert.equal(await page.evaluate((id) => app.graph.getNodeById(Number(id)).widgets[0].value, loadImage.id), 'scene.png')
  assert.deepEqual(readFileSync(join(ctx.server.inputDir, 'scene.png')), readFileSync(picture), 'the upload landed in the input folder')
  const listed = await (await fetch(`${ctx.server.url}/api/object_info/LoadImage`)).json()
  assert.deepEqual(listed.LoadImage.input.required.image[0], ['scene.png'], 'the next /object_info lists it')

  await page.evaluate((model) => {
    const node = (type) => app.graph._nodes.find((n) => n.type === type)
    const set = (n, name, value) => { n.widgets.find((w) => w.name === name).value = value }
    set(node('LoadOmniGen'), 'model', model)
    set(node('EncodeVAE'), 'max_input_image_size', 64)
    const sample = node('OmniGenSample')
    set(sample, 'steps', 3)
  }, ctx.tinyModel)
  const saveId = await page.evaluate(() => String(app.graph._nodes.find((n) => n.type === 'SaveImage').id))
  await page.getByRole('button', { name: 'Run', exact: true }).click()
  await page.waitForFunction((id) => app.graph.getNodeById(Number(id))?.imgs?.length > 0, saveId, { timeout: 180_000, polling: 100 })
  await ctx.screenshot(page, 'editor_upload_edit')
  await page.waitForTimeout(500)
  // Until it is uploaded, the template's scene.png is missing from the fresh input folder: the editor's
  // previews of it (requested then, some answered late) fail. Nothing else may.
  const missingPreview = (e) => /\/api\/view\?type=input&filename=scene\.png&subfolder=&rand=/.test(e.url ?? '')
  assert.equal(describe(ctx.consoleErrors(page).filter((e) => !missingPreview(e))), '', 'console errors in the editor')
}
