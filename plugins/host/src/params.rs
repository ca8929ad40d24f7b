//! Node parameters: the subset of JSON Schema a plugin declares, turned into widget inputs, and
//! the validation of widget values against it before a call.

use serde_json::{Map, Value as Json};

/// The type, default and bounds of one parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamKind {
    /// An integer in `min..=max`.
    Int {
        /// Default value.
        default: i64,
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// A finite number in `min..=max`.
    Float {
        /// Default value.
        default: f64,
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
    /// A boolean.
    Bool {
        /// Default value.
        default: bool,
    },
    /// Free text.
    Text {
        /// Default value.
        default: String,
        /// Whether the UI should show a text area.
        multiline: bool,
    },
    /// One of a fixed list of strings.
    Choice {
        /// The allowed values.
        choices: Vec<String>,
        /// Default value (one of `choices`).
        default: String,
    },
}

/// One declared parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Parameter name (a widget input of the node).
    pub name: String,
    /// Tooltip text.
    pub description: String,
    /// Type, default and bounds.
    pub kind: ParamKind,
}

/// Largest params schema a plugin may declare, in bytes.
const MAX_SCHEMA_BYTES: usize = 64 * 1024;

/// Parses a node's `params-schema`: `{"type":"object","properties":{…}}` with flat properties of
/// type integer, number, boolean or string (optionally `enum`). Every property needs a default.
pub fn parse_schema(schema: &str) -> Result<Vec<ParamSpec>, String> {
    if schema.trim().is_empty() {
        return Ok(Vec::new());
    }
    if schema.len() > MAX_SCHEMA_BYTES {
        return Err(format!(
            "params schema is {} bytes (at most {MAX_SCHEMA_BYTES})",
            schema.len()
        ));
    }
    let root: Json =
        serde_json::from_str(schema).map_err(|e| format!("params schema is not JSON: {e}"))?;
    let root = root
        .as_object()
        .ok_or("params schema must be a JSON object")?;
    if root.get("type").and_then(Json::as_str) != Some("object") {
        return Err("params schema must have \"type\": \"object\"".into());
    }
    let Some(properties) = root.get("properties") else {
        return Ok(Vec::new());
    };
    let properties = properties
        .as_object()
        .ok_or("params schema `properties` must be an object")?;
    properties
        .iter()
        .map(|(name, prop)| parse_property(name, prop))
        .collect()
}

fn parse_property(name: &str, prop: &Json) -> Result<ParamSpec, String> {
    let err = |what: &str| format!("parameter `{name}`: {what}");
    let prop = prop
        .as_object()
        .ok_or_else(|| err("schema must be an object"))?;
    let ty = prop
        .get("type")
        .and_then(Json::as_str)
        .ok_or_else(|| err("needs a \"type\""))?;
    let default = prop
        .get("default")
        .ok_or_else(|| err("needs a \"default\""))?;
    let description = prop
        .get("description")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string();
    let kind = match ty {
        "integer" => {
            let default = default
                .as_i64()
                .ok_or_else(|| err("default must be an integer"))?;
            let min = bound_i64(prop, "minimum", i64::MIN).map_err(|e| err(&e))?;
            let max = bound_i64(prop, "maximum", i64::MAX).map_err(|e| err(&e))?;
            ParamKind::Int { default, min, max }
        }
        "number" => {
            let default = default
                .as_f64()
                .ok_or_else(|| err("default must be a number"))?;
            let min = bound_f64(prop, "minimum", f64::MIN).map_err(|e| err(&e))?;
            let max = bound_f64(prop, "maximum", f64::MAX).map_err(|e| err(&e))?;
            ParamKind::Float { default, min, max }
        }
        "boolean" => ParamKind::Bool {
            default: default
                .as_bool()
                .ok_or_else(|| err("default must be a boolean"))?,
        },
        "string" => {
            let default = default
                .as_str()
                .ok_or_else(|| err("default must be a string"))?
                .to_string();
            match prop.get("enum") {
                Some(list) => {
                    let choices = list
                        .as_array()
                        .filter(|l| !l.is_empty())
                        .ok_or_else(|| err("enum must be a non-empty list"))?
                        .iter()
                        .map(|c| c.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| err("enum must list strings"))?;
                    ParamKind::Choice { choices, default }
                }
                None => ParamKind::Text {
                    default,
                    multiline: prop
                        .get("multiline")
                        .and_then(Json::as_bool)
                        .unwrap_or(false),
                },
            }
        }
        other => {
            return Err(err(&format!(
                "type {other:?} is not supported (integer, number, boolean, string)"
            )))
        }
    };
    let spec = ParamSpec {
        name: name.to_string(),
        description,
        kind,
    };
    // The default must itself be acceptable.
    check_value(&spec, &default_json(&spec.kind)).map_err(|e| err(&format!("default: {e}")))?;
    Ok(spec)
}

fn bound_i64(prop: &Map<String, Json>, key: &str, none: i64) -> Result<i64, String> {
    match prop.get(key) {
        None => Ok(none),
        Some(v) => v
            .as_i64()
            .ok_or_else(|| format!("{key} must be an integer")),
    }
}

fn bound_f64(prop: &Map<String, Json>, key: &str, none: f64) -> Result<f64, String> {
    match prop.get(key) {
        None => Ok(none),
        Some(v) => v
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(|| format!("{key} must be a number")),
    }
}

/// The default of a parameter as JSON.
pub fn default_json(kind: &ParamKind) -> Json {
    match kind {
        ParamKind::Int { default, .. } => Json::from(*default),
        ParamKind::Float { default, .. } => serde_json::Number::from_f64(*default)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        ParamKind::Bool { default } => Json::Bool(*default),
        ParamKind::Text { default, .. } | ParamKind::Choice { default, .. } => {
            Json::String(default.clone())
        }
    }
}

/// Checks one value against its parameter and returns it normalised (floats from integers).
pub fn check_value(spec: &ParamSpec, value: &Json) -> Result<Json, String> {
    match &spec.kind {
        ParamKind::Int { min, max, .. } => {
            let v = value
                .as_i64()
                .ok_or_else(|| format!("expected an integer, got {value}"))?;
            if v < *min || v > *max {
                return Err(format!("{v} is outside {min}..={max}"));
            }
            Ok(Json::from(v))
        }
        ParamKind::Float { min, max, .. } => {
            let v = value
                .as_f64()
                .filter(|f| f.is_finite())
                .ok_or_else(|| format!("expected a number, got {value}"))?;
            if v < *min || v > *max {
                return Err(format!("{v} is outside {min}..={max}"));
            }
            serde_json::Number::from_f64(v)
                .map(Json::Number)
                .ok_or_else(|| "not a finite number".to_string())
        }
        ParamKind::Bool { .. } => value
            .as_bool()
            .map(Json::Bool)
            .ok_or_else(|| format!("expected a boolean, got {value}")),
        ParamKind::Text { .. } => value
            .as_str()
            .map(|s| Json::String(s.to_string()))
            .ok_or_else(|| format!("expected a string, got {value}")),
        ParamKind::Choice { choices, .. } => {
            let s = value
                .as_str()
                .ok_or_else(|| format!("expected a string, got {value}"))?;
            if choices.iter().any(|c| c == s) {
                Ok(Json::String(s.to_string()))
            } else {
                Err(format!("{s:?} is not one of {choices:?}"))
            }
        }
    }
}

/// Builds the params object for a call: every declared parameter, from `given` or its default.
/// Errors name the parameter.
pub fn build_params(specs: &[ParamSpec], given: &Map<String, Json>) -> Result<String, String> {
    let mut out = Map::new();
    for spec in specs {
        let value = match given.get(&spec.name) {
            Some(v) => {
                check_value(spec, v).map_err(|e| format!("parameter `{}`: {e}", spec.name))?
            }
            None => default_json(&spec.kind),
        };
        out.insert(spec.name.clone(), value);
    }
    Ok(Json::Object(out).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: &str = r#"{"type":"object","properties":{
        "size":{"type":"integer","default":3,"minimum":1,"maximum":9},
        "sigma":{"type":"number","default":1.5,"minimum":0,"maximum":10},
        "flip":{"type":"boolean","default":false},
        "mode":{"type":"string","enum":["a","b"],"default":"a"},
        "note":{"type":"string","default":"hi","multiline":true}}}"#;

    #[test]
    fn parses_every_supported_kind() {
        let specs = parse_schema(SCHEMA).unwrap();
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["size", "sigma", "flip", "mode", "note"]);
        assert_eq!(
            specs[0].kind,
            ParamKind::Int {
                default: 3,
                min: 1,
                max: 9
            }
        );
        assert_eq!(
            specs[3].kind,
            ParamKind::Choice {
                choices: vec!["a".into(), "b".into()],
                default: "a".into()
            }
        );
        assert_eq!(
            specs[4].kind,
            ParamKind::Text {
                default: "hi".into(),
                multiline: true
            }
        );
    }

    #[test]
    fn fills_defaults_and_checks_ranges() {
        let specs = parse_schema(SCHEMA).unwrap();
        let given = json!({"size": 5, "mode": "b", "unknown": 1});
        let params: Json =
            serde_json::from_str(&build_params(&specs, given.as_object().unwrap()).unwrap())
                .unwrap();
        assert_eq!(
            params,
            json!({"size":5,"sigma":1.5,"flip":false,"mode":"b","note":"hi"})
        );

        for (bad, what) in [
            (json!({"size": 10}), "parameter `size`: 10 is outside 1..=9"),
            (
                json!({"size": 2.5}),
                "parameter `size`: expected an integer",
            ),
            (
                json!({"mode": "c"}),
                "parameter `mode`: \"c\" is not one of",
            ),
            (
                json!({"flip": "yes"}),
                "parameter `flip`: expected a boolean",
            ),
        ] {
            let err = build_params(&specs, bad.as_object().unwrap()).unwrap_err();
            assert!(err.starts_with(what), "{err}");
        }
    }

    #[test]
    fn rejects_unsupported_or_inconsistent_schemas() {
        for (schema, what) in [
            ("[]", "must be a JSON object"),
            (r#"{"type":"array"}"#, "\"type\": \"object\""),
            (
                r#"{"type":"object","properties":{"x":{"type":"array","default":[]}}}"#,
                "not supported",
            ),
            (
                r#"{"type":"object","properties":{"x":{"type":"integer"}}}"#,
                "needs a \"default\"",
            ),
            (
                r#"{"type":"object","properties":{"x":{"type":"integer","default":0,"minimum":1}}}"#,
                "default: 0 is outside",
            ),
            (
                r#"{"type":"object","properties":{"x":{"type":"string","enum":[],"default":""}}}"#,
                "non-empty",
            ),
        ] {
            let err = parse_schema(schema).unwrap_err();
            assert!(err.contains(what), "{schema}: {err}");
        }
        assert_eq!(parse_schema("").unwrap(), vec![]);
    }
}
