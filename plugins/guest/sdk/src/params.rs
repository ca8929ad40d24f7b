//! A node's parameters: the flat JSON object the host validated against the node's schema.
//!
//! A tiny parser keeps plugins small (no serde): the host only ever sends a flat object of
//! strings, numbers, booleans and nulls.

use crate::NodeError;

/// One parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number that is an integer in the `i64` range.
    Int(i64),
    /// Any other number.
    Float(f64),
    /// A string.
    Str(String),
}

/// A node's parameters by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    entries: Vec<(String, ParamValue)>,
}

impl Params {
    /// Parses a flat JSON object.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let params = p.object()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("params: trailing characters at byte {}", p.i));
        }
        Ok(params)
    }

    /// The raw value of `name`.
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.entries.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    fn missing(name: &str, what: &str) -> NodeError {
        NodeError::InvalidParams(format!("parameter `{name}` must be {what}"))
    }

    /// Integer parameter `name`.
    pub fn int(&self, name: &str) -> Result<i64, NodeError> {
        match self.get(name) {
            Some(ParamValue::Int(i)) => Ok(*i),
            _ => Err(Self::missing(name, "an integer")),
        }
    }

    /// Number parameter `name` (integers are accepted).
    pub fn float(&self, name: &str) -> Result<f64, NodeError> {
        match self.get(name) {
            Some(ParamValue::Float(f)) => Ok(*f),
            Some(ParamValue::Int(i)) => Ok(*i as f64),
            _ => Err(Self::missing(name, "a number")),
        }
    }

    /// Boolean parameter `name`.
    pub fn bool(&self, name: &str) -> Result<bool, NodeError> {
        match self.get(name) {
            Some(ParamValue::Bool(b)) => Ok(*b),
            _ => Err(Self::missing(name, "a boolean")),
        }
    }

    /// String parameter `name`.
    pub fn str(&self, name: &str) -> Result<&str, NodeError> {
        match self.get(name) {
            Some(ParamValue::Str(s)) => Ok(s),
            _ => Err(Self::missing(name, "a string")),
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!(
                "params: expected `{}` at byte {}",
                c as char, self.i
            ))
        }
    }

    fn object(&mut self) -> Result<Params, String> {
        self.expect(b'{')?;
        let mut entries = Vec::new();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Params { entries });
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            let value = self.value()?;
            entries.push((key, value));
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Params { entries });
                }
                _ => return Err(format!("params: expected `,` or `}}` at byte {}", self.i)),
            }
        }
    }

    fn value(&mut self) -> Result<ParamValue, String> {
        match self.peek() {
            Some(b'"') => Ok(ParamValue::Str(self.string()?)),
            Some(b't') => self.word("true", ParamValue::Bool(true)),
            Some(b'f') => self.word("false", ParamValue::Bool(false)),
            Some(b'n') => self.word("null", ParamValue::Null),
            Some(c) if c == b'-' || c.is_ascii_digit() => self.number(),
            _ => Err(format!("params: expected a flat value at byte {}", self.i)),
        }
    }

    fn word(&mut self, word: &str, value: ParamValue) -> Result<ParamValue, String> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(value)
        } else {
            Err(format!("params: bad literal at byte {}", self.i))
        }
    }

    fn number(&mut self) -> Result<ParamValue, String> {
        let start = self.i;
        while self.i < self.s.len()
            && matches!(
                self.s[self.i],
                b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
            )
        {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
        if let Ok(i) = text.parse::<i64>() {
            return Ok(ParamValue::Int(i));
        }
        text.parse::<f64>()
            .map(ParamValue::Float)
            .map_err(|_| format!("params: bad number `{text}`"))
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return Err("params: unterminated string".to_string());
            };
            self.i += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return Err("params: unterminated escape".to_string());
                    };
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => return Err(format!("params: bad escape at byte {}", self.i)),
                    }
                }
                _ => {
                    // Copy one UTF-8 sequence (the input is a Rust string, so it is valid).
                    let start = self.i - 1;
                    let mut end = self.i;
                    while end < self.s.len() && (self.s[end] & 0xC0) == 0x80 {
                        end += 1;
                    }
                    out.push_str(
                        std::str::from_utf8(&self.s[start..end]).map_err(|e| e.to_string())?,
                    );
                    self.i = end;
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .s
            .get(self.i..self.i + 4)
            .ok_or("params: short \\u escape")?;
        self.i += 4;
        let text = std::str::from_utf8(digits).map_err(|e| e.to_string())?;
        u32::from_str_radix(text, 16).map_err(|_| "params: bad \\u escape".to_string())
    }

    fn unicode_escape(&mut self) -> Result<char, String> {
        let first = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&first) && self.s[self.i..].starts_with(b"\\u") {
            self.i += 2;
            let second = self.hex4()?;
            0x10000 + ((first - 0xD800) << 10) + (second.wrapping_sub(0xDC00) & 0x3FF)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| "params: bad \\u escape".to_string())
    }
}

/// Quotes and escapes `s` as a JSON string.
pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_flat_object() {
        let p = Params::parse(r#" {"a": 3, "b": -1.5, "c": "x\"\u00e9\n", "d": true, "e": null} "#)
            .unwrap();
        assert_eq!(p.int("a").unwrap(), 3);
        assert_eq!(p.float("b").unwrap(), -1.5);
        assert_eq!(p.str("c").unwrap(), "x\"é\n");
        assert!(p.bool("d").unwrap());
        assert_eq!(p.get("e"), Some(&ParamValue::Null));
        assert!(p.int("b").is_err());
    }

    #[test]
    fn rejects_nested_values_and_garbage() {
        assert!(Params::parse(r#"{"a": [1]}"#).is_err());
        assert!(Params::parse(r#"{"a": 1"#).is_err());
        assert!(Params::parse(r#"{"a": 1} x"#).is_err());
    }

    #[test]
    fn json_string_round_trips() {
        let s = "quote \" backslash \\ newline \n tab \t bell \u{7} é";
        let p = Params::parse(&format!("{{\"k\":{}}}", json_string(s))).unwrap();
        assert_eq!(p.str("k").unwrap(), s);
    }
}
