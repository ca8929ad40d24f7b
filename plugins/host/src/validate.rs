//! Checks of the values crossing the boundary: inputs before a call, outputs after it.
//!
//! Outputs come from untrusted code: every name, kind and size is checked against the node's
//! declaration, with overflow-safe arithmetic, before anything else sees them.

use std::collections::HashSet;

use crate::descriptor::{NodeDescriptor, PortSpec};
use crate::limits::Limits;
use crate::text;
use crate::values::PluginValue;

/// Checks that an image or mask's byte count matches its dimensions, without overflow.
pub fn check_pixels(
    what: &str,
    width: u32,
    height: u32,
    channels: u64,
    len: usize,
    max_pixels: u64,
) -> Result<(), String> {
    if width == 0 || height == 0 {
        return Err(format!(
            "{what} is {width}x{height}; both sides must be at least 1"
        ));
    }
    let pixels = u64::from(width) * u64::from(height); // cannot overflow: both < 2^32
    if pixels > max_pixels {
        return Err(format!(
            "{what} is {width}x{height} = {pixels} pixels, more than the limit of {max_pixels}"
        ));
    }
    let expected = pixels
        .checked_mul(channels)
        .ok_or_else(|| format!("{what} size overflows"))?;
    if expected != len as u64 {
        return Err(format!("{what} is {width}x{height} with {channels} channel(s), so it needs {expected} bytes, but has {len}"));
    }
    Ok(())
}

fn check_value(
    port: &PortSpec,
    value: &PluginValue,
    limits: &Limits,
    side: &str,
) -> Result<(), String> {
    let what = format!("{side} `{}`", port.name);
    if value.kind() != port.kind {
        return Err(format!(
            "{what} should be {}, got {}",
            port.kind.wit_name(),
            value.kind().wit_name()
        ));
    }
    match value {
        PluginValue::Image(i) => check_pixels(
            &what,
            i.width,
            i.height,
            i.format.channels(),
            i.data.len(),
            limits.max_output_pixels,
        ),
        PluginValue::Mask(m) => check_pixels(
            &what,
            m.width,
            m.height,
            1,
            m.data.len(),
            limits.max_output_pixels,
        ),
        PluginValue::Text(s) if s.len() > limits.max_text_bytes => Err(format!(
            "{what} is {} bytes of text (at most {})",
            s.len(),
            limits.max_text_bytes
        )),
        PluginValue::Json(s) => {
            if s.len() > limits.max_text_bytes {
                return Err(format!(
                    "{what} is {} bytes of JSON (at most {})",
                    s.len(),
                    limits.max_text_bytes
                ));
            }
            serde_json::from_str::<serde::de::IgnoredAny>(s)
                .map(|_| ())
                .map_err(|e| format!("{what} is not valid JSON: {e}"))
        }
        PluginValue::Number(n) if !n.is_finite() => {
            Err(format!("{what} is {n}, not a finite number"))
        }
        _ => Ok(()),
    }
}

/// Checks the inputs for a call: required inputs present, no unknown names, kinds and sizes right.
pub fn check_inputs(
    node: &NodeDescriptor,
    inputs: &[(String, PluginValue)],
    limits: &Limits,
) -> Result<(), String> {
    let mut seen = HashSet::new();
    for (name, value) in inputs {
        let port = node
            .inputs
            .iter()
            .find(|p| &p.name == name)
            .ok_or_else(|| format!("node `{}` has no input `{name}`", node.id))?;
        if !seen.insert(name.as_str()) {
            return Err(format!("input `{name}` given twice"));
        }
        // Images in are held to the same size limit as images out (one limit, one copy budget);
        // text in comes from the graph, not from the plugin.
        let text_unlimited = Limits {
            max_text_bytes: usize::MAX,
            ..limits.clone()
        };
        check_value(port, value, &text_unlimited, "input")?;
    }
    if let Some(missing) = node
        .inputs
        .iter()
        .find(|p| !p.optional && !seen.contains(p.name.as_str()))
    {
        return Err(format!(
            "required input `{}` ({}) is not connected",
            missing.name,
            missing.kind.wit_name()
        ));
    }
    Ok(())
}

/// Checks a call's outputs and puts them in declaration order: exactly one value per declared
/// output, of the declared kind, with consistent sizes within the limits.
pub fn check_outputs(
    node: &NodeDescriptor,
    outputs: Vec<(String, PluginValue)>,
    limits: &Limits,
) -> Result<Vec<(String, PluginValue)>, String> {
    let mut slots: Vec<Option<PluginValue>> = vec![None; node.outputs.len()];
    for (name, value) in outputs {
        let index = node
            .outputs
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| {
                format!(
                    "output `{}` is not declared",
                    text::one_line(&name, text::MAX_NAME_BYTES)
                )
            })?;
        if slots[index].is_some() {
            // A declared name: checked at load, safe to print.
            return Err(format!("output `{name}` returned twice"));
        }
        check_value(&node.outputs[index], &value, limits, "output")?;
        slots[index] = Some(value);
    }
    node.outputs
        .iter()
        .zip(slots)
        .map(|(port, slot)| match slot {
            Some(v) => Ok((port.name.clone(), v)),
            None => Err(format!("output `{}` is missing", port.name)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::{PixelFormat, PixelImage, PortKind};

    fn node() -> NodeDescriptor {
        let port = |name: &str, kind, optional| PortSpec {
            name: name.into(),
            kind,
            description: String::new(),
            optional,
        };
        NodeDescriptor {
            id: "n".into(),
            display_name: "N".into(),
            description: String::new(),
            category: String::new(),
            inputs: vec![
                port("image", PortKind::Image, false),
                port("note", PortKind::Text, true),
            ],
            outputs: vec![
                port("image", PortKind::Image, false),
                port("meta", PortKind::Json, false),
            ],
            params: vec![],
            deterministic: true,
        }
    }

    fn image(w: u32, h: u32, len: usize) -> PluginValue {
        PluginValue::Image(PixelImage {
            width: w,
            height: h,
            format: PixelFormat::Rgba8,
            data: vec![0; len],
        })
    }

    #[test]
    fn pixel_counts_are_overflow_safe() {
        assert!(check_pixels("x", 2, 3, 4, 24, u64::MAX).is_ok());
        let e = check_pixels("x", 1024, 1024, 4, 10, u64::MAX).unwrap_err();
        assert!(e.contains("needs 4194304 bytes, but has 10"), "{e}");
        let e = check_pixels("x", u32::MAX, u32::MAX, 4, 16, u64::MAX).unwrap_err();
        assert!(
            e.contains("needs 73786976226118811652") || e.contains("overflow"),
            "{e}"
        );
        assert!(check_pixels("x", 0, 5, 1, 0, u64::MAX).is_err());
        assert!(check_pixels("x", 100, 100, 1, 10_000, 9_999)
            .unwrap_err()
            .contains("limit"));
    }

    #[test]
    fn outputs_are_ordered_and_checked() {
        let limits = Limits::default();
        let ok = check_outputs(
            &node(),
            vec![
                ("meta".into(), PluginValue::Json("{}".into())),
                ("image".into(), image(1, 1, 4)),
            ],
            &limits,
        )
        .unwrap();
        assert_eq!(ok[0].0, "image");
        assert_eq!(ok[1].0, "meta");

        let cases = [
            (
                vec![("image".into(), image(1, 1, 4))],
                "output `meta` is missing",
            ),
            (
                vec![
                    ("image".into(), PluginValue::Text("x".into())),
                    ("meta".into(), PluginValue::Json("{}".into())),
                ],
                "should be image, got text",
            ),
            (
                vec![
                    ("image".into(), image(1, 1, 4)),
                    ("image".into(), image(1, 1, 4)),
                ],
                "returned twice",
            ),
            (
                vec![("other".into(), image(1, 1, 4))],
                "output `other` is not declared",
            ),
            (
                vec![
                    ("image".into(), image(1, 1, 4)),
                    ("meta".into(), PluginValue::Json("{".into())),
                ],
                "not valid JSON",
            ),
            (
                vec![
                    ("image".into(), image(2, 2, 4)),
                    ("meta".into(), PluginValue::Json("{}".into())),
                ],
                "needs 16 bytes",
            ),
        ];
        for (outputs, expected) in cases {
            let err = check_outputs(&node(), outputs, &limits).unwrap_err();
            assert!(err.contains(expected), "{err} should contain {expected}");
        }
    }

    #[test]
    fn inputs_need_required_ports_and_right_kinds() {
        let limits = Limits::default();
        assert!(check_inputs(&node(), &[("image".into(), image(1, 1, 4))], &limits).is_ok());
        assert!(check_inputs(&node(), &[], &limits)
            .unwrap_err()
            .contains("required input `image`"));
        assert!(check_inputs(
            &node(),
            &[("image".into(), PluginValue::Integer(1))],
            &limits
        )
        .unwrap_err()
        .contains("should be image"));
        assert!(check_inputs(
            &node(),
            &[
                ("image".into(), image(1, 1, 4)),
                ("x".into(), PluginValue::Integer(1))
            ],
            &limits
        )
        .unwrap_err()
        .contains("no input `x`"));
    }
}
