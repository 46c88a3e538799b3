//! Discord interaction responses: private answers, the deferral, PONG, the desk's modals and
//! the snooze choices, as the JSON the interactions endpoint answers with (and the gateway
//! posts to the callback). Types come from serenity's enums, never bare numbers. It builds
//! bodies only; what to answer is the desk's, when to answer the server's.

use super::{
    note_payload, CUSTOM_ID_MAX, MODAL_TITLE_MAX, TEXT_INPUT_LABEL_MAX, TEXT_INPUT_PLACEHOLDER_MAX,
    TEXT_INPUT_VALUE_MAX,
};
use crate::chat::buttons;
use crate::chat::escape::truncate;
use crate::chat::text::{NOTE_INPUT_MAX, REASON_INPUT_MAX};
use crate::model::{AlertId, Note};
use serde_json::{json, Value};
use serenity::model::application::InteractionResponseFlags;
use serenity::model::application::{ButtonStyle, ComponentType, InputTextStyle};

/// Discord's interaction callback types (interactions/receiving-and-responding, "Interaction
/// Callback Type"); serenity 0.12 has builders for them but no public enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Callback {
    Pong = 1,
    ChannelMessageWithSource = 4,
    DeferredChannelMessageWithSource = 5,
    Modal = 9,
}

impl Callback {
    fn code(self) -> u8 {
        self as u8
    }
}

/// Discord's "only you can see this" message flag.
fn ephemeral() -> u64 {
    InteractionResponseFlags::EPHEMERAL.bits()
}

fn component(kind: ComponentType) -> u8 {
    u8::from(kind)
}

/// The answer to PING.
pub(crate) fn pong() -> Value {
    json!({"type": Callback::Pong.code()})
}

/// A private answer; a long one (`/desk show`) continues in embeds within Discord's limits.
pub(crate) fn answer(note: &Note) -> Value {
    let mut data = note_payload(note);
    data["flags"] = ephemeral().into();
    json!({"type": Callback::ChannelMessageWithSource.code(), "data": data})
}

/// "Thinking…", replaced by the answer once it is ready (`DiscordPlatform::edit_original`).
pub(crate) fn deferred() -> Value {
    json!({"type": Callback::DeferredChannelMessageWithSource.code(), "data": {"flags": ephemeral()}})
}

/// The snooze choices for an alert, as private buttons.
pub(crate) fn snooze_choices(id: AlertId) -> Value {
    let b = |custom: &str, label: &str| {
        json!({"type": component(ComponentType::Button), "style": u8::from(ButtonStyle::Secondary),
               "custom_id": format!("{custom}:{id}"), "label": label})
    };
    json!({"type": Callback::ChannelMessageWithSource.code(), "data": {
        "content": format!("Snooze #{id} until…"), "flags": ephemeral(), "allowed_mentions": {"parse": []},
        "components": [{"type": component(ComponentType::ActionRow),
                        "components": buttons::SNOOZE_CHOICES.iter().map(|(c, l)| b(c, l)).collect::<Vec<_>>()}]}})
}

/// One text input in its action row, every text within Discord's modal limits.
fn text_input(
    custom_id: &str,
    label: &str,
    placeholder: Option<&str>,
    long: bool,
    max_length: usize,
) -> Value {
    let style = if long {
        InputTextStyle::Paragraph
    } else {
        InputTextStyle::Short
    };
    let mut input = json!({
        "type": component(ComponentType::InputText),
        "custom_id": custom_id,
        "label": truncate(label, TEXT_INPUT_LABEL_MAX),
        "style": u8::from(style),
        "required": false,
        "max_length": max_length.min(TEXT_INPUT_VALUE_MAX),
    });
    if let Some(p) = placeholder {
        input["placeholder"] = truncate(p, TEXT_INPUT_PLACEHOLDER_MAX).into();
    }
    json!({"type": component(ComponentType::ActionRow), "components": [input]})
}

fn modal(custom_id: String, title: String, components: Vec<Value>) -> Value {
    json!({"type": Callback::Modal.code(), "data": {
        "custom_id": truncate(&custom_id, CUSTOM_ID_MAX),
        "title": truncate(&title, MODAL_TITLE_MAX),
        "components": components,
    }})
}

/// The Resolve dialog: custom id `desk_resolve:<id>`, one text input `note`.
pub(crate) fn resolve_modal(id: AlertId) -> Value {
    modal(
        format!("{}:{id}", buttons::RESOLVE),
        format!("Resolve #{id}"),
        vec![text_input(
            "note",
            "How was it handled? (optional)",
            Some("replied publicly"),
            true,
            NOTE_INPUT_MAX,
        )],
    )
}

/// The "Not relevant" dialog: `reason`, and `mute` (author, site or both). Its labels are 45
/// characters at most: Discord refuses the whole modal otherwise, and the button then does
/// nothing at all.
pub(crate) fn ignore_modal(id: AlertId) -> Value {
    modal(
        format!("{}:{id}", buttons::IGNORE),
        format!("Not relevant: #{id}"),
        vec![
            text_input("reason", "Why? (optional)", None, false, REASON_INPUT_MAX),
            text_input(
                "mute",
                "Mute from now on? (optional)",
                Some("author, site or both"),
                false,
                30,
            ),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modals_stay_within_discord_limits() {
        for m in [
            resolve_modal(AlertId(u64::MAX)),
            ignore_modal(AlertId(u64::MAX)),
        ] {
            let data = &m["data"];
            let count = |v: &Value| v.as_str().unwrap().chars().count();
            assert!(count(&data["title"]) <= MODAL_TITLE_MAX, "{m}");
            assert!(count(&data["custom_id"]) <= CUSTOM_ID_MAX, "{m}");
            for row in data["components"].as_array().unwrap() {
                let input = &row["components"][0];
                assert!(count(&input["label"]) <= TEXT_INPUT_LABEL_MAX, "{input}");
                assert!(count(&input["custom_id"]) <= CUSTOM_ID_MAX);
                if !input["placeholder"].is_null() {
                    assert!(count(&input["placeholder"]) <= TEXT_INPUT_PLACEHOLDER_MAX);
                }
                let max = input["max_length"].as_u64().unwrap() as usize;
                assert!((1..=TEXT_INPUT_VALUE_MAX).contains(&max));
            }
        }
    }

    #[test]
    fn bodies_use_discords_numbers() {
        // The numbers the vendored spec gives: callback types 1, 4, 5, 9; component types 1
        // (action row), 2 (button), 4 (text input); the ephemeral flag 64.
        assert_eq!(pong(), json!({"type": 1}));
        assert_eq!(deferred(), json!({"type": 5, "data": {"flags": 64}}));
        let a = answer(&Note::new().text("hi"));
        assert_eq!(
            (a["type"].as_u64(), a["data"]["flags"].as_u64()),
            (Some(4), Some(64))
        );
        let m = resolve_modal(AlertId(3));
        assert_eq!(m["type"], 9);
        assert_eq!(m["data"]["components"][0]["type"], 1);
        assert_eq!(m["data"]["components"][0]["components"][0]["type"], 4);
        assert_eq!(m["data"]["components"][0]["components"][0]["style"], 2);
        let s = snooze_choices(AlertId(3));
        assert_eq!(s["data"]["components"][0]["components"][0]["type"], 2);
        assert_eq!(s["data"]["components"][0]["components"][0]["style"], 2);
    }
}
