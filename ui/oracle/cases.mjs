// Crafted workflows: each starts from one of our example graphs, loaded by the editor itself, and changes
// it the way a user would (reroutes, primitive nodes, bypass, mute, notes, groups, subgraphs, seed
// controls). The functions run inside the page (`app` and `LiteGraph` are the editor's globals), so they
// may not use anything from this module.

/** @type {{name: string, base: string, edit: (base: object) => Promise<void>}[]} */
export const crafted = [
  {
    name: 'reroute',
    base: 'text_to_image',
    edit: async (base) => {
      await app.loadApiJson(base, 'reroute')
      const g = app.graph
      const r = LiteGraph.createNode('Reroute')
      g.add(r)
      g.getNodeById(4).connect(0, r, 0)
      r.connect(0, g.getNodeById(5), 0)
    }
  },
  {
    name: 'reroute_chain_to_two_targets',
    base: 'text_to_image',
    edit: async (base) => {
      await app.loadApiJson(base, 'reroute_chain_to_two_targets')
      const g = app.graph
      const a = LiteGraph.createNode('Reroute')
      const b = LiteGraph.createNode('Reroute')
      g.add(a)
      g.add(b)
      g.getNodeById(1).connect(1, a, 0)
      a.connect(0, b, 0)
      b.connect(0, g.getNodeById(4), g.getNodeById(4).findInputSlot('vae'))
      const preview = LiteGraph.createNode('PreviewImage')
      g.add(preview)
      g.getNodeById(4).connect(0, preview, 0)
    }
  },
  {
    name: 'primitive_node_steps',
    base: 'text_to_image',
    edit: async (base) => {
      await app.loadApiJson(base, 'primitive_node_steps')
      const g = app.graph
      const sampler = g.getNodeById(3)
      const p = LiteGraph.createNode('PrimitiveNode')
      g.add(p)
      p.connect(0, sampler, sampler.findInputSlot('steps'))
      p.widgets[0].value = 12
    }
  },
  {
    name: 'primitive_node_seed_to_two_samplers',
    base: 'text_to_image_then_edit',
    edit: async (base) => {
      await app.loadApiJson(base, 'primitive_node_seed_to_two_samplers')
      const g = app.graph
      const samplers = g.nodes.filter((n) => n.type === 'OmniGenSample')
      const p = LiteGraph.createNode('PrimitiveNode')
      g.add(p)
      for (const s of samplers) p.connect(0, s, s.findInputSlot('seed'))
      p.widgets[0].value = 987654321
    }
  },
  {
    name: 'converted_widget_from_node',
    base: 'text_to_image',
    edit: async (base) => {
      await app.loadApiJson(base, 'converted_widget_from_node')
      const g = app.graph
      const sampler = g.getNodeById(3)
      const width = LiteGraph.createNode('PrimitiveInt')
      g.add(width)
      width.widgets[0].value = 96
      width.connect(0, sampler, sampler.findInputSlot('width'))
      const text = LiteGraph.createNode('PrimitiveStringMultiline')
      g.add(text)
      text.widgets[0].value = 'a lighthouse at dusk'
      const prompt = g.getNodeById(2)
      text.connect(0, prompt, prompt.findInputSlot('instruction'))
    }
  },
  {
    name: 'seed_control_after_generate',
    base: 'text_to_image',
    edit: async (base) => {
      await app.loadApiJson(base, 'seed_control_after_generate')
      const sampler = app.graph.getNodeById(3)
      sampler.widgets.find((w) => w.name === 'seed').value = 12345678901
      sampler.widgets.find((w) => w.name === 'control_after_generate').value = 'increment'
      sampler.widgets.find((w) => w.name === 'steps').value = 7
    }
  },
  {
    name: 'bypass_matching_type',
    base: 'few_shot',
    edit: async (base) => {
      await app.loadApiJson(base, 'bypass_matching_type')
      const g = app.graph
      const first = g.getNodeById(6)
      const second = LiteGraph.createNode('FewShotExample')
      g.add(second)
      g.getNodeById(3).connect(0, second, second.findInputSlot('input_image'))
      g.getNodeById(5).connect(0, second, second.findInputSlot('output_image'))
      first.connect(0, second, second.findInputSlot('previous'))
      const prompt = g.getNodeById(9)
      second.connect(0, prompt, prompt.findInputSlot('examples'))
      second.mode = 4
    }
  },
  {
    name: 'bypass_without_matching_type',
    base: 'text_to_image',
    edit: async (base) => {
      await app.loadApiJson(base, 'bypass_without_matching_type')
      app.graph.getNodeById(4).mode = 4
    }
  },
  {
    name: 'mute_upstream_and_output',
    base: 'instruction_edit',
    edit: async (base) => {
      await app.loadApiJson(base, 'mute_upstream_and_output')
      const g = app.graph
      const decode = g.nodes.find((n) => n.type === 'DecodeVAE')
      decode.mode = 2
      const preview = LiteGraph.createNode('PreviewImage')
      g.add(preview)
      decode.connect(0, preview, 0)
      preview.mode = 2
    }
  },
  {
    name: 'notes_and_groups',
    base: 'text_to_image',
    edit: async (base) => {
      await app.loadApiJson(base, 'notes_and_groups')
      const g = app.graph
      const note = LiteGraph.createNode('Note')
      g.add(note)
      note.widgets[0].value = 'Lower the steps for a quick look.'
      const md = LiteGraph.createNode('MarkdownNote')
      g.add(md)
      md.widgets[0].value = '# Text to image'
      const group = new LiteGraph.LGraphGroup('Sampling')
      group.pos = [0, 0]
      group.size = [800, 600]
      g.add(group)
    }
  },
  {
    name: 'subgraph',
    base: 'text_to_image',
    edit: async (base) => {
      await app.loadApiJson(base, 'subgraph')
      const g = app.graph
      g.convertToSubgraph(new Set([g.getNodeById(2), g.getNodeById(3)]))
    }
  },
  {
    name: 'nested_subgraph',
    base: 'text_to_image',
    edit: async (base) => {
      await app.loadApiJson(base, 'nested_subgraph')
      const g = app.graph
      const { node } = g.convertToSubgraph(new Set([g.getNodeById(2), g.getNodeById(3)]))
      g.convertToSubgraph(new Set([node, g.getNodeById(4)]))
    }
  },
  {
    name: 'bypassed_subgraph',
    base: 'instruction_edit',
    edit: async (base) => {
      await app.loadApiJson(base, 'bypassed_subgraph')
      const g = app.graph
      const encode = g.nodes.find((n) => n.type === 'EncodeVAE')
      const { node } = g.convertToSubgraph(new Set([encode]))
      node.mode = 4
    }
  },
  {
    name: 'muted_widget_source_keeps_widget_value',
    base: 'text_to_image',
    edit: async (base) => {
      await app.loadApiJson(base, 'muted_widget_source_keeps_widget_value')
      const g = app.graph
      const sampler = g.getNodeById(3)
      const steps = LiteGraph.createNode('PrimitiveInt')
      g.add(steps)
      steps.widgets[0].value = 3
      steps.connect(0, sampler, sampler.findInputSlot('steps'))
      steps.mode = 2
    }
  },
  {
    name: 'subgraph_input_fed_from_outside',
    base: 'text_to_image',
    edit: async (base) => {
      await app.loadApiJson(base, 'subgraph_input_fed_from_outside')
      const g = app.graph
      const sampler = g.getNodeById(3)
      const width = LiteGraph.createNode('PrimitiveInt')
      g.add(width)
      width.widgets[0].value = 80
      width.connect(0, sampler, sampler.findInputSlot('width'))
      g.convertToSubgraph(new Set([sampler]))
    }
  },
  {
    name: 'subgraph_input_left_unconnected',
    base: 'text_to_image',
    edit: async (base) => {
      await app.loadApiJson(base, 'subgraph_input_left_unconnected')
      const g = app.graph
      const sampler = g.getNodeById(3)
      const width = LiteGraph.createNode('PrimitiveInt')
      g.add(width)
      width.widgets[0].value = 80
      width.connect(0, sampler, sampler.findInputSlot('width'))
      g.convertToSubgraph(new Set([sampler]))
      g.remove(width)
    }
  }
]
