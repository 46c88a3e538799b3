//! Discord's REST API as the strict fake checks it: each JSON body against the request-body
//! schema of its operation in the vendored OpenAPI 3.1 excerpt
//! (`tests/spec/discord-openapi.excerpt.json`), plus the documented limits the spec does not
//! carry, answered as Discord answers (`400 {"code":50035,"message":"Invalid Form Body",
//! "errors":{…}}`).

use super::schema::{SchemaError, Seg, Validator};
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

pub const SPEC_TEXT: &str = include_str!("../../spec/discord-openapi.excerpt.json");

pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| serde_json::from_str(SPEC_TEXT).expect("vendored Discord spec parses"))
}

// Reference pages for the limits the spec leaves out.
// create message doc: https://discord.com/developers/docs/resources/message#create-message
// embed limits doc: https://discord.com/developers/docs/resources/message#embed-object-embed-limits
// components doc: https://discord.com/developers/docs/components/reference#action-row
// modal doc: https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-response-object-modal

/// The request-body schema of `op` (`"POST /channels/{channel_id}/messages"`).
pub fn request_schema(op: &str) -> Option<&'static Value> {
    let (method, path) = op.split_once(' ')?;
    spec().pointer(&format!(
        "/paths/{}/{}/requestBody/content/application~1json/schema",
        path.replace('~', "~0").replace('/', "~1"),
        method.to_ascii_lowercase()
    ))
}

/// The query parameters `op` documents: name → schema.
pub fn query_params(op: &str) -> Vec<(String, &'static Value)> {
    let Some((method, path)) = op.split_once(' ') else {
        return vec![];
    };
    let Some(item) = spec().pointer(&format!("/paths/{}", path.replace('/', "~1"))) else {
        return vec![];
    };
    item.get(method.to_ascii_lowercase())
        .and_then(|o| o.get("parameters"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                &p["schema"],
            )
        })
        .collect()
}

fn err(path: Vec<Seg>, code: &'static str, message: String) -> SchemaError {
    SchemaError {
        path,
        code,
        message,
    }
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

fn chars(v: &Value) -> usize {
    v.as_str().map(|s| s.chars().count()).unwrap_or(0)
}

/// Message-shaped bodies: where the message sits in the body of `op`.
fn message_at<'a>(op: &str, body: &'a Value) -> Option<(Vec<Seg>, &'a Value)> {
    use super::discord::ops::*;
    match op {
        CREATE_MESSAGE | EDIT_MESSAGE | CREATE_FOLLOWUP | EDIT_ORIGINAL | EDIT_FOLLOWUP => {
            Some((vec![], body))
        }
        // Interaction callback types 4 (message) and 7 (update message) carry one in `data`.
        CALLBACK
            if matches!(body["type"].as_u64(), Some(4) | Some(7)) && body["data"].is_object() =>
        {
            Some((vec![key("data")], &body["data"]))
        }
        _ => None,
    }
}

/// Limits Discord documents but the spec excerpt does not carry.
fn documented_limits(op: &str, body: &Value, out: &mut Vec<SchemaError>) {
    if let Some((base, msg)) = message_at(op, body) {
        let at = |k: &str| {
            let mut p = base.clone();
            p.push(key(k));
            p
        };
        // CREATE_MESSAGE_DOC: "content: Message contents (up to 2000 characters)" (the spec
        // says 4000, the limit for some users, not bots).
        let n = chars(&msg["content"]);
        if n > 2000 {
            out.push(err(
                at("content"),
                "BASE_TYPE_MAX_LENGTH",
                "Must be 2000 or fewer in length.".into(),
            ));
        }
        // EMBED_LIMITS_DOC: title, description, field names and values, footer text and
        // author name of all embeds of a message together at most 6000 characters.
        let total: usize = msg["embeds"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                chars(&e["title"])
                    + chars(&e["description"])
                    + chars(&e["footer"]["text"])
                    + chars(&e["author"]["name"])
                    + e["fields"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|f| chars(&f["name"]) + chars(&f["value"]))
                        .sum::<usize>()
            })
            .sum();
        if total > 6000 {
            out.push(err(
                at("embeds"),
                "MAX_EMBED_SIZE_EXCEEDED",
                "Embed size exceeds maximum size of 6000".into(),
            ));
        }
        // COMPONENTS_DOC: without the IS_COMPONENTS_V2 flag (1 << 15) a message holds at
        // most 5 action rows.
        let v2 = msg["flags"].as_u64().unwrap_or(0) & (1 << 15) != 0;
        if let Some(rows) = msg["components"].as_array() {
            if !v2 && rows.len() > 5 {
                out.push(err(
                    at("components"),
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 5 or fewer in length.".into(),
                ));
            }
            // COMPONENTS_DOC: "custom_id … must be unique per component. Multiple components
            // on the same message must not share the same custom_id."
            let mut seen = std::collections::HashSet::new();
            for (i, row) in rows.iter().enumerate() {
                for (j, c) in row["components"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    if let Some(id) = c["custom_id"].as_str() {
                        if !seen.insert(id.to_string()) {
                            let mut p = at("components");
                            p.extend([
                                Seg::Index(i),
                                key("components"),
                                Seg::Index(j),
                                key("custom_id"),
                            ]);
                            out.push(err(
                                p,
                                "COMPONENT_CUSTOM_ID_DUPLICATED",
                                "Component custom id cannot be duplicated".into(),
                            ));
                        }
                    }
                }
            }
        }
    }
    // MODAL_DOC: a modal holds between 1 and 5 components.
    if op == super::discord::ops::CALLBACK && body["type"] == 9 {
        if let Some(rows) = body["data"]["components"].as_array() {
            if rows.len() > 5 {
                out.push(err(
                    vec![key("data"), key("components")],
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 5 in length.".into(),
                ));
            }
        }
    }
}

/// Every problem of a JSON body sent to `op`: the spec's schema, then documented limits.
pub fn check_body(op: &str, body: &Value) -> Vec<SchemaError> {
    let mut out = match request_schema(op) {
        Some(schema) => Validator::new(spec()).validate(schema, body),
        None => vec![],
    };
    documented_limits(op, body, &mut out);
    let mut seen = Vec::new();
    out.retain(|e| {
        let k = (e.path.clone(), e.code);
        if seen.contains(&k) {
            false
        } else {
            seen.push(k);
            true
        }
    });
    out
}

/// Query parameters against their schemas (numbers parsed as Discord parses them).
pub fn check_query(op: &str, query: &str) -> Vec<SchemaError> {
    let params = query_params(op);
    let v = Validator::new(spec());
    let mut out = Vec::new();
    for (k, val) in url::form_urlencoded::parse(query.as_bytes()) {
        let Some((_, schema)) = params.iter().find(|(n, _)| *n == k) else {
            continue;
        };
        let inst = val
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| match val.as_ref() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                s => Value::String(s.to_string()),
            });
        for mut e in v.validate(schema, &inst) {
            e.path.insert(0, key(&k));
            out.push(e);
        }
    }
    out
}

/// Discord's `Invalid Form Body` answer for `errors`.
pub fn invalid_form_body(errors: &[SchemaError]) -> Value {
    let mut tree = Map::new();
    for e in errors {
        let mut node = &mut tree;
        for seg in &e.path {
            let k = seg.to_string();
            node = node
                .entry(k)
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("error tree nodes are objects");
        }
        node.entry("_errors")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .unwrap()
            .push(json!({"code": e.code, "message": e.message}));
    }
    json!({"code": 50035, "message": "Invalid Form Body", "errors": Value::Object(tree)})
}

/// A message with nothing to show: Discord answers 50006.
pub fn is_empty_message(body: &Value, has_files: bool) -> bool {
    let empty = |k: &str| match &body[k] {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    !has_files
        && empty("content")
        && empty("embeds")
        && empty("components")
        && empty("sticker_ids")
        && empty("attachments")
        && body["poll"].is_null()
}

pub const RESPONSES_TEXT: &str = include_str!("../../spec/discord-openapi.responses.excerpt.json");

/// The response-schema excerpt (same upstream commit as the request excerpt).
pub fn responses() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        serde_json::from_str(RESPONSES_TEXT).expect("vendored Discord response spec parses")
    })
}

/// Errors of `value` against the response schema `name` (`MessageResponse`, …).
pub fn check_response(name: &str, value: &Value) -> Vec<SchemaError> {
    let schema = json!({"$ref": format!("#/components/schemas/{name}")});
    Validator::new(responses()).validate(&schema, value)
}
