//! The strict fakes' spec checks and documented limits for Discord and Slack, at the limit
//! and one past it, and the errors worded as each platform words them.

use super::*;

// ------------------------------------------------------------------ Discord spec and limits

#[test]
fn discord_message_limits_pass_at_the_limit_and_fail_over_it() {
    let op = ops::CREATE_MESSAGE;
    discord_limit(op, 2000, "content", |n| json!({"content": s(n)}));
    discord_limit(
        op,
        4096,
        "embeds.0.description",
        |n| json!({"embeds": [{"description": s(n)}]}),
    );
    discord_limit(
        op,
        2048,
        "embeds.0.url",
        |n| json!({"embeds": [{"title": "t", "url": format!("https://e.com/{}", s(n - 14))}]}),
    );
    discord_limit(
        op,
        256,
        "embeds.0.title",
        |n| json!({"embeds": [{"title": s(n)}]}),
    );
    discord_limit(
        op,
        256,
        "embeds.0.fields.0.name",
        |n| json!({"embeds": [{"fields": [{"name": s(n), "value": "v"}]}]}),
    );
    discord_limit(
        op,
        1024,
        "embeds.0.fields.0.value",
        |n| json!({"embeds": [{"fields": [{"name": "n", "value": s(n)}]}]}),
    );
    discord_limit(
        op,
        25,
        "embeds.0.fields",
        |n| json!({"embeds": [{"fields": (0..n).map(|_| json!({"name": "n", "value": "v"})).collect::<Vec<_>>()}]}),
    );
    discord_limit(
        op,
        2048,
        "embeds.0.footer.text",
        |n| json!({"embeds": [{"footer": {"text": s(n)}}]}),
    );
    discord_limit(
        op,
        256,
        "embeds.0.author.name",
        |n| json!({"embeds": [{"author": {"name": s(n)}}]}),
    );
    discord_limit(
        op,
        10,
        "embeds",
        |n| json!({"embeds": (0..n).map(|_| json!({"title": "t"})).collect::<Vec<_>>()}),
    );
    // All embeds together: 2 × 3,000 description = 6,000, plus one title character over.
    discord_limit(
        op,
        6000,
        "embeds",
        |n| json!({"embeds": [{"description": s(3000)}, {"description": s(3000), "title": s(n - 6000)}]}),
    );
    discord_limit(
        op,
        100,
        "components.0.components.0.custom_id",
        |n| json!({"components": [{"type": 1, "components": [button(&s(n), "B")]}]}),
    );
    discord_limit(
        op,
        80,
        "components.0.components.0.label",
        |n| json!({"components": [{"type": 1, "components": [button("c", &s(n))]}]}),
    );
    discord_limit(
        op,
        5,
        "components.0.components",
        |n| json!({"components": [row(n)]}),
    );
    discord_limit(
        op,
        5,
        "components",
        |n| json!({"components": (0..n).map(|r| json!({"type": 1, "components": [button(&format!("r{r}"), "B")]})).collect::<Vec<_>>()}),
    );
    discord_limit(op, 25, "nonce", |n| json!({"content": "c", "nonce": s(n)}));
    discord_limit(ops::START_THREAD, 100, "name", |n| json!({"name": s(n)}));
    discord_limit(
        ops::EDIT_MESSAGE,
        2000,
        "content",
        |n| json!({"content": s(n)}),
    );
    discord_limit(
        ops::EDIT_ORIGINAL,
        2000,
        "content",
        |n| json!({"content": s(n)}),
    );
}

#[test]
fn discord_modal_limits_pass_at_the_limit_and_fail_over_it() {
    let op = ops::CALLBACK;
    discord_limit(op, 45, "data.title", |n| modal(&s(n), "Reason", "", 100));
    discord_limit(op, 45, "data.components.0.components.0.label", |n| {
        modal("T", &s(n), "", 100)
    });
    discord_limit(op, 100, "data.components.0.components.0.placeholder", |n| {
        modal("T", "L", &s(n), 100)
    });
    discord_limit(op, 4000, "data.components.0.components.0.max_length", |n| {
        modal("T", "L", "", n as u64)
    });
    discord_limit(
        op,
        2000,
        "data.content",
        |n| json!({"type": 4, "data": {"content": s(n)}}),
    );
}

#[test]
fn discord_errors_are_answered_as_discord_words_them() {
    // The 49-character "Not relevant" label of issue 11, defect 8.
    let errors = check_body(ops::CALLBACK, &modal("Not relevant", &s(49), "", 200));
    let body = invalid_form_body(&errors);
    assert_eq!(
        body,
        json!({"code": 50035, "message": "Invalid Form Body", "errors": {"data": {"components": {"0": {"components": {"0": {"label": {"_errors": [{"code": "BASE_TYPE_BAD_LENGTH", "message": "Must be between 1 and 45 in length."}]}}}}}}}})
    );
    let long_url = format!("https://example.com/{}", s(2100));
    let errors = check_body(
        ops::CREATE_MESSAGE,
        &json!({"embeds": [{"title": "t", "url": long_url}]}),
    );
    assert_eq!(
        invalid_form_body(&errors)["errors"],
        json!({"embeds": {"0": {"url": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2048 or fewer in length."}]}}}})
    );
    // A wrong kind of value, and a missing required field.
    let errors = discord_errors(ops::START_THREAD, &json!({"auto_archive_duration": 60}));
    assert_eq!(errors, vec![("name".to_string(), "BASE_TYPE_REQUIRED")]);
    let errors = discord_errors(ops::CREATE_MESSAGE, &json!({"content": 5}));
    assert_eq!(errors, vec![("content".to_string(), "BASE_TYPE_STRING")]);
    // A component type no branch stands for.
    let errors = discord_errors(ops::CREATE_MESSAGE, &json!({"components": [{"type": 99}]}));
    assert_eq!(
        errors,
        vec![("components.0".to_string(), "UNION_TYPE_CHOICES")]
    );
}

/// Discord refuses a message whose components share a `custom_id` (components reference:
/// "Multiple components on the same message must not share the same custom_id"), so the
/// fake does too; distinct ids over five rows of five pass.
#[test]
fn discord_refuses_a_repeated_custom_id_in_one_message() {
    let button = |id: &str| button(id, "Promote");
    let rows: Vec<Value> = (0..5)
        .map(|r| json!({"type": 1, "components": (0..5).map(|b| button(&format!("desk_promote:{}", r * 5 + b))).collect::<Vec<_>>()}))
        .collect();
    let ok = json!({"type": 4, "data": {"content": "held", "components": rows}});
    assert_eq!(discord_errors(ops::CALLBACK, &ok), vec![]);
    let twice = json!({"content": "held", "components": [
        {"type": 1, "components": [button("desk_promote:1")]},
        {"type": 1, "components": [button("desk_promote:2"), button("desk_promote:1")]},
    ]});
    assert_eq!(
        discord_errors(ops::CREATE_MESSAGE, &twice),
        vec![(
            "components.1.components.1.custom_id".to_string(),
            "COMPONENT_CUSTOM_ID_DUPLICATED"
        )]
    );
}

#[test]
fn what_serenity_sends_for_an_alert_passes() {
    // Integer attachment ids and snowflakes as strings or numbers are accepted, as by Discord.
    let body = json!({
        "content": "", "tts": false, "nonce": "alert-1", "enforce_nonce": true,
        "allowed_mentions": {"parse": []},
        "embeds": [{"title": "acme", "description": "d", "url": "https://example.com/a",
            "color": 15158332, "footer": {"text": "#1"}, "fields": [{"name": "n", "value": "v", "inline": true}]}],
        "components": [row(4)],
        "attachments": [{"id": 0, "filename": "chart.png"}],
        "message_reference": {"message_id": "123", "fail_if_not_exists": false},
    });
    assert_eq!(discord_errors(ops::CREATE_MESSAGE, &body), vec![]);
    let commands = json!([{"name": "desk", "description": "The desk", "type": 1,
        "options": [{"type": 3, "name": "text", "description": "what to do", "required": false}]}]);
    assert_eq!(discord_errors(ops::PUT_GUILD_COMMANDS, &commands), vec![]);
    assert_eq!(
        discord_errors(
            ops::PUT_GUILD_COMMANDS,
            &json!([{"name": s(33), "description": "d", "type": 1}])
        ),
        vec![("0.name".to_string(), "BASE_TYPE_BAD_LENGTH")]
    );
}

#[test]
fn the_validator_knows_every_keyword_of_the_excerpt() {
    let spec = common::discord_spec::spec();
    let mut used = std::collections::BTreeSet::new();
    let responses = common::discord_spec::responses();
    for schema in spec["components"]["schemas"]
        .as_object()
        .unwrap()
        .values()
        .chain(
            responses["components"]["schemas"]
                .as_object()
                .unwrap()
                .values(),
        )
    {
        keywords_in(schema, &mut used);
    }
    assert_eq!(
        responses["x-excerpt"]["commit"],
        spec["x-excerpt"]["commit"]
    );
    let unknown: Vec<&String> = used
        .iter()
        .filter(|k| {
            !ASSERTION_KEYWORDS.contains(&k.as_str()) && !ANNOTATION_KEYWORDS.contains(&k.as_str())
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "keywords the validator ignores: {unknown:?}"
    );
    assert_eq!(
        spec["x-excerpt"]["commit"],
        "74fda0fad044407ea280043a03ffc9bc64c4e49e"
    );
    assert!(spec["x-excerpt"]["license"]
        .as_str()
        .unwrap()
        .starts_with("MIT License"));
}

// ------------------------------------------------------------------ Slack spec and limits

#[test]
fn slack_message_limits_pass_at_the_limit_and_fail_over_it() {
    let m = "chat.postMessage";
    slack_limit(m, 3000, "invalid_blocks", "/blocks/0/text/text", |n| {
        post(json!([section(&s(n))]))
    });
    slack_limit(m, 50, "invalid_blocks", "/blocks", |n| {
        post(json!((0..n).map(|_| section("s")).collect::<Vec<_>>()))
    });
    slack_limit(
        m,
        2000,
        "invalid_blocks",
        "/blocks/0/elements/0/value",
        |n| post(json!([actions(vec![sbutton("a", "A", &s(n))])])),
    );
    slack_limit(
        m,
        75,
        "invalid_blocks",
        "/blocks/0/elements/0/text/text",
        |n| post(json!([actions(vec![sbutton("a", &s(n), "v")])])),
    );
    slack_limit(
        m,
        255,
        "invalid_blocks",
        "/blocks/0/elements/0/action_id",
        |n| post(json!([actions(vec![sbutton(&s(n), "A", "v")])])),
    );
    slack_limit(m, 255, "invalid_blocks", "/blocks/0/block_id", |n| {
        post(json!([{"type": "divider", "block_id": s(n)}]))
    });
    slack_limit(m, 150, "invalid_blocks", "/blocks/0/text/text", |n| {
        post(json!([{"type": "header", "text": {"type": "plain_text", "text": s(n)}}]))
    });
    slack_limit(m, 10, "invalid_blocks", "/blocks/0/elements", |n| {
        post(
            json!([{"type": "context", "elements": (0..n).map(|_| json!({"type": "mrkdwn", "text": "c"})).collect::<Vec<_>>()}]),
        )
    });
    slack_limit(m, 10, "invalid_blocks", "/blocks/0/fields", |n| {
        post(
            json!([{"type": "section", "fields": (0..n).map(|_| json!({"type": "mrkdwn", "text": "f"})).collect::<Vec<_>>()}]),
        )
    });
    slack_limit(m, 2000, "invalid_blocks", "/blocks/0/fields/0/text", |n| {
        post(json!([{"type": "section", "fields": [{"type": "mrkdwn", "text": s(n)}]}]))
    });
    slack_limit(m, 40_000, "msg_too_long", "/text", |n| {
        args(json!({"channel": "C0PRALERTS", "text": s(n)}))
    });
    slack_limit(
        "chat.update",
        3000,
        "invalid_blocks",
        "/blocks/0/text/text",
        |n| {
            args(
                json!({"channel": "C0PRALERTS", "ts": "1.2", "text": "t", "blocks": [section(&s(n))]}),
            )
        },
    );
}

#[test]
fn slack_requires_unique_ids_text_and_arguments() {
    let dup_action = post(json!([
        actions(vec![sbutton("claim", "A", "1")]),
        actions(vec![sbutton("claim", "B", "1")])
    ]));
    assert_eq!(
        refused(&check_call("chat.postMessage", "POST", &dup_action)),
        vec![(
            "invalid_blocks",
            "/blocks/1/elements/0/action_id".to_string()
        )]
    );
    let dup_block =
        post(json!([{"type": "divider", "block_id": "a"}, {"type": "divider", "block_id": "a"}]));
    assert_eq!(
        refused(&check_call("chat.postMessage", "POST", &dup_block)),
        vec![("invalid_blocks", "/blocks/1/block_id".to_string())]
    );
    let no_fallback = args(json!({"channel": "C0PRALERTS", "blocks": [section("s")]}));
    let f = check_call("chat.postMessage", "POST", &no_fallback);
    assert_eq!(
        (refused(&f), warnings(&f)),
        (vec![], vec!["/text".to_string()])
    );
    let meta = args(
        json!({"channel": "C0PRALERTS", "text": "t", "metadata": {"event_type": "alert", "event_payload": {"alert_id": "1"}}}),
    );
    assert!(check_call("chat.postMessage", "POST", &meta).is_empty());
    let bad_meta =
        args(json!({"channel": "C0PRALERTS", "text": "t", "metadata": {"event_payload": {}}}));
    assert_eq!(
        refused(&check_call("chat.postMessage", "POST", &bad_meta)),
        vec![("invalid_metadata_schema", "/metadata".to_string())]
    );
    let nothing = args(json!({"channel": "C0PRALERTS"}));
    assert_eq!(
        refused(&check_call("chat.postMessage", "POST", &nothing)),
        vec![("no_text", "/text".to_string())]
    );
    let no_channel = args(json!({"text": "t"}));
    assert_eq!(
        refused(&check_call("chat.postMessage", "POST", &no_channel)),
        vec![("channel_not_found", "/channel".to_string())]
    );
    // Blocks sent form-encoded as a JSON string are read as Slack reads them.
    let form = slack_spec::parse_args(
        "application/x-www-form-urlencoded",
        "",
        format!(
            "channel=C0PRALERTS&text=t&blocks={}",
            url_encode(&json!([section(&s(3001))]).to_string())
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        refused(&check_call("chat.postMessage", "POST", &form)),
        vec![("invalid_blocks", "/blocks/0/text/text".to_string())]
    );
}

#[test]
fn slack_modal_limits_pass_at_the_limit_and_fail_over_it() {
    let m = "views.open";
    slack_limit(m, 24, "invalid_arguments", "/view/title/text", |n| {
        view(resolve_modal(&s(n), "Note", 500, 1))
    });
    slack_limit(
        m,
        2000,
        "invalid_arguments",
        "/view/blocks/0/label/text",
        |n| view(resolve_modal("Resolve", &s(n), 500, 1)),
    );
    slack_limit(
        m,
        3000,
        "invalid_arguments",
        "/view/blocks/0/element/max_length",
        |n| view(resolve_modal("Resolve", "Note", n, 1)),
    );
    slack_limit(m, 100, "invalid_arguments", "/view/blocks", |n| {
        view(resolve_modal("Resolve", "Note", 500, n))
    });
    for (key, limit) in [("submit", 24), ("close", 24)] {
        slack_limit(
            m,
            limit,
            "invalid_arguments",
            &format!("/view/{key}/text"),
            |n| {
                let mut v = resolve_modal("Resolve", "Note", 500, 1);
                v[key]["text"] = json!(s(n));
                view(v)
            },
        );
    }
    for (key, limit) in [("private_metadata", 3000), ("callback_id", 255)] {
        slack_limit(
            m,
            limit,
            "invalid_arguments",
            &format!("/view/{key}"),
            |n| {
                let mut v = resolve_modal("Resolve", "Note", 500, 1);
                v[key] = json!(s(n));
                view(v)
            },
        );
    }
    // An input without max_length is accepted by Slack but flagged (issue 11, defect 7).
    let mut v = resolve_modal("Resolve", "Note", 500, 1);
    v["blocks"][0]["element"]
        .as_object_mut()
        .unwrap()
        .remove("max_length");
    let f = check_call(m, "POST", &view(v));
    assert_eq!(
        (refused(&f), warnings(&f)),
        (
            vec![],
            vec!["/view/blocks/0/element/max_length".to_string()]
        )
    );
}

#[test]
fn slack_upload_methods_follow_their_reference_pages() {
    let good = args(json!({"filename": "digest.png", "length": "1234", "alt_txt": "chart"}));
    assert!(check_call("files.getUploadURLExternal", "POST", &good).is_empty());
    let f = check_call("files.getUploadURLExternal", "GET", &good);
    assert_eq!(
        (refused(&f), warnings(&f)),
        (vec![], vec!["(HTTP verb)".to_string()]),
        "GET is answered but flagged"
    );
    let no_length = args(json!({"filename": "digest.png"}));
    assert_eq!(
        refused(&check_call(
            "files.getUploadURLExternal",
            "POST",
            &no_length
        )),
        vec![("invalid_arguments", "/length".to_string())]
    );
    let complete = args(
        json!({"files": [{"id": "F1", "title": "Digest"}], "channel_id": "C0PRALERTS", "blocks": [section("s")]}),
    );
    assert!(check_call("files.completeUploadExternal", "POST", &complete).is_empty());
    let bad = args(json!({"files": "[]"}));
    assert_eq!(
        refused(&check_call("files.completeUploadExternal", "POST", &bad)),
        vec![("invalid_arguments", "/files".to_string())]
    );
}

#[test]
fn slack_update_with_the_old_block_ids_is_flagged() {
    let old = json!([{"type": "section", "block_id": "state-1", "text": {"type": "mrkdwn", "text": "open"}}]);
    let same = json!([{"type": "section", "block_id": "state-1", "text": {"type": "mrkdwn", "text": "claimed"}}]);
    let fresh = json!([{"type": "section", "block_id": "state-1-v2", "text": {"type": "mrkdwn", "text": "claimed"}}]);
    assert_eq!(
        warnings(&check_update_block_ids(&same, &old)),
        vec!["/blocks/0/block_id".to_string()]
    );
    assert!(check_update_block_ids(&fresh, &old).is_empty());
}

#[test]
fn slack_refusals_are_worded_as_slack_words_them() {
    let f = check_call(
        "chat.postMessage",
        "POST",
        &post(json!([section(&s(3001))])),
    );
    assert_eq!(
        web_api_refusal(&f).unwrap(),
        json!({"ok": false, "error": "invalid_blocks",
            "errors": ["must be less than 3001 characters [json-pointer:/blocks/0/text/text]"],
            "response_metadata": {"messages": ["[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]"]}})
    );
    let f = check_call(
        "chat.postMessage",
        "POST",
        &args(json!({"channel": "C0PRALERTS", "text": s(40_001)})),
    );
    assert_eq!(
        web_api_refusal(&f).unwrap(),
        json!({"ok": false, "error": "msg_too_long"})
    );
}
