// omnigen's editor extension, served by `omnigen serve` at /extensions/omnigen/default_workflow.js and
// listed by /api/extensions. It makes our text-to-image template the editor's default graph: whenever
// the editor loads "no graph" (startup with nothing to restore, the legacy menu's "Load Default"), it
// loads that template instead of ComfyUI's default graph, which needs nodes omnigen does not have.
import { api } from '../../scripts/api.js'
import { app } from '../../scripts/app.js'

const DEFAULT_TEMPLATE = 'text_to_image'

app.registerExtension({
  name: 'omnigen.DefaultWorkflow',
  async setup() {
    const response = await api.fetchApi(`/workflow_templates/omnigen/${DEFAULT_TEMPLATE}.json`)
    if (!response.ok) return
    const workflow = await response.json()
    const loadGraphData = app.loadGraphData.bind(app)
    app.loadGraphData = (graphData, ...rest) => {
      const none = !graphData || typeof graphData !== 'object' || Array.isArray(graphData)
      return loadGraphData(none ? structuredClone(workflow) : graphData, ...rest)
    }
  }
})
