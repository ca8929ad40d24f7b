//! The example plugins do what they say, through the real host path.

mod common;

use omnigen_plugins::{
    CallControl, LoadedPlugin, PixelFormat, PixelImage, PixelMask, PluginValue, PortKind,
    RunFailure,
};
use serde_json::{json, Map, Value as Json};

fn params(v: Json) -> Map<String, Json> {
    v.as_object().cloned().unwrap_or_default()
}

fn run(
    plugin: &LoadedPlugin,
    node: &str,
    inputs: Vec<(&str, PluginValue)>,
    p: Json,
) -> Vec<(String, PluginValue)> {
    let inputs = inputs
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    plugin
        .run(node, inputs, &params(p), &CallControl::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .values
}

fn image_out(values: &[(String, PluginValue)], name: &str) -> PixelImage {
    match values.iter().find(|(n, _)| n == name) {
        Some((_, PluginValue::Image(i))) => i.clone(),
        other => panic!("no image output {name}: {other:?}"),
    }
}

fn rgba(width: u32, height: u32, f: impl Fn(u32, u32) -> [u8; 4]) -> PixelImage {
    let mut data = Vec::with_capacity((width * height * 4) as usize);
    for y in 0..height {
        for x in 0..width {
            data.extend_from_slice(&f(x, y));
        }
    }
    PixelImage {
        width,
        height,
        format: PixelFormat::Rgba8,
        data,
    }
}

#[test]
fn color_plugin_describes_typed_nodes() {
    let color = common::load("color", "omnigen_plugin_color");
    let ids: Vec<_> = color.info().nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["grayscale", "invert", "luma_mask"]);
    let mask = color.node("luma_mask").unwrap();
    assert_eq!(mask.outputs[0].kind, PortKind::Mask);
    assert_eq!(
        mask.params
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["threshold", "invert"]
    );
    assert!(mask.deterministic);
}

#[test]
fn invert_and_grayscale() {
    let color = common::load("color", "omnigen_plugin_color");
    let input = rgba(2, 1, |x, _| {
        if x == 0 {
            [10, 20, 30, 40]
        } else {
            [255, 0, 128, 255]
        }
    });
    let out = image_out(
        &run(
            &color,
            "invert",
            vec![("image", PluginValue::Image(input.clone()))],
            json!({}),
        ),
        "image",
    );
    assert_eq!(out.data, vec![245, 235, 225, 40, 0, 255, 127, 255]);

    let gray = image_out(
        &run(
            &color,
            "grayscale",
            vec![("image", PluginValue::Image(input))],
            json!({}),
        ),
        "image",
    );
    assert_eq!(gray.format, PixelFormat::Gray8);
    // BT.601 luma: (77 R + 150 G + 29 B + 128) >> 8.
    assert_eq!(
        gray.data,
        vec![
            ((77 * 10 + 150 * 20 + 29 * 30 + 128) >> 8) as u8,
            ((77 * 255 + 29 * 128 + 128) >> 8) as u8
        ]
    );
}

#[test]
fn luma_mask_thresholds_with_params_and_defaults() {
    let color = common::load("color", "omnigen_plugin_color");
    let input = rgba(3, 1, |x, _| [(x * 100) as u8; 4]);
    let mask = |p: Json| match &run(
        &color,
        "luma_mask",
        vec![("image", PluginValue::Image(input.clone()))],
        p,
    )[0]
    .1
    {
        PluginValue::Mask(PixelMask { data, .. }) => data.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(mask(json!({})), vec![0, 0, 255]); // default threshold 128
    assert_eq!(mask(json!({"threshold": 50})), vec![0, 255, 255]);
    assert_eq!(
        mask(json!({"threshold": 50, "invert": true})),
        vec![255, 0, 0]
    );
    let err = color
        .run(
            "luma_mask",
            vec![("image".into(), PluginValue::Image(input.clone()))],
            &params(json!({"threshold": 300})),
            &CallControl::default(),
        )
        .unwrap_err();
    assert!(matches!(err.failure, RunFailure::InvalidParams(_)));
    assert!(
        err.to_string()
            .contains("parameter `threshold`: 300 is outside 0..=255"),
        "{err}"
    );
}

#[test]
fn geometry_resize_crop_pad() {
    let geometry = common::load("geometry", "omnigen_plugin_geometry");
    let input = rgba(4, 2, |x, y| [(x * 10 + y) as u8, 0, 0, 255]);

    let resized = image_out(
        &run(
            &geometry,
            "resize",
            vec![("image", PluginValue::Image(input.clone()))],
            json!({"width": 2, "height": 1, "method": "nearest"}),
        ),
        "image",
    );
    assert_eq!(
        (resized.width, resized.height, resized.data.len()),
        (2, 1, 8)
    );

    let cropped = image_out(
        &run(
            &geometry,
            "crop",
            vec![("image", PluginValue::Image(input.clone()))],
            json!({"x": 1, "y": 1, "width": 2, "height": 5}),
        ),
        "image",
    );
    assert_eq!((cropped.width, cropped.height), (2, 1));
    assert_eq!(cropped.data, vec![11, 0, 0, 255, 21, 0, 0, 255]);

    let padded = run(
        &geometry,
        "pad",
        vec![("image", PluginValue::Image(input))],
        json!({"left": 1, "top": 0, "right": 0, "bottom": 1, "value": 7}),
    );
    let image = image_out(&padded, "image");
    assert_eq!((image.width, image.height), (5, 3));
    assert_eq!(&image.data[..4], &[7, 7, 7, 255]);
    assert_eq!(&image.data[4..8], &[0, 0, 0, 255]);
    match &padded[1].1 {
        PluginValue::Mask(m) => {
            assert_eq!((m.width, m.height), (5, 3));
            assert_eq!(&m.data[..5], &[255, 0, 0, 0, 0]);
            assert!(m.data[10..].iter().all(|&v| v == 255));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn canny_finds_the_outline_of_a_square() {
    let edges = common::load("edges", "omnigen_plugin_edges");
    let input = rgba(32, 32, |x, y| {
        if (8..24).contains(&x) && (8..24).contains(&y) {
            [255; 4]
        } else {
            [0, 0, 0, 255]
        }
    });
    let out = image_out(
        &run(
            &edges,
            "canny",
            vec![("image", PluginValue::Image(input.clone()))],
            json!({}),
        ),
        "edges",
    );
    assert_eq!(
        (out.width, out.height, out.format),
        (32, 32, PixelFormat::Gray8)
    );
    let at = |x: usize, y: usize| out.data[y * 32 + x];
    assert!(out.data.iter().all(|&v| v == 0 || v == 255));
    assert_eq!(at(2, 2), 0, "flat background has no edges");
    assert_eq!(at(16, 16), 0, "flat inside has no edges");
    // Every row crossing the square has an edge near its left border.
    for y in 10..22 {
        assert!(
            (6..10).any(|x| at(x, y) == 255),
            "row {y} has no edge near x=8"
        );
    }

    let sobel = image_out(
        &run(
            &edges,
            "sobel",
            vec![("image", PluginValue::Image(input))],
            json!({}),
        ),
        "edges",
    );
    assert_eq!(sobel.data[16 * 32 + 2], 0);
    assert!(sobel.data[16 * 32 + 8] > 100);
}

#[test]
fn prompt_template_fills_placeholders() {
    let prompt = common::load("prompt", "omnigen_plugin_prompt");
    let out = run(
        &prompt,
        "template",
        vec![("a", PluginValue::Text("a red car".into()))],
        json!({"template": "Following the edge map of {image_1}, generate {a}{b}. {{literal}}"}),
    );
    assert_eq!(
        out,
        vec![(
            "text".to_string(),
            PluginValue::Text(
                "Following the edge map of <img><|image_1|></img>, generate a red car. {literal}"
                    .into()
            )
        )]
    );
    let err = prompt
        .run(
            "template",
            vec![],
            &params(json!({"template": "{nope}"})),
            &CallControl::default(),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown placeholder `{nope}`"),
        "{err}"
    );
}

#[test]
fn every_value_kind_round_trips() {
    let probe = common::load("probe", "omnigen_plugin_probe");
    let inputs = vec![
        (
            "image",
            PluginValue::Image(rgba(3, 2, |x, y| [x as u8, y as u8, 9, 255])),
        ),
        (
            "mask",
            PluginValue::Mask(PixelMask {
                width: 2,
                height: 2,
                data: vec![0, 64, 128, 255],
            }),
        ),
        ("text", PluginValue::Text("héllo ✓".into())),
        ("integer", PluginValue::Integer(i64::MIN)),
        ("number", PluginValue::Number(-1.25e300)),
        ("boolean", PluginValue::Boolean(true)),
        (
            "json",
            PluginValue::Json(r#"{"a":[1,2,{"b":null}]}"#.into()),
        ),
    ];
    let out = run(&probe, "echo", inputs.clone(), json!({}));
    let expected: Vec<(String, PluginValue)> = inputs
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    assert_eq!(out, expected);

    // Logs and params reach the host; defaults fill missing params.
    let result = probe
        .run(
            "echo",
            vec![],
            &params(json!({"label": "hi"})),
            &CallControl::default(),
        )
        .unwrap();
    assert_eq!(result.log.len(), 1);
    assert_eq!(result.log[0].message, "echo label=hi");
    assert_eq!(result.values[2].1, PluginValue::Text("hi".into()));
    assert_eq!(result.values[3].1, PluginValue::Integer(1));
}

#[test]
fn inputs_are_checked_before_the_call() {
    let color = common::load("color", "omnigen_plugin_color");
    let err = color
        .run("invert", vec![], &Map::new(), &CallControl::default())
        .unwrap_err();
    assert_eq!(
        err.failure,
        RunFailure::InvalidInput("required input `image` (image) is not connected".into())
    );
    let bad = PixelImage {
        width: 4,
        height: 4,
        format: PixelFormat::Rgb8,
        data: vec![0; 5],
    };
    let err = color
        .run(
            "invert",
            vec![("image".into(), PluginValue::Image(bad))],
            &Map::new(),
            &CallControl::default(),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("needs 48 bytes, but has 5"),
        "{err}"
    );
    let err = color
        .run("nope", vec![], &Map::new(), &CallControl::default())
        .unwrap_err();
    assert!(err.to_string().contains("has no node `nope`"), "{err}");
}
