//! A node's inputs (by port name) and the outputs it builds.

use crate::{Image, Mask, NamedValue, NodeError, Value};

/// The connected inputs of one run, by port name.
#[derive(Debug)]
pub struct Inputs {
    values: Vec<NamedValue>,
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Image(_) => "image",
        Value::Mask(_) => "mask",
        Value::Text(_) => "text",
        Value::Integer(_) => "integer",
        Value::Number(_) => "number",
        Value::Boolean(_) => "boolean",
        Value::Json(_) => "json",
    }
}

macro_rules! taker {
    ($(#[$doc:meta])* $take:ident, $take_opt:ident, $variant:ident, $ty:ty, $kind:literal) => {
        $(#[$doc])*
        pub fn $take(&mut self, name: &str) -> Result<$ty, NodeError> {
            self.$take_opt(name)?
                .ok_or_else(|| NodeError::InvalidInput(format!("input `{name}` is not connected")))
        }

        /// Like the non-`_opt` form, but `Ok(None)` when the (optional) input is not connected.
        pub fn $take_opt(&mut self, name: &str) -> Result<Option<$ty>, NodeError> {
            match self.remove(name) {
                None => Ok(None),
                Some(Value::$variant(v)) => Ok(Some(v)),
                Some(other) => Err(NodeError::InvalidInput(format!(
                    "input `{name}` should be {}, got {}",
                    $kind,
                    kind_name(&other)
                ))),
            }
        }
    };
}

impl Inputs {
    pub(crate) fn new(values: Vec<NamedValue>) -> Self {
        Inputs { values }
    }

    /// Removes and returns the value on port `name`, if connected.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let index = self.values.iter().position(|v| v.name == name)?;
        Some(self.values.swap_remove(index).value)
    }

    taker!(
        /// Takes the image on port `name` (owned: mutate it in place and return it).
        take_image, take_image_opt, Image, Image, "an image"
    );
    taker!(
        /// Takes the mask on port `name`.
        take_mask, take_mask_opt, Mask, Mask, "a mask"
    );
    taker!(
        /// Takes the text on port `name`.
        take_text, take_text_opt, Text, String, "text"
    );
    taker!(
        /// Takes the integer on port `name`.
        take_integer, take_integer_opt, Integer, i64, "an integer"
    );
    taker!(
        /// Takes the number on port `name`.
        take_number, take_number_opt, Number, f64, "a number"
    );
    taker!(
        /// Takes the boolean on port `name`.
        take_boolean, take_boolean_opt, Boolean, bool, "a boolean"
    );
    taker!(
        /// Takes the JSON document (as text) on port `name`.
        take_json, take_json_opt, Json, String, "JSON"
    );
}

/// The outputs of one run, in the order of the declared output ports.
#[derive(Debug, Default)]
pub struct Outputs {
    values: Vec<NamedValue>,
}

impl Outputs {
    /// No outputs yet.
    pub fn new() -> Self {
        Outputs::default()
    }

    /// Sets output `name` to any value.
    pub fn value(mut self, name: &str, value: Value) -> Self {
        self.values.push(NamedValue {
            name: name.to_string(),
            value,
        });
        self
    }

    /// Sets image output `name`.
    pub fn image(self, name: &str, image: Image) -> Self {
        self.value(name, Value::Image(image))
    }
    /// Sets mask output `name`.
    pub fn mask(self, name: &str, mask: Mask) -> Self {
        self.value(name, Value::Mask(mask))
    }
    /// Sets text output `name`.
    pub fn text(self, name: &str, text: impl Into<String>) -> Self {
        self.value(name, Value::Text(text.into()))
    }
    /// Sets integer output `name`.
    pub fn integer(self, name: &str, value: i64) -> Self {
        self.value(name, Value::Integer(value))
    }
    /// Sets number output `name`.
    pub fn number(self, name: &str, value: f64) -> Self {
        self.value(name, Value::Number(value))
    }
    /// Sets boolean output `name`.
    pub fn boolean(self, name: &str, value: bool) -> Self {
        self.value(name, Value::Boolean(value))
    }
    /// Sets JSON output `name` (a serialized document).
    pub fn json(self, name: &str, document: impl Into<String>) -> Self {
        self.value(name, Value::Json(document.into()))
    }

    pub(crate) fn into_values(self) -> Vec<NamedValue> {
        self.values
    }
}
