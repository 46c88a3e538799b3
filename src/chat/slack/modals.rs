//! The desk's Block Kit modals (Resolve, Not relevant) and the names their submissions come
//! back under. It builds views only; opening one is `SlackPlatform::open_modal`, reading a
//! submission is the server's.

use super::MODAL_TITLE_MAX;
use crate::chat::escape::truncate;
use crate::chat::text::{NOTE_INPUT_MAX, REASON_INPUT_MAX};
use crate::model::AlertId;
use serde_json::{json, Value};

/// `callback_id` of the Resolve modal.
pub(crate) const VIEW_RESOLVE: &str = "desk_resolve";
/// `callback_id` of the Not relevant modal.
pub(crate) const VIEW_IGNORE: &str = "desk_ignore";

/// A modal title within Slack's 24 characters (an alert id of ten digits or more is cut).
fn modal_title(s: String) -> String {
    truncate(&s, MODAL_TITLE_MAX)
}

/// The Resolve modal: an optional note (block and action `note`).
pub(crate) fn resolve_modal(id: AlertId) -> Value {
    json!({
        "type": "modal",
        "callback_id": VIEW_RESOLVE,
        "private_metadata": id.to_string(),
        "title": {"type": "plain_text", "text": modal_title(format!("Resolve #{id}"))},
        "submit": {"type": "plain_text", "text": "Resolve"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [{
            "type": "input",
            "block_id": "note",
            "optional": true,
            "label": {"type": "plain_text", "text": "How was it handled? (optional)"},
            "element": {"type": "plain_text_input", "action_id": "note", "multiline": true,
                        "max_length": NOTE_INPUT_MAX,
                        "placeholder": {"type": "plain_text", "text": "replied publicly"}}
        }]
    })
}

/// The Not relevant modal: an optional reason (`reason`) and what to mute (`mute`, checkboxes
/// `author` and `site`).
pub(crate) fn ignore_modal(id: AlertId) -> Value {
    json!({
        "type": "modal",
        "callback_id": VIEW_IGNORE,
        "private_metadata": id.to_string(),
        "title": {"type": "plain_text", "text": modal_title(format!("Not relevant: #{id}"))},
        "submit": {"type": "plain_text", "text": "Mark not relevant"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "optional": true,
                "label": {"type": "plain_text", "text": "Why? (optional)"},
                "element": {"type": "plain_text_input", "action_id": "reason",
                            "max_length": REASON_INPUT_MAX}
            },
            {
                "type": "input",
                "block_id": "mute",
                "optional": true,
                "label": {"type": "plain_text", "text": "From now on"},
                "element": {"type": "checkboxes", "action_id": "mute", "options": [
                    {"text": {"type": "plain_text", "text": "Mute this author"}, "value": "author"},
                    {"text": {"type": "plain_text", "text": "Mute this site"}, "value": "site"}
                ]}
            }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::slack::INPUT_MAX_LENGTH_MAX;

    #[test]
    fn modals_stay_within_slack_limits_and_cap_typed_text() {
        for v in [
            resolve_modal(AlertId(u64::MAX)),
            ignore_modal(AlertId(u64::MAX)),
        ] {
            let title = v["title"]["text"].as_str().unwrap();
            assert!(title.chars().count() <= MODAL_TITLE_MAX, "{title}");
            for b in v["blocks"].as_array().unwrap() {
                if b["element"]["type"] == "plain_text_input" {
                    let max = b["element"]["max_length"].as_u64().expect("max_length set");
                    assert!((1..=INPUT_MAX_LENGTH_MAX as u64).contains(&max), "{b}");
                }
            }
        }
        assert_eq!(
            resolve_modal(AlertId(7))["blocks"][0]["element"]["max_length"],
            NOTE_INPUT_MAX
        );
    }

    #[test]
    fn modals_are_valid_block_kit_for_the_sdk() {
        for v in [resolve_modal(AlertId(3)), ignore_modal(AlertId(3))] {
            let parsed: Result<slack_morphism::prelude::SlackView, _> =
                serde_json::from_value(v.clone());
            assert!(parsed.is_ok(), "{v}: {parsed:?}");
        }
    }
}
