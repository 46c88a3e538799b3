//! A JSON Schema (draft 2020-12 / OpenAPI 3.1) validator for exactly the keywords Discord's
//! OpenAPI excerpt uses, reporting errors in Discord's own vocabulary (`BASE_TYPE_MAX_LENGTH`,
//! …) with the path of the offending field.
//!
//! Why not the `jsonschema` crate: it enables serde_json's `float_roundtrip` feature, and
//! cargo unifies that into the product's own serde_json when tests are built, so the tests
//! would exercise a different JSON parser build than the binary ships (and every dependency
//! on serde_json would be rebuilt for tests). Its `oneOf` errors also do not say which branch
//! was meant, which Discord's `errors` object does. The keywords handled here are checked
//! against the excerpt by `tests/it/spec_fakes/limits.rs::the_validator_knows_every_keyword_of_the_excerpt`.

use serde_json::Value;
use std::fmt;

/// One step into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl fmt::Display for Seg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seg::Key(k) => write!(f, "{k}"),
            Seg::Index(i) => write!(f, "{i}"),
        }
    }
}

/// A field that breaks the schema: where, Discord's error code, and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    pub path: Vec<Seg>,
    pub code: &'static str,
    pub message: String,
}

impl SchemaError {
    /// `embeds.0.url`
    pub fn dotted(&self) -> String {
        let parts: Vec<String> = self.path.iter().map(|s| s.to_string()).collect();
        if parts.is_empty() {
            "(body)".into()
        } else {
            parts.join(".")
        }
    }
}

/// Keywords that change validation and are implemented below.
pub const ASSERTION_KEYWORDS: &[&str] = &[
    "$ref",
    "allOf",
    "oneOf",
    "anyOf",
    "type",
    "const",
    "enum",
    "properties",
    "required",
    "additionalProperties",
    "maxProperties",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "pattern",
];

/// Annotation keywords the validator deliberately ignores (`format` is an annotation in
/// 2020-12; Discord's own formats such as `snowflake`/`nonce` are checked by `pattern` and
/// `maxLength` where the spec gives them).
pub const ANNOTATION_KEYWORDS: &[&str] = &[
    "title",
    "description",
    "format",
    "default",
    "contentEncoding",
    "x-discord-union",
    "deprecated",
    "readOnly",
    "writeOnly",
    "examples",
];

/// Validates against schemas inside one OpenAPI document (for `#/components/...` refs).
pub struct Validator<'a> {
    pub root: &'a Value,
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn type_matches(ty: &str, v: &Value, format: Option<&str>) -> bool {
    match ty {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "number" => v.is_number(),
        "integer" => {
            v.is_i64()
                || v.is_u64()
                || v.as_f64().is_some_and(|f| f.fract() == 0.0)
                // Discord takes 64-bit integers as strings too (JSON numbers lose precision).
                || (format == Some("int64")
                    && v.as_str().is_some_and(|s| s.parse::<i64>().is_ok()))
        }
        "string" => {
            v.is_string()
                // Snowflakes are strings in the spec; Discord also takes them as integers.
                || (format == Some("snowflake") && (v.is_u64() || v.is_i64()))
        }
        _ => panic!("schema type {ty:?} not supported"),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_error(ty: &str, v: &Value) -> (&'static str, String) {
    let shown = match v {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    };
    match ty {
        "integer" => ("NUMBER_TYPE_COERCE", format!("Value {shown} is not int.")),
        "number" => (
            "NUMBER_TYPE_COERCE",
            format!("Value {shown} is not a number."),
        ),
        "string" => ("BASE_TYPE_STRING", "Must be a string.".to_string()),
        "boolean" => (
            "BOOLEAN_TYPE_COERCE",
            format!("Value {shown} is not boolean."),
        ),
        "array" => ("BASE_TYPE_ARRAY", "Must be an array.".to_string()),
        "object" => (
            "MODEL_TYPE_CONVERT",
            "Only dictionaries may be used in a ModelType".to_string(),
        ),
        _ => (
            "BASE_TYPE_NULL",
            format!("Must be {ty}, not {}.", type_name(v)),
        ),
    }
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse::<f64>().ok()))
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e18 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

impl<'a> Validator<'a> {
    pub fn new(root: &'a Value) -> Validator<'a> {
        Validator { root }
    }

    /// Resolves a local `$ref` (`#/components/schemas/X`).
    pub fn resolve(&self, r: &str) -> &'a Value {
        let ptr = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local $refs are supported, got {r}"));
        self.root
            .pointer(ptr)
            .unwrap_or_else(|| panic!("dangling $ref {r}"))
    }

    /// Every error of `instance` against `schema`.
    pub fn validate(&self, schema: &Value, instance: &Value) -> Vec<SchemaError> {
        let mut out = Vec::new();
        self.check(schema, instance, &mut Vec::new(), &mut out);
        out
    }

    fn err(out: &mut Vec<SchemaError>, path: &[Seg], code: &'static str, message: String) {
        out.push(SchemaError {
            path: path.to_vec(),
            code,
            message,
        });
    }

    fn check(&self, schema: &Value, v: &Value, path: &mut Vec<Seg>, out: &mut Vec<SchemaError>) {
        let Some(s) = schema.as_object() else {
            if schema == &Value::Bool(false) {
                Self::err(out, path, "BASE_TYPE_INVALID", "Not allowed.".into());
            }
            return;
        };
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            self.check(self.resolve(r), v, path, out);
        }
        for sub in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check(sub, v, path, out);
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(branches) = s.get(key).and_then(Value::as_array) {
                self.check_union(branches, key == "oneOf", v, path, out);
            }
        }
        let format = s.get("format").and_then(Value::as_str);
        if let Some(ty) = s.get("type") {
            let types: Vec<&str> = match ty {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            if !types.iter().any(|t| type_matches(t, v, format)) {
                let main = types.iter().find(|t| **t != "null").unwrap_or(&"null");
                let (code, message) = type_error(main, v);
                Self::err(out, path, code, message);
                return;
            }
        }
        if let Some(c) = s.get("const") {
            if c != v {
                Self::err(
                    out,
                    path,
                    "BASE_TYPE_CHOICES",
                    format!("Value must be one of ({c},)."),
                );
            }
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            if !e.contains(v) {
                let list: Vec<String> = e.iter().map(|x| x.to_string()).collect();
                Self::err(
                    out,
                    path,
                    "BASE_TYPE_CHOICES",
                    format!("Value must be one of {{{}}}.", list.join(", ")),
                );
            }
        }
        match v {
            Value::Object(map) => {
                let props = s.get("properties").and_then(Value::as_object);
                for req in s
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let req = req.as_str().unwrap_or_default();
                    if !map.contains_key(req) {
                        path.push(Seg::Key(req.to_string()));
                        Self::err(
                            out,
                            path,
                            "BASE_TYPE_REQUIRED",
                            "This field is required".into(),
                        );
                        path.pop();
                    }
                }
                if let Some(max) = s.get("maxProperties").and_then(Value::as_u64) {
                    if map.len() as u64 > max {
                        Self::err(
                            out,
                            path,
                            "BASE_TYPE_MAX_LENGTH",
                            format!("Must be {max} or fewer in length."),
                        );
                    }
                }
                for (k, item) in map {
                    let sub = props.and_then(|p| p.get(k));
                    path.push(Seg::Key(k.clone()));
                    match (sub, s.get("additionalProperties")) {
                        (Some(sub), _) => self.check(sub, item, path, out),
                        (None, Some(Value::Bool(false))) => {
                            Self::err(out, path, "BASE_TYPE_INVALID", "Unknown field.".into())
                        }
                        (None, Some(add @ Value::Object(_))) => self.check(add, item, path, out),
                        _ => {}
                    }
                    path.pop();
                }
            }
            Value::Array(items) => {
                let n = items.len() as u64;
                let min = s.get("minItems").and_then(Value::as_u64);
                let max = s.get("maxItems").and_then(Value::as_u64);
                self.length(n, min, max, path, out);
                if s.get("uniqueItems") == Some(&Value::Bool(true)) {
                    for (i, a) in items.iter().enumerate() {
                        if items[..i].contains(a) {
                            path.push(Seg::Index(i));
                            Self::err(
                                out,
                                path,
                                "SET_TYPE_ALREADY_CONTAINS_VALUE",
                                "The set already contains this value".into(),
                            );
                            path.pop();
                        }
                    }
                }
                if let Some(item_schema) = s.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        path.push(Seg::Index(i));
                        self.check(item_schema, item, path, out);
                        path.pop();
                    }
                }
            }
            Value::String(text) => {
                let min = s.get("minLength").and_then(Value::as_u64);
                let max = s.get("maxLength").and_then(Value::as_u64);
                self.length(chars(text) as u64, min, max, path, out);
                if let Some(p) = s.get("pattern").and_then(Value::as_str) {
                    if !pattern_matches(p, text) {
                        Self::err(
                            out,
                            path,
                            "STRING_TYPE_REGEX",
                            format!("String value did not match validation regex ({p})."),
                        );
                    }
                }
                self.numeric(s, v, path, out);
            }
            Value::Number(_) => self.numeric(s, v, path, out),
            _ => {}
        }
    }

    fn numeric(
        &self,
        s: &serde_json::Map<String, Value>,
        v: &Value,
        path: &[Seg],
        out: &mut Vec<SchemaError>,
    ) {
        let Some(n) = num(v) else { return };
        if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
            if n < min {
                Self::err(
                    out,
                    path,
                    "NUMBER_TYPE_MIN",
                    format!(
                        "int value should be greater than or equal to {}.",
                        fmt_num(min)
                    ),
                );
            }
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
            if n > max {
                Self::err(
                    out,
                    path,
                    "NUMBER_TYPE_MAX",
                    format!(
                        "int value should be less than or equal to {}.",
                        fmt_num(max)
                    ),
                );
            }
        }
    }

    /// Discord words length errors of strings and arrays alike.
    fn length(
        &self,
        n: u64,
        min: Option<u64>,
        max: Option<u64>,
        path: &[Seg],
        out: &mut Vec<SchemaError>,
    ) {
        let too_long = max.is_some_and(|m| n > m);
        let too_short = min.is_some_and(|m| n < m);
        if !(too_long || too_short) {
            return;
        }
        match (min, max) {
            (Some(lo), Some(hi)) if lo > 0 => Self::err(
                out,
                path,
                "BASE_TYPE_BAD_LENGTH",
                format!("Must be between {lo} and {hi} in length."),
            ),
            (_, Some(hi)) if too_long => Self::err(
                out,
                path,
                "BASE_TYPE_MAX_LENGTH",
                format!("Must be {hi} or fewer in length."),
            ),
            (Some(lo), _) => Self::err(
                out,
                path,
                "BASE_TYPE_MIN_LENGTH",
                format!("Must be {lo} or more in length."),
            ),
            _ => {}
        }
    }

    /// `oneOf`/`anyOf`: valid if one branch (for `oneOf`: exactly one) accepts the value.
    /// Otherwise the errors of the branch the value was meant for: the one whose failures
    /// do not include the value's own type or discriminating `type` field, so a too-long
    /// label inside a text input is reported as that, not as "no variant matched".
    fn check_union(
        &self,
        branches: &[Value],
        exactly_one: bool,
        v: &Value,
        path: &mut Vec<Seg>,
        out: &mut Vec<SchemaError>,
    ) {
        let depth = path.len();
        let results: Vec<Vec<SchemaError>> = branches
            .iter()
            .map(|b| {
                let mut errs = Vec::new();
                self.check(b, v, path, &mut errs);
                errs
            })
            .collect();
        let passing = results.iter().filter(|e| e.is_empty()).count();
        if passing == 1 || (passing > 1 && !exactly_one) {
            return;
        }
        if passing > 1 {
            Self::err(
                out,
                path,
                "UNION_TYPE_CHOICES",
                "Value matches more than one allowed type.".into(),
            );
            return;
        }
        // A branch "meant" for the value fails neither on the value itself (type/const/enum)
        // nor on a discriminator field (`type`) directly below it.
        let discriminates = |e: &SchemaError| {
            let rel = &e.path[depth.min(e.path.len())..];
            (rel.is_empty() && is_kind_error(e.code))
                || (rel.len() == 1
                    && rel[0] == Seg::Key("type".into())
                    && e.code != "BASE_TYPE_REQUIRED")
        };
        let meant: Vec<&Vec<SchemaError>> = results
            .iter()
            .filter(|errs| !errs.iter().any(&discriminates))
            .collect();
        match meant.iter().min_by_key(|errs| errs.len()) {
            Some(best) => out.extend(best.iter().cloned()),
            None => {
                let allowed: Vec<String> = branches
                    .iter()
                    .filter_map(|b| self.discriminator(b))
                    .collect();
                let message = if allowed.is_empty() {
                    "Value does not match any allowed type.".to_string()
                } else {
                    format!(
                        "Value of field \"type\" must be one of ({}).",
                        allowed.join(", ")
                    )
                };
                Self::err(out, path, "UNION_TYPE_CHOICES", message);
            }
        }
    }

    /// The `type` values a union branch stands for, for error messages.
    fn discriminator(&self, branch: &Value) -> Option<String> {
        let b = match branch.get("$ref").and_then(Value::as_str) {
            Some(r) => self.resolve(r),
            None => branch,
        };
        let t = b.pointer("/properties/type")?;
        let vals = t.get("enum").or_else(|| t.get("const"))?;
        Some(match vals {
            Value::Array(a) => a
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        })
    }
}

/// Errors that say the value is of another kind than a branch wants (as opposed to a
/// right-kind value breaking a limit).
fn is_kind_error(code: &str) -> bool {
    matches!(
        code,
        "NUMBER_TYPE_COERCE"
            | "BASE_TYPE_STRING"
            | "BOOLEAN_TYPE_COERCE"
            | "BASE_TYPE_ARRAY"
            | "MODEL_TYPE_CONVERT"
            | "BASE_TYPE_CHOICES"
            | "UNION_TYPE_CHOICES"
            | "BASE_TYPE_NULL"
    )
}

/// The excerpt uses one pattern (snowflakes); any other is refused loudly rather than
/// silently passed.
fn pattern_matches(pattern: &str, s: &str) -> bool {
    match pattern {
        "^(0|[1-9][0-9]*)$" => {
            s == "0"
                || (s.starts_with(|c: char| ('1'..='9').contains(&c))
                    && s.bytes().all(|b| b.is_ascii_digit()))
        }
        other => panic!("schema pattern {other:?} not supported by the test validator"),
    }
}

/// Every keyword used by schema objects under `schema` (following the structure, not
/// property names), for the completeness test.
pub fn keywords_in(schema: &Value, out: &mut std::collections::BTreeSet<String>) {
    let Some(s) = schema.as_object() else { return };
    for (k, v) in s {
        out.insert(k.clone());
        match k.as_str() {
            "properties" => {
                for sub in v.as_object().into_iter().flat_map(|m| m.values()) {
                    keywords_in(sub, out);
                }
            }
            "allOf" | "oneOf" | "anyOf" => {
                for sub in v.as_array().into_iter().flatten() {
                    keywords_in(sub, out);
                }
            }
            "items" | "additionalProperties" => keywords_in(v, out),
            _ => {}
        }
    }
}
