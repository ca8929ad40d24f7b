//! Converting prompt literals to typed values, as ComfyUI's validator does (`int()`, `float()`, `str()`,
//! `bool()`), and the range/combo checks that follow.

use serde_json::Value as Json;

use crate::schema::{InputType, Number};
use crate::value::Value;

/// Why a literal was rejected.
#[derive(Debug, Clone, PartialEq)]
pub enum CoerceError {
    /// The value cannot be converted to the declared type.
    Convert(String),
    /// Below `min`.
    BelowMin(Number),
    /// Above `max`.
    AboveMax(Number),
    /// Not one of the combo options.
    NotInList,
}

/// Converts a literal to the declared input type and checks `min`/`max` and combo membership.
///
/// Conversions follow ComfyUI: INT accepts integers, floats (truncated), numeric strings and booleans;
/// FLOAT accepts numbers, numeric strings and booleans; STRING accepts strings, numbers and booleans.
/// BOOLEAN accepts booleans, numbers (non-zero is true) and the strings `true`/`false` — stricter than
/// Python's `bool("false") == True`, on purpose. A COMBO takes strings, numbers and booleans (compared
/// as text); anything else is not in the list. A combo of input files takes any text, as STRING does (the
/// node checks the file). For socket types see [`socket_literal`].
pub fn coerce_literal(
    kind: &InputType,
    min: Option<Number>,
    max: Option<Number>,
    literal: &Json,
) -> Result<Value, CoerceError> {
    let value = match kind {
        InputType::Int => Value::Int(to_int(literal)?),
        InputType::Float => Value::Float(to_float(literal)?),
        InputType::String | InputType::InputFile(_) => Value::String(to_string(literal)?),
        InputType::Boolean => Value::Bool(to_bool(literal)?),
        InputType::Combo(options) => {
            let text = match literal {
                Json::String(s) => s.clone(),
                Json::Number(n) => n.to_string(),
                Json::Bool(b) => b.to_string(),
                _ => return Err(CoerceError::NotInList),
            };
            if !options.contains(&text) {
                return Err(CoerceError::NotInList);
            }
            return Ok(Value::String(text));
        }
        InputType::Socket(type_name) => return socket_literal(type_name, min, max, literal),
    };
    check_range(&value, min, max)?;
    Ok(value)
}

/// A literal given to a socket: `*` (or a union with `*`) takes any literal as `Value::Json`; a comma
/// union takes it as its first primitive member (`INT`, `FLOAT`, `STRING`, `BOOLEAN`) that converts it;
/// a socket-only type (`IMAGE`, `MASK`, `LATENT`, `MODEL`, …) has values only other nodes produce, so no
/// literal can satisfy it.
pub fn socket_literal(
    type_name: &str,
    min: Option<Number>,
    max: Option<Number>,
    literal: &Json,
) -> Result<Value, CoerceError> {
    let members = type_name.split(',').map(str::trim);
    if members.clone().any(|t| t == "*") {
        return Ok(Value::Json(literal.clone()));
    }
    let mut first_error = None;
    for member in members {
        let kind = InputType::named(member);
        if kind.is_widget() {
            match coerce_literal(&kind, min, max, literal) {
                Ok(value) => return Ok(value),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    Err(first_error.unwrap_or_else(|| {
        CoerceError::Convert(format!(
            "{type_name} values come only from other nodes: link this input to a node's output, as in [\"4\", 0]"
        ))
    }))
}

fn check_range(value: &Value, min: Option<Number>, max: Option<Number>) -> Result<(), CoerceError> {
    if let Some(m) = min {
        if compare(value, m) == Some(std::cmp::Ordering::Less) {
            return Err(CoerceError::BelowMin(m));
        }
    }
    if let Some(m) = max {
        if compare(value, m) == Some(std::cmp::Ordering::Greater) {
            return Err(CoerceError::AboveMax(m));
        }
    }
    Ok(())
}

fn compare(value: &Value, bound: Number) -> Option<std::cmp::Ordering> {
    match (value, bound) {
        (Value::Int(v), Number::Int(b)) => Some(v.cmp(&b)),
        (Value::Int(v), Number::Float(b)) => (*v as f64).partial_cmp(&b),
        (Value::Float(v), b) => v.partial_cmp(&b.as_f64()),
        _ => None,
    }
}

fn to_int(v: &Json) -> Result<i128, CoerceError> {
    match v {
        Json::Number(n) => number_to_int(n),
        Json::Bool(b) => Ok(i128::from(*b)),
        Json::String(s) => s
            .trim()
            .parse::<i128>()
            .map_err(|_| CoerceError::Convert(format!("invalid literal for int(): '{s}'"))),
        other => Err(CoerceError::Convert(format!(
            "cannot convert {other} to int"
        ))),
    }
}

fn number_to_int(n: &serde_json::Number) -> Result<i128, CoerceError> {
    let text = n.to_string();
    if let Ok(i) = text.parse::<i128>() {
        return Ok(i);
    }
    let f: f64 = text
        .parse()
        .map_err(|_| CoerceError::Convert(format!("cannot convert {text} to int")))?;
    if f.is_finite() && f.abs() < 1.7e38 {
        Ok(f.trunc() as i128)
    } else {
        Err(CoerceError::Convert(format!(
            "cannot convert {text} to int"
        )))
    }
}

fn to_float(v: &Json) -> Result<f64, CoerceError> {
    match v {
        Json::Number(n) => n
            .to_string()
            .parse::<f64>()
            .map_err(|_| CoerceError::Convert(format!("cannot convert {n} to float"))),
        Json::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Json::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| CoerceError::Convert(format!("could not convert string to float: '{s}'"))),
        other => Err(CoerceError::Convert(format!(
            "cannot convert {other} to float"
        ))),
    }
}

fn to_string(v: &Json) -> Result<String, CoerceError> {
    match v {
        Json::String(s) => Ok(s.clone()),
        Json::Number(n) => Ok(n.to_string()),
        Json::Bool(b) => Ok(if *b { "True" } else { "False" }.to_string()),
        other => Err(CoerceError::Convert(format!(
            "cannot convert {other} to string"
        ))),
    }
}

fn to_bool(v: &Json) -> Result<bool, CoerceError> {
    match v {
        Json::Bool(b) => Ok(*b),
        Json::Number(n) => Ok(n
            .to_string()
            .parse::<f64>()
            .map(|f| f != 0.0)
            .unwrap_or(true)),
        Json::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Json::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(CoerceError::Convert(format!(
            "cannot convert {other} to boolean"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn int(v: Json) -> Result<Value, CoerceError> {
        coerce_literal(
            &InputType::Int,
            Some(Number::Int(0)),
            Some(Number::Int(u64::MAX as i128)),
            &v,
        )
    }

    #[test]
    fn ints_follow_python_int() {
        assert!(matches!(int(json!(5)), Ok(Value::Int(5))));
        assert!(matches!(int(json!(5.9)), Ok(Value::Int(5))));
        assert!(matches!(int(json!("7")), Ok(Value::Int(7))));
        assert!(matches!(int(json!(true)), Ok(Value::Int(1))));
        let max: Json = serde_json::from_str("18446744073709551615").unwrap();
        assert!(matches!(int(max), Ok(Value::Int(v)) if v == u64::MAX as i128));
        let over: Json = serde_json::from_str("18446744073709551616").unwrap();
        assert_eq!(
            int(over).unwrap_err(),
            CoerceError::AboveMax(Number::Int(u64::MAX as i128))
        );
        assert_eq!(
            int(json!(-1)).unwrap_err(),
            CoerceError::BelowMin(Number::Int(0))
        );
        assert!(matches!(int(json!("x")), Err(CoerceError::Convert(_))));
        assert!(matches!(int(json!([1, 2])), Err(CoerceError::Convert(_))));
    }

    #[test]
    fn other_types() {
        let f = coerce_literal(
            &InputType::Float,
            None,
            Some(Number::Float(1.0)),
            &json!("0.5"),
        );
        assert!(matches!(f, Ok(Value::Float(v)) if v == 0.5));
        let b = coerce_literal(&InputType::Boolean, None, None, &json!("False"));
        assert!(matches!(b, Ok(Value::Bool(false))));
        let s = coerce_literal(&InputType::String, None, None, &json!(3));
        assert!(matches!(s, Ok(Value::String(ref t)) if t == "3"));
        let combo = InputType::Combo(vec!["a".into(), "b".into()]);
        assert!(matches!(
            coerce_literal(&combo, None, None, &json!("b")),
            Ok(Value::String(_))
        ));
        assert_eq!(
            coerce_literal(&combo, None, None, &json!("c")).unwrap_err(),
            CoerceError::NotInList
        );
    }
}
