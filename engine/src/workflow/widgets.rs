//! Which widgets the editor gives a node, in order, and which of their values reach the prompt.
//!
//! The frontend makes one widget per widget-type input (INT, FLOAT, STRING, BOOLEAN, COMBO without
//! `forceInput`), in input order (required, then optional), and inserts UI-only widgets whose values are
//! saved in `widgets_values` but never sent: `control_after_generate` after an INT that declares it (or is
//! named `seed`/`noise_seed`) and after a FLOAT that declares it, `control_after_generate` plus
//! `control_filter_list` after a COMBO that declares it, and an `upload` button, last, for the first
//! required combo with `image_upload`/`video_upload`/`animated_image_upload`.

use serde_json::{Map, Value as Json};

use crate::schema::{InputSpec, InputType, NodeSchema};

/// One widget of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Widget {
    /// The widget's name (the input name for value widgets).
    pub name: String,
    /// Whether its value goes into the prompt (`options.serialize !== false`).
    pub to_prompt: bool,
    /// Whether it belongs to an optional input (or is the control widget of one).
    pub optional: bool,
}

/// The control modes the frontend recognises (a `control_after_generate` string that is one of these is a
/// default mode, any other string renames the widget).
const CONTROL_MODES: [&str; 5] = [
    "fixed",
    "increment",
    "decrement",
    "randomize",
    "increment-wrap",
];

/// The widgets a node of this schema has, in the order their values are saved.
pub(crate) fn widgets_of(schema: &NodeSchema) -> Vec<Widget> {
    let mut widgets = Vec::new();
    let inputs = schema.required.iter().map(|i| (i, false));
    for (input, optional) in inputs.chain(schema.optional.iter().map(|i| (i, true))) {
        if !input.kind.is_widget() || input.options.force_input {
            continue;
        }
        widgets.push(Widget {
            name: input.name.clone(),
            to_prompt: true,
            optional,
        });
        let controls = match input.kind {
            InputType::Int => {
                let declared = input.options.extra.get("control_after_generate");
                let on = match declared {
                    None | Some(Json::Null) => input.name == "seed" || input.name == "noise_seed",
                    Some(v) => js_truthy(v),
                };
                usize::from(on)
            }
            InputType::Float => usize::from(control_declared(input)),
            InputType::Combo(_) | InputType::InputFile(_) => {
                2 * usize::from(control_declared(input))
            }
            _ => 0,
        };
        if controls >= 1 {
            widgets.push(Widget {
                name: control_name(input, "control_after_generate"),
                to_prompt: false,
                optional,
            });
        }
        if controls == 2 {
            widgets.push(Widget {
                name: control_name(input, "control_filter_list"),
                to_prompt: false,
                optional,
            });
        }
    }
    if schema.required.iter().any(is_media_upload_combo) {
        widgets.push(Widget {
            name: "upload".into(),
            to_prompt: false,
            optional: false,
        });
    }
    widgets
}

fn control_declared(input: &InputSpec) -> bool {
    input
        .options
        .extra
        .get("control_after_generate")
        .is_some_and(js_truthy)
}

fn is_media_upload_combo(input: &InputSpec) -> bool {
    let flag = |key: &str| input.options.extra.get(key) == Some(&Json::Bool(true));
    matches!(input.kind, InputType::Combo(_) | InputType::InputFile(_))
        && (flag("image_upload") || flag("video_upload") || flag("animated_image_upload"))
}

/// The control widget's name: a `control_after_generate` (or `control_filter_list`) string that is not a
/// mode renames it, `control_prefix` prefixes it.
fn control_name(input: &InputSpec, default: &str) -> String {
    let extra = &input.options.extra;
    if let Some(Json::String(s)) = extra.get(default) {
        let is_mode = default == "control_after_generate" && CONTROL_MODES.contains(&s.as_str());
        if !s.trim().is_empty() && !is_mode {
            return s.clone();
        }
    }
    match extra.get("control_prefix").and_then(Json::as_str) {
        Some(prefix) if !prefix.is_empty() => format!("{prefix} {default}"),
        _ => default.to_string(),
    }
}

/// JavaScript truthiness of a JSON value.
fn js_truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Json::String(s) => !s.is_empty(),
        Json::Array(_) | Json::Object(_) => true,
    }
}

/// Where a node's saved values come from.
pub(crate) struct SavedValues<'a> {
    pub positional: Option<&'a [Json]>,
    pub named: Option<&'a Map<String, Json>>,
}

/// Matches saved values to widgets: by name when `widgets_values_named` has the widget, otherwise by
/// position, which must then line up exactly (a list of another length cannot say which value is whose)
/// — except that a list may stop before trailing optional widgets, as one saved before those inputs
/// existed does: the frontend leaves them at their defaults, and so they are left out of the prompt.
/// Returns the value of every widget that goes into the prompt, in widget order.
pub(crate) fn match_values(
    widgets: &[Widget],
    saved: &SavedValues<'_>,
) -> Result<Vec<(String, Json)>, String> {
    let positional_fits = saved.positional.is_some_and(|v| {
        v.len() == widgets.len()
            || (v.len() < widgets.len() && widgets[v.len()..].iter().all(|w| w.optional))
    });
    let mut out = Vec::new();
    for (i, widget) in widgets.iter().enumerate() {
        if !widget.to_prompt {
            continue;
        }
        if let Some(v) = saved.named.and_then(|m| m.get(&widget.name)) {
            out.push((widget.name.clone(), v.clone()));
            continue;
        }
        match saved.positional {
            Some(values) if positional_fits => {
                if let Some(v) = values.get(i) {
                    out.push((widget.name.clone(), v.clone()));
                }
            }
            _ => return Err(mismatch(widgets, saved, &widget.name)),
        }
    }
    Ok(out)
}

fn mismatch(widgets: &[Widget], saved: &SavedValues<'_>, missing: &str) -> String {
    let names: Vec<&str> = widgets.iter().map(|w| w.name.as_str()).collect();
    let count = saved.positional.map_or(0, <[Json]>::len);
    format!(
        "widgets_values has {count} value(s) but the catalogue gives this node {} widget(s) [{}], so they \
         cannot be matched one for one{} (first without a value: '{missing}'); re-save the workflow with \
         the current editor, or check that the node's plugin version matches",
        widgets.len(),
        names.join(", "),
        if saved.named.is_some() {
            " and widgets_values_named lacks some"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(schema: &NodeSchema) -> Vec<(String, bool)> {
        widgets_of(schema)
            .into_iter()
            .map(|w| (w.name, w.to_prompt))
            .collect()
    }

    #[test]
    fn seed_gets_a_control_widget_even_undeclared_and_sockets_get_none() {
        let s = NodeSchema::new("K")
            .required(InputSpec::socket("model", "MODEL"))
            .required(InputSpec::int("seed"))
            .required(InputSpec::int("steps"))
            .optional(InputSpec::float("cfg").option("control_after_generate", true))
            .optional(InputSpec::int("forced").force_input());
        assert_eq!(
            names(&s),
            [
                ("seed".into(), true),
                ("control_after_generate".into(), false),
                ("steps".into(), true),
                ("cfg".into(), true),
                ("control_after_generate".into(), false),
            ]
        );
    }

    #[test]
    fn declared_false_removes_the_seed_control_and_combos_get_two() {
        let s = NodeSchema::new("K")
            .required(InputSpec::int("seed").option("control_after_generate", false))
            .required(InputSpec::combo("pick", ["a", "b"]).option("control_after_generate", true));
        assert_eq!(
            names(&s),
            [
                ("seed".into(), true),
                ("pick".into(), true),
                ("control_after_generate".into(), false),
                ("control_filter_list".into(), false),
            ]
        );
    }

    #[test]
    fn upload_button_comes_last_and_only_for_combos() {
        let combo = NodeSchema::new("L")
            .required(InputSpec::combo("image", ["a.png"]).option("image_upload", true))
            .optional(InputSpec::boolean("flag"));
        assert_eq!(
            names(&combo),
            [
                ("image".into(), true),
                ("flag".into(), true),
                ("upload".into(), false)
            ]
        );
        let text =
            NodeSchema::new("L").required(InputSpec::string("image").option("image_upload", true));
        assert_eq!(names(&text), [("image".into(), true)]);
    }

    #[test]
    fn values_match_by_name_first_then_by_exact_position() {
        let widgets = widgets_of(
            &NodeSchema::new("K")
                .required(InputSpec::int("seed"))
                .required(InputSpec::int("steps")),
        );
        let positional = [json!(5), json!("randomize"), json!(20)];
        let got = match_values(
            &widgets,
            &SavedValues {
                positional: Some(&positional),
                named: None,
            },
        )
        .expect("fits");
        assert_eq!(
            got,
            [("seed".into(), json!(5)), ("steps".into(), json!(20))]
        );

        let named = json!({"steps": 7, "seed": 1})
            .as_object()
            .cloned()
            .expect("object");
        let got = match_values(
            &widgets,
            &SavedValues {
                positional: Some(&positional[..1]),
                named: Some(&named),
            },
        )
        .expect("named");
        assert_eq!(got, [("seed".into(), json!(1)), ("steps".into(), json!(7))]);

        let err = match_values(
            &widgets,
            &SavedValues {
                positional: Some(&positional[..2]),
                named: None,
            },
        )
        .expect_err("short list");
        assert!(
            err.contains("'seed'") && err.contains("2 value(s)"),
            "{err}"
        );
    }

    #[test]
    fn a_list_saved_before_new_optional_widgets_keeps_their_defaults() {
        let widgets = widgets_of(
            &NodeSchema::new("K")
                .required(InputSpec::int("steps"))
                .optional(InputSpec::float("scale"))
                .optional(InputSpec::boolean("offload")),
        );
        let saved = |values: &[Json]| -> Result<Vec<(String, Json)>, String> {
            match_values(
                &widgets,
                &SavedValues {
                    positional: Some(values),
                    named: None,
                },
            )
        };
        // Saved before `offload` existed: it is left to its default.
        assert_eq!(
            saved(&[json!(20), json!(1.5)]).expect("prefix"),
            [("steps".into(), json!(20)), ("scale".into(), json!(1.5))]
        );
        assert_eq!(
            saved(&[json!(20)]).expect("prefix"),
            [("steps".into(), json!(20))]
        );
        // A required widget without a value is still an error, and so is a list that is too long.
        assert!(saved(&[]).is_err());
        assert!(saved(&[json!(20), json!(1.5), json!(true), json!(0)]).is_err());
    }
}
