//! Slack's Web API as the strict fake checks it: arguments parsed the way Slack parses them
//! (query string, form-encoded or JSON body, JSON-valued fields given as strings), required
//! arguments from the vendored Swagger spec (`tests/spec/slack-web-openapi.excerpt.json`)
//! plus the methods newer than it, and the Block Kit and message limits from Slack's
//! reference pages (cited next to each limit). Slack ignores unknown arguments, so this does
//! too.

use super::violations::Severity;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::OnceLock;

pub const SPEC_TEXT: &str = include_str!("../../spec/slack-web-openapi.excerpt.json");

fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| serde_json::from_str(SPEC_TEXT).expect("vendored Slack spec parses"))
}

// Reference pages the limits below come from.
const WEB_API: &str = "https://docs.slack.dev/apis/web-api";
const BLOCKS: &str = "https://docs.slack.dev/reference/block-kit/blocks";
// section: https://docs.slack.dev/reference/block-kit/blocks/section-block
// header: https://docs.slack.dev/reference/block-kit/blocks/header-block
// context: https://docs.slack.dev/reference/block-kit/blocks/context-block
// actions: https://docs.slack.dev/reference/block-kit/blocks/actions-block
// input: https://docs.slack.dev/reference/block-kit/blocks/input-block
// image: https://docs.slack.dev/reference/block-kit/blocks/image-block
// text object: https://docs.slack.dev/reference/block-kit/composition-objects/text-object
// button: https://docs.slack.dev/reference/block-kit/block-elements/button-element
const PLAIN_TEXT_INPUT: &str =
    "https://docs.slack.dev/reference/block-kit/block-elements/plain-text-input-element";
// views: https://docs.slack.dev/reference/views
const POST_MESSAGE: &str = "https://docs.slack.dev/reference/methods/chat.postMessage";
// get upload url: https://docs.slack.dev/reference/methods/files.getUploadURLExternal
// complete upload: https://docs.slack.dev/reference/methods/files.completeUploadExternal

/// One broken rule: the Slack error code it earns, where (JSON pointer), and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub error: &'static str,
    pub pointer: String,
    /// In Slack's words.
    pub message: String,
    /// The actual size, for the violation report (not part of Slack's answer).
    pub detail: String,
}

impl Finding {
    fn refused(
        error: &'static str,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            severity: Severity::Refused,
            error,
            pointer: pointer.into(),
            message: message.into(),
            detail: String::new(),
        }
    }
    fn with_detail(mut self, detail: String) -> Self {
        self.detail = detail;
        self
    }
    fn warning(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Warning,
            error: "",
            pointer: pointer.into(),
            message: message.into(),
            detail: String::new(),
        }
    }
    /// Slack's wording: `must be less than 3001 characters [json-pointer:/blocks/0/text/text]`.
    pub fn slack_text(&self) -> String {
        format!("{} [json-pointer:{}]", self.message, self.pointer)
    }
}

/// A Web API method as documented: verbs and arguments (name, required).
pub struct MethodSpec {
    pub post_only: bool,
    pub args: Vec<(String, bool)>,
}

/// Methods newer than the 2020 Swagger file, and requirements it leaves out, from the
/// methods' reference pages.
fn supplement(method: &str) -> Option<MethodSpec> {
    let args = |list: &[(&str, bool)]| list.iter().map(|(n, r)| (n.to_string(), *r)).collect();
    Some(match method {
        // GET_UPLOAD_URL: "Method Access: POST", content types form-urlencoded and JSON;
        // required filename, length; optional alt_txt, snippet_type.
        "files.getUploadURLExternal" => MethodSpec {
            post_only: true,
            args: args(&[
                ("filename", true),
                ("length", true),
                ("alt_txt", false),
                ("snippet_type", false),
            ]),
        },
        // COMPLETE_UPLOAD: POST; required files [{id, title?}]; optional channel_id,
        // channels, thread_ts, initial_comment, blocks.
        "files.completeUploadExternal" => MethodSpec {
            post_only: true,
            args: args(&[
                ("files", true),
                ("channel_id", false),
                ("channels", false),
                ("thread_ts", false),
                ("initial_comment", false),
                ("blocks", false),
            ]),
        },
        // https://docs.slack.dev/reference/methods/apps.connections.open: POST, app token.
        "apps.connections.open" => MethodSpec {
            post_only: true,
            args: vec![],
        },
        _ => return None,
    })
}

/// Arguments the reference pages require but the 2020 Swagger file marks optional.
fn also_required(method: &str) -> &'static [&'static str] {
    match method {
        // https://docs.slack.dev/reference/methods/conversations.history: channel required.
        "conversations.history" => &["channel"],
        // https://docs.slack.dev/reference/methods/conversations.replies: channel, ts required.
        "conversations.replies" => &["channel", "ts"],
        _ => &[],
    }
}

pub fn method_spec(method: &str) -> Option<MethodSpec> {
    if let Some(s) = supplement(method) {
        return Some(s);
    }
    let path = spec().get("paths")?.get(format!("/{method}"))?;
    let (verb, op) = path.as_object()?.iter().next()?;
    let mut args: Vec<(String, bool)> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] != "token")
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["required"] == true,
            )
        })
        .collect();
    for req in also_required(method) {
        if let Some(a) = args.iter_mut().find(|a| a.0 == *req) {
            a.1 = true;
        }
    }
    Some(MethodSpec {
        post_only: verb == "post",
        args,
    })
}

/// Slack's arguments from the query string and the body, JSON-valued ones decoded.
pub fn parse_args(
    content_type: &str,
    query: &str,
    body: &[u8],
) -> Result<Map<String, Value>, &'static str> {
    let mut args = Map::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        args.insert(k.into_owned(), Value::String(v.into_owned()));
    }
    let ct = content_type.to_ascii_lowercase();
    if ct.starts_with("application/json") {
        if !body.is_empty() {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(m)) => args.extend(m),
                _ => return Err("invalid_json"),
            }
        }
    } else if ct.starts_with("application/x-www-form-urlencoded") || ct.is_empty() {
        for (k, v) in url::form_urlencoded::parse(body) {
            args.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    } else if !body.is_empty() {
        return Err("invalid_form_data");
    }
    Ok(args)
}

/// A JSON-valued argument (`blocks`, `view`, `files`, `metadata`) sent as an object/array or as
/// a JSON string, as Slack takes both.
pub fn json_arg(args: &Map<String, Value>, name: &str) -> Option<Result<Value, ()>> {
    match args.get(name)? {
        Value::String(s) => Some(serde_json::from_str(s).map_err(|_| ())),
        Value::Null => None,
        other => Some(Ok(other.clone())),
    }
}

fn present(args: &Map<String, Value>, name: &str) -> bool {
    match args.get(name) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

fn len(v: &Value) -> usize {
    v.as_str().map(|s| s.chars().count()).unwrap_or(0)
}

/// Checks one Web API call. `http` is the request's verb.
pub fn check_call(method: &str, http: &str, args: &Map<String, Value>) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(spec) = method_spec(method) else {
        return vec![Finding::refused(
            "unknown_method",
            "",
            format!("{method} is not a Web API method"),
        )];
    };
    if http == "GET" && spec.post_only {
        // Slack's Web API takes query-string arguments for every method (WEB_API: "Pass
        // arguments as GET querystring parameters, POST parameters…"), and the older method
        // page even listed GET for files.getUploadURLExternal, so Slack answers such a call;
        // the method's current reference page lists POST only, so it is flagged, not refused.
        out.push(Finding::warning(
            "(HTTP verb)",
            format!("{method} sent as GET; its reference page documents POST ({WEB_API})"),
        ));
    }
    for (name, required) in &spec.args {
        if *required && !present(args, name) {
            let error = match (method, name.as_str()) {
                ("chat.postMessage" | "chat.update" | "chat.postEphemeral", "channel") => {
                    "channel_not_found"
                }
                ("chat.update", "ts") => "message_not_found",
                ("conversations.history" | "conversations.replies", "channel") => {
                    "channel_not_found"
                }
                ("conversations.replies", "ts") => "thread_not_found",
                _ => "invalid_arguments",
            };
            out.push(Finding::refused(
                error,
                format!("/{name}"),
                format!("missing required field: {name}"),
            ));
        }
    }
    match method {
        "chat.postMessage" | "chat.update" | "chat.postEphemeral" => {
            check_message(args, true, &mut out)
        }
        "views.open" | "views.update" | "views.push" => match json_arg(args, "view") {
            Some(Ok(view)) => check_view(&view, &mut out),
            Some(Err(())) => out.push(Finding::refused(
                "invalid_arguments",
                "/view",
                "view is not valid JSON",
            )),
            None => {}
        },
        "files.getUploadURLExternal" => {
            let length_ok = match args.get("length") {
                Some(Value::Number(n)) => n.as_u64().is_some(),
                Some(Value::String(s)) => s.parse::<u64>().is_ok(),
                _ => true,
            };
            if !length_ok {
                out.push(Finding::refused(
                    "invalid_arguments",
                    "/length",
                    "length must be an integer",
                ));
            }
            // GET_UPLOAD_URL errors: alt_txt_too_large "longer than the limit of 1000 character".
            if let Some(alt) = args.get("alt_txt") {
                if len(alt) > 1000 {
                    out.push(too_long("alt_txt_too_large", "/alt_txt", 1000, len(alt)));
                }
            }
        }
        "files.completeUploadExternal" => {
            match json_arg(args, "files") {
                Some(Ok(Value::Array(files))) if !files.is_empty() => {
                    for (i, f) in files.iter().enumerate() {
                        if f["id"].as_str().unwrap_or_default().is_empty() {
                            out.push(Finding::refused(
                                "invalid_arguments",
                                format!("/files/{i}/id"),
                                "missing required field: id",
                            ));
                        }
                    }
                }
                Some(_) => out.push(Finding::refused(
                    "invalid_arguments",
                    "/files",
                    "files must be a JSON array of {id, title}",
                )),
                None => {}
            }
            check_message(args, false, &mut out);
        }
        _ => {}
    }
    out
}

/// A message payload sent to a `response_url` (no token, no channel).
pub fn check_response_url(args: &Map<String, Value>) -> Vec<Finding> {
    let mut out = Vec::new();
    let only_delete = args.get("delete_original") == Some(&Value::Bool(true));
    if !only_delete {
        check_message(args, true, &mut out);
    }
    out
}

/// The daemon's immediate HTTP answer to Slack (slash command or interaction): a message, or
/// a `response_action` with a view, checked as Slack checks them.
pub fn check_immediate_answer(body: &Value) -> Vec<Finding> {
    let mut out = Vec::new();
    match body["response_action"].as_str() {
        Some("update") | Some("push") => check_view(&body["view"], &mut out),
        Some(_) => {}
        None => {
            if let Some(m) = body.as_object() {
                out = check_response_url(m);
            }
        }
    }
    out
}

/// `text` and `blocks` of a message.
fn check_message(args: &Map<String, Value>, wants_text: bool, out: &mut Vec<Finding>) {
    let text = args.get("text").map(len).unwrap_or(0);
    // POST_MESSAGE: "msg_too_long: Message text is too long"; text is truncated past 40,000.
    if text > 40_000 {
        out.push(
            Finding::refused(
                "msg_too_long",
                "/text",
                "must be less than 40001 characters",
            )
            .with_detail(format!("is {text} characters")),
        );
    }
    let blocks = match json_arg(args, "blocks") {
        None => None,
        Some(Ok(Value::Array(b))) => Some(b),
        Some(_) => {
            out.push(Finding::refused(
                "invalid_blocks_format",
                "/blocks",
                "blocks must be a JSON array",
            ));
            return;
        }
    };
    // https://docs.slack.dev/messaging/message-metadata: metadata = {event_type: string,
    // event_payload: object}; errors invalid_metadata_format / invalid_metadata_schema.
    match json_arg(args, "metadata") {
        Some(Ok(m)) => {
            let ok = m["event_type"].as_str().is_some_and(|t| !t.is_empty())
                && m["event_payload"].is_object();
            if !ok {
                out.push(Finding::refused(
                    "invalid_metadata_schema",
                    "/metadata",
                    "metadata needs a non-empty event_type and an event_payload object",
                ));
            }
        }
        Some(Err(())) => out.push(Finding::refused(
            "invalid_metadata_format",
            "/metadata",
            "metadata is not valid JSON",
        )),
        None => {}
    }
    let has_attachments = present(args, "attachments");
    if wants_text {
        match &blocks {
            // POST_MESSAGE: "no_text: No text provided" when none of text/blocks/attachments.
            None if text == 0 && !has_attachments => out.push(Finding::refused(
                "no_text",
                "/text",
                "no text, blocks or attachments",
            )),
            // POST_MESSAGE: with blocks, `text` is the notification/screen-reader fallback and
            // "highly recommended"; Slack accepts its absence, mentiondesk's contract wants it.
            Some(b) if !b.is_empty() && text == 0 => out.push(Finding::warning(
                "/text",
                format!("blocks without a fallback `text` ({POST_MESSAGE})"),
            )),
            _ => {}
        }
    }
    if let Some(b) = blocks {
        check_blocks(&b, "/blocks", 50, "invalid_blocks", out);
    }
}

fn check_view(view: &Value, out: &mut Vec<Finding>) {
    let e = "invalid_arguments";
    let ty = view["type"].as_str().unwrap_or_default();
    if ty != "modal" && ty != "home" {
        out.push(Finding::refused(
            e,
            "/view/type",
            "must be one of modal, home",
        ));
    }
    // VIEWS: title/submit/close plain_text, max 24 characters.
    for key in ["title", "submit", "close"] {
        let v = &view[key];
        if v.is_null() {
            if key == "title" && ty == "modal" {
                out.push(Finding::refused(
                    e,
                    "/view/title",
                    "missing required field: title",
                ));
            }
            continue;
        }
        check_text(v, &format!("/view/{key}"), 24, true, e, out);
    }
    // VIEWS: private_metadata max 3000, callback_id max 255, external_id max 255.
    for (key, max) in [
        ("private_metadata", 3000),
        ("callback_id", 255),
        ("external_id", 255),
    ] {
        let n = len(&view[key]);
        if n > max {
            out.push(too_long(e, &format!("/view/{key}"), max, n));
        }
    }
    let blocks = view["blocks"].as_array().cloned().unwrap_or_default();
    // VIEWS: submit is required when an input block is within the blocks array.
    if ty == "modal" && view["submit"].is_null() && blocks.iter().any(|b| b["type"] == "input") {
        out.push(Finding::refused(
            e,
            "/view/submit",
            "submit is required when the view has input blocks",
        ));
    }
    // BLOCKS: up to 100 blocks in modals or Home tabs.
    check_blocks(&blocks, "/view/blocks", 100, e, out);
}

fn too_long(error: &'static str, pointer: &str, max: usize, n: usize) -> Finding {
    Finding::refused(
        error,
        pointer,
        format!("must be less than {} characters", max + 1),
    )
    .with_detail(format!("is {n} characters"))
}

/// A text object: `{type: plain_text|mrkdwn, text}`; TEXT_OBJECT: text 1..=3000 unless the
/// containing field says less.
fn check_text(
    obj: &Value,
    pointer: &str,
    max: usize,
    plain_only: bool,
    error: &'static str,
    out: &mut Vec<Finding>,
) {
    let ty = obj["type"].as_str().unwrap_or_default();
    let ok_type = ty == "plain_text" || (!plain_only && ty == "mrkdwn");
    if !ok_type {
        out.push(Finding::refused(
            error,
            format!("{pointer}/type"),
            if plain_only {
                "must be plain_text".to_string()
            } else {
                "must be one of plain_text, mrkdwn".to_string()
            },
        ));
    }
    let n = len(&obj["text"]);
    if !obj["text"].is_string() || n == 0 {
        out.push(Finding::refused(
            error,
            format!("{pointer}/text"),
            "must be more than 0 characters",
        ));
    } else if n > max {
        out.push(too_long(error, &format!("{pointer}/text"), max, n));
    }
}

/// Block Kit blocks of a message (`max_blocks` 50) or view (100).
pub fn check_blocks(
    blocks: &[Value],
    base: &str,
    max_blocks: usize,
    error: &'static str,
    out: &mut Vec<Finding>,
) {
    // BLOCKS: "up to 50 blocks in each message, and 100 blocks in modals or Home tabs".
    if blocks.len() > max_blocks {
        out.push(
            Finding::refused(
                error,
                base,
                format!("no more than {max_blocks} items allowed"),
            )
            .with_detail(format!("has {} items", blocks.len())),
        );
    }
    let mut block_ids = HashSet::new();
    let mut action_ids = HashSet::new();
    // In a view, action_ids need only be unique within their block (input state is keyed by
    // block_id, then action_id); in a message, per message.
    let per_block = max_blocks == 100;
    for (i, b) in blocks.iter().enumerate() {
        let p = format!("{base}/{i}");
        if per_block {
            action_ids.clear();
        }
        // BLOCKS: block_id max 255 characters, unique for each message.
        if let Some(id) = b["block_id"].as_str() {
            if id.chars().count() > 255 {
                out.push(too_long(
                    error,
                    &format!("{p}/block_id"),
                    255,
                    id.chars().count(),
                ));
            }
            if !block_ids.insert(id.to_string()) {
                out.push(Finding::refused(
                    error,
                    format!("{p}/block_id"),
                    format!("duplicate block_id {id:?}"),
                ));
            }
        }
        let mut element = |el: &Value, ep: String, out: &mut Vec<Finding>| {
            if let Some(a) = el["action_id"].as_str() {
                if a.chars().count() > 255 {
                    out.push(too_long(
                        error,
                        &format!("{ep}/action_id"),
                        255,
                        a.chars().count(),
                    ));
                }
                // BUTTON / PLAIN_TEXT_INPUT: action_id should be unique; DESIGN.md and Slack
                // (`invalid_blocks` on duplicates) want it unique per message.
                if !action_ids.insert(a.to_string()) {
                    out.push(Finding::refused(
                        error,
                        format!("{ep}/action_id"),
                        format!("duplicate action_id {a:?}"),
                    ));
                }
            }
            check_element(el, &ep, error, out);
        };
        match b["type"].as_str().unwrap_or_default() {
            "section" => {
                // SECTION: text 1..=3000 characters; fields max 10 items, each max 2000;
                // one of text or fields required.
                let has_text = !b["text"].is_null();
                let fields = b["fields"].as_array();
                if !has_text && fields.is_none() {
                    out.push(Finding::refused(
                        error,
                        &p,
                        "must define either `text` or `fields`",
                    ));
                }
                if has_text {
                    check_text(&b["text"], &format!("{p}/text"), 3000, false, error, out);
                }
                if let Some(fields) = fields {
                    if fields.len() > 10 {
                        out.push(
                            Finding::refused(
                                error,
                                format!("{p}/fields"),
                                "no more than 10 items allowed",
                            )
                            .with_detail(format!("has {} items", fields.len())),
                        );
                    }
                    for (j, f) in fields.iter().enumerate() {
                        check_text(f, &format!("{p}/fields/{j}"), 2000, false, error, out);
                    }
                }
                if !b["accessory"].is_null() {
                    element(&b["accessory"], format!("{p}/accessory"), out);
                }
            }
            // HEADER: plain_text, max 150 characters.
            "header" => check_text(&b["text"], &format!("{p}/text"), 150, true, error, out),
            "context" => {
                // CONTEXT: elements max 10 (images and text objects).
                let els = b["elements"].as_array().cloned().unwrap_or_default();
                if els.is_empty() || els.len() > 10 {
                    out.push(Finding::refused(
                        error,
                        format!("{p}/elements"),
                        format!("must have 1 to 10 items (is {})", els.len()),
                    ));
                }
                for (j, el) in els.iter().enumerate() {
                    if el["type"] != "image" {
                        check_text(el, &format!("{p}/elements/{j}"), 3000, false, error, out);
                    }
                }
            }
            "actions" => {
                // ACTIONS: elements max 25.
                let els = b["elements"].as_array().cloned().unwrap_or_default();
                if els.is_empty() || els.len() > 25 {
                    out.push(Finding::refused(
                        error,
                        format!("{p}/elements"),
                        format!("must have 1 to 25 items (is {})", els.len()),
                    ));
                }
                for (j, el) in els.iter().enumerate() {
                    element(el, format!("{p}/elements/{j}"), out);
                }
            }
            "input" => {
                // INPUT: label plain_text max 2000, hint max 2000, element required.
                check_text(&b["label"], &format!("{p}/label"), 2000, true, error, out);
                if !b["hint"].is_null() {
                    check_text(&b["hint"], &format!("{p}/hint"), 2000, true, error, out);
                }
                if b["element"].is_null() {
                    out.push(Finding::refused(
                        error,
                        format!("{p}/element"),
                        "missing required field: element",
                    ));
                } else {
                    element(&b["element"], format!("{p}/element"), out);
                }
            }
            "image" => {
                // IMAGE: image_url max 3000, alt_text max 2000, title max 2000.
                let n = len(&b["image_url"]);
                if n > 3000 {
                    out.push(too_long(error, &format!("{p}/image_url"), 3000, n));
                }
                let n = len(&b["alt_text"]);
                if n == 0 || n > 2000 {
                    out.push(Finding::refused(
                        error,
                        format!("{p}/alt_text"),
                        format!("must be 1 to 2000 characters (is {n})"),
                    ));
                }
            }
            "divider" | "rich_text" | "file" | "video" | "markdown" => {}
            other => out.push(Finding::refused(
                error,
                format!("{p}/type"),
                format!("unsupported block type {other:?}"),
            )),
        }
    }
}

fn check_element(el: &Value, p: &str, error: &'static str, out: &mut Vec<Finding>) {
    match el["type"].as_str().unwrap_or_default() {
        "button" => {
            // BUTTON: text plain_text max 75, value max 2000, url max 3000.
            check_text(&el["text"], &format!("{p}/text"), 75, true, error, out);
            let n = len(&el["value"]);
            if n > 2000 {
                out.push(too_long(error, &format!("{p}/value"), 2000, n));
            }
            let n = len(&el["url"]);
            if n > 3000 {
                out.push(too_long(error, &format!("{p}/url"), 3000, n));
            }
            if let Some(style) = el["style"].as_str() {
                if style != "primary" && style != "danger" {
                    out.push(Finding::refused(
                        error,
                        format!("{p}/style"),
                        "must be one of primary, danger",
                    ));
                }
            }
        }
        "plain_text_input" => {
            // PLAIN_TEXT_INPUT: min_length 0..=3000, max_length 1..=3000, placeholder max 150.
            for (key, lo) in [("min_length", 0), ("max_length", 1)] {
                if let Some(v) = el.get(key).filter(|v| !v.is_null()) {
                    match v.as_u64() {
                        Some(n) if (lo..=3000).contains(&n) => {}
                        _ => out.push(Finding::refused(
                            error,
                            format!("{p}/{key}"),
                            format!("must be between {lo} and 3000 (is {v})"),
                        )),
                    }
                }
            }
            if !el["placeholder"].is_null() {
                check_text(
                    &el["placeholder"],
                    &format!("{p}/placeholder"),
                    150,
                    true,
                    error,
                    out,
                );
            }
            // Not a Slack rule: Slack accepts an input without max_length and then takes up
            // to 3,000 characters, which mentiondesk echoes into section text that must stay
            // within 3,000 with its own prefix (issue 11 defect 7). Flagged so the suite fails.
            if el["max_length"].is_null() {
                out.push(Finding::warning(
                    format!("{p}/max_length"),
                    format!("plain_text_input without max_length: a 3,000-character answer will not fit where it is shown ({PLAIN_TEXT_INPUT})"),
                ));
            }
        }
        _ => {}
    }
}

/// `chat.update` with a `block_id` that the message already carries: Slack takes it, but
/// BLOCKS says "If a message is updated, use a new block_id" (clients keep state per
/// block_id), so this is a warning that still fails the suite.
pub fn check_update_block_ids(new_blocks: &Value, old_blocks: &Value) -> Vec<Finding> {
    let old: HashSet<&str> = old_blocks
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["block_id"].as_str())
        .collect();
    new_blocks
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, b)| {
            let id = b["block_id"].as_str()?;
            old.contains(id).then(|| {
                Finding::warning(
                    format!("/blocks/{i}/block_id"),
                    format!("block_id {id:?} reused on chat.update; use a new block_id ({BLOCKS})"),
                )
            })
        })
        .collect()
}

/// Slack's Web API answer to a refused call (HTTP 200, `ok: false`).
pub fn web_api_refusal(findings: &[Finding]) -> Option<Value> {
    let first = findings.iter().find(|f| f.severity == Severity::Refused)?;
    let same: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity == Severity::Refused && f.error == first.error)
        .collect();
    let mut body = json!({"ok": false, "error": first.error});
    match first.error {
        "invalid_blocks" => {
            body["errors"] = json!(same.iter().map(|f| f.slack_text()).collect::<Vec<_>>());
            body["response_metadata"] = json!({"messages": same.iter().map(|f| format!("[ERROR] {}", f.slack_text())).collect::<Vec<_>>()});
        }
        "invalid_arguments" => {
            body["response_metadata"] = json!({"messages": same.iter().map(|f| format!("[ERROR] {}", f.slack_text())).collect::<Vec<_>>()});
        }
        _ => {}
    }
    Some(body)
}
