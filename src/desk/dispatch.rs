//! The one interaction pipeline: every verified request from Slack or Discord (HTTP, Socket
//! Mode or the gateway) arrives as a neutral `Interaction` and leaves as a `Reply`. The
//! `Dispatcher` owns request dedup, the `[desk].allowed` gate, the action (through `Desk`),
//! ignore+mute and every error text. It does not verify requests, decode payloads, encode
//! answers or decide when to answer; `server/` does that per platform.

use super::command::{self, SnoozeFor};
use super::state::Action;
use super::Desk;
use crate::chat::{buttons, setup, ChatPlatform};
use crate::clock::Clock;
use crate::model::{Actor, AlertId, Note};
use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// One verified request, as every platform means it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Interaction {
    /// Who acts, as stored (`slack:U1`, `discord:123`).
    pub(crate) actor: Actor,
    /// The platform's user id, as `[desk].allowed` names people.
    pub(crate) user: String,
    /// Groups the person is in that `[desk].allowed` may name (Discord roles, Slack user groups).
    pub(crate) groups: Vec<String>,
    /// Unique per platform request; a retry or replay carries the same id.
    pub(crate) request_id: String,
    pub(crate) kind: Kind,
}

/// What the person did. Closed: a platform decodes into one of these or answers itself.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// A slash command. `name` is the command as typed where the platform sends it (Slack);
    /// `platform` prefixes user ids in `assign`.
    Command {
        name: Option<String>,
        text: String,
        platform: &'static str,
        /// The channel it was typed in, where the platform says (`/desk test` posts there).
        channel: Option<String>,
    },
    /// A button on an alert (`chat::buttons`); `alert` is `None` when it names none.
    Button {
        button: String,
        alert: Option<AlertId>,
    },
    /// A dialog sent back. `dialog` is `None` for a dialog this version does not know.
    ModalSubmit {
        dialog: Option<Dialog>,
        alert: Option<AlertId>,
        /// The dialog's text field (the resolve note or the ignore reason), trimmed, non-empty.
        text: Option<String>,
        mute: Mute,
        /// True where the dialog can show an error beside a field (Slack): a request to mute
        /// an author that does not exist is then refused in the dialog instead of skipped.
        inline_errors: bool,
    },
    /// An interaction kind mentiondesk does not use (Discord autocomplete, …).
    Unsupported,
}

/// The desk's dialogs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialog {
    Resolve,
    Ignore,
}

impl Dialog {
    /// The dialog's text field, and where a refusal is shown.
    pub(crate) fn text_field(self) -> &'static str {
        match self {
            Dialog::Resolve => "note",
            Dialog::Ignore => "reason",
        }
    }
}

/// The field of the Not relevant dialog that asks what to mute.
pub(crate) const MUTE_FIELD: &str = "mute";

/// What a Not relevant dialog asks to mute from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Mute {
    pub(crate) author: bool,
    pub(crate) site: bool,
}

/// The answer, for the platform to encode. Closed: every platform encodes every variant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    /// A private answer to the person.
    Private(Note),
    /// The request was handled before (a retry or a replay) and is not applied again.
    Duplicate,
    /// Open a dialog for an alert; `fallback` is said when it cannot be opened.
    Modal {
        dialog: Dialog,
        alert: AlertId,
        fallback: Note,
    },
    /// Offer the snooze choices for an alert.
    SnoozeChoices(AlertId),
    /// A dialog was applied and closes; the note says what happened.
    Accepted(Note),
    /// A dialog was refused and stays open; the note is shown at `field` where the platform can.
    Refused { field: &'static str, note: Note },
    /// The answer is not ready; it follows later (a platform's deferred answer).
    Defer,
}

/// Said when a Slack person asks to mute the author of a mention that has none.
pub(crate) const NO_AUTHOR_TO_MUTE: &str = "This mention has no known author (its source names none), so there is no author to mute. Untick \u{201c}Mute this author\u{201d}; you can still mute the site.";

const STORE_FAILED: &str = "Something went wrong on our side; nothing was changed.";

/// Turns interactions into desk actions and answers. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Dispatcher {
    desk: Desk,
    store: Store,
    clock: Clock,
    test_alerts: Arc<TestAlerts>,
}

/// What `/desk test` posts with: the chat platforms, and `[discord].application_id` for the
/// invite URL in a permissions fix.
#[derive(Default)]
struct TestAlerts {
    platforms: Vec<Arc<dyn ChatPlatform>>,
    discord_application: Option<u64>,
}

impl Dispatcher {
    pub(crate) fn new(desk: Desk, store: Store, clock: Clock) -> Dispatcher {
        Dispatcher {
            desk,
            store,
            clock,
            test_alerts: Arc::default(),
        }
    }

    /// Lets `/desk test` post with `platforms`.
    pub(crate) fn with_test_alerts(
        mut self,
        platforms: Vec<Arc<dyn ChatPlatform>>,
        discord_application: Option<u64>,
    ) -> Dispatcher {
        self.test_alerts = Arc::new(TestAlerts {
            platforms,
            discord_application,
        });
        self
    }

    /// `[desk].allowed`, for a platform that must look up group membership itself.
    pub(crate) fn allowed(&self) -> &[String] {
        &self.desk.config().allowed
    }

    /// Handles an interaction from start to end: `admit`, then `run` (the servers call the two
    /// apart, to answer in time before the work).
    #[cfg(test)]
    pub(crate) async fn dispatch(&self, i: Interaction) -> Reply {
        match self.admit(&i).await {
            Some(reply) => reply,
            None => self.run(i).await,
        }
    }

    /// The checks answered at once, before any work: a dialog that cannot be applied as asked,
    /// a request already handled, a command of another app. `None` means: run it.
    pub(crate) async fn admit(&self, i: &Interaction) -> Option<Reply> {
        // Checked before the request is recorded, so the person can untick the box and send
        // the same dialog again.
        if let Kind::ModalSubmit {
            dialog: Some(Dialog::Ignore),
            alert: Some(id),
            mute,
            inline_errors: true,
            ..
        } = &i.kind
        {
            if mute.author && self.has_no_author(*id).await {
                return Some(Reply::Refused {
                    field: MUTE_FIELD,
                    note: Note::new().text(NO_AUTHOR_TO_MUTE),
                });
            }
        }
        if !self.first(&i.request_id).await {
            tracing::info!(request = %i.request_id, actor = %i.actor, "request already handled (retry or replay); ignored");
            return Some(Reply::Duplicate);
        }
        if let Kind::Command {
            name: Some(name), ..
        } = &i.kind
        {
            let configured = &self.desk.config().command;
            if name != configured {
                return Some(Reply::Private(
                    Note::new().text(format!("This app answers {configured}, not {name}.")),
                ));
            }
        }
        None
    }

    /// The gate and the action, for an admitted interaction.
    pub(crate) async fn run(&self, i: Interaction) -> Reply {
        let field = match &i.kind {
            Kind::ModalSubmit { dialog, .. } => Some(dialog.map_or("note", Dialog::text_field)),
            _ => None,
        };
        if !self.is_allowed(&i) {
            let note = self.not_allowed();
            return match field {
                Some(field) => Reply::Refused { field, note },
                None => Reply::Private(note),
            };
        }
        let now = self.clock.now();
        match i.kind {
            Kind::Command {
                text,
                platform,
                channel,
                ..
            } => {
                let configured = &self.desk.config().command;
                Reply::Private(match command::parse(&text, configured, platform) {
                    Ok(command::Command::Test) => {
                        self.test_alert(platform, channel.as_deref()).await
                    }
                    Ok(cmd) => self.desk.run(&i.actor, cmd, now).await,
                    Err(e) => Note::markup(&e),
                })
            }
            Kind::Button { button, alert } => self.button(&i.actor, &button, alert).await,
            Kind::ModalSubmit {
                dialog,
                alert,
                text,
                mute,
                ..
            } => {
                let field = field.unwrap_or("note");
                let Some(id) = alert else {
                    return Reply::Refused {
                        field,
                        note: Note::new()
                            .text("This dialog lost its alert id; use the command instead."),
                    };
                };
                let Some(dialog) = dialog else {
                    return Reply::Refused {
                        field,
                        note: Note::new()
                            .text("This dialog is not known to this version of mentiondesk."),
                    };
                };
                match self.submit(&i.actor, dialog, id, text, mute).await {
                    Ok(o) if o.applied => Reply::Accepted(o.note),
                    Ok(o) => Reply::Refused {
                        field,
                        note: o.note,
                    },
                    Err(e) => {
                        tracing::error!(error = %e, "desk action failed in the store");
                        Reply::Refused {
                            field,
                            note: Note::new().text(STORE_FAILED),
                        }
                    }
                }
            }
            Kind::Unsupported => Reply::Private(
                Note::new().text("This kind of interaction is not used by mentiondesk."),
            ),
        }
    }

    /// True the first time a request id is seen; a store failure counts as new (answering
    /// twice is better than not at all).
    async fn first(&self, request_id: &str) -> bool {
        match self.store.first_request(request_id, self.clock.now()).await {
            Ok(fresh) => fresh,
            Err(e) => {
                tracing::error!(error = %e, "cannot record a request id; treating it as new");
                true
            }
        }
    }

    /// `[desk].allowed`: empty means everyone; otherwise user ids or groups.
    fn is_allowed(&self, i: &Interaction) -> bool {
        let allowed = self.allowed();
        allowed.is_empty() || allowed.iter().any(|a| *a == i.user || i.groups.contains(a))
    }

    fn not_allowed(&self) -> Note {
        Note::new().text(format!(
            "You are not on this desk's list of people who can use {}. Ask an admin to add you to [desk].allowed.",
            self.desk.config().command
        ))
    }

    /// Whether the alert's mention has no real author (none, or a placeholder): muting that
    /// would mute every mention without one.
    async fn has_no_author(&self, id: AlertId) -> bool {
        matches!(self.desk.mute_keys(id).await, Ok(Some(keys)) if keys.author.is_none())
    }

    /// `/desk test`: posts the test alert into the channel it was typed in; the answer says
    /// it worked or gives the fix.
    async fn test_alert(&self, platform: &str, channel: Option<&str>) -> Note {
        let command = &self.desk.config().command;
        let Some(channel) = channel.filter(|c| !c.is_empty()) else {
            return Note::markup(&format!(
                "Could not tell which channel `{command} test` was typed in; run `mentiondesk test-alert --to {platform}:<channel>` on the server instead."
            ));
        };
        let TestAlerts {
            platforms,
            discord_application,
        } = &*self.test_alerts;
        let Some(p) = platforms.iter().find(|p| p.name() == platform) else {
            return Note::new().text(format!(
                "This mentiondesk has no {platform} connection to post a test alert with."
            ));
        };
        match setup::post_test_alert(p.as_ref(), channel, self.clock.now(), *discord_application)
            .await
        {
            Ok(_) => Note::new().text(
                "Posted a test alert in this channel: mentiondesk can post here. It is not stored, so it never escalates or shows in digests or stats, and its buttons do nothing.",
            ),
            Err(problem) => {
                tracing::warn!(platform, channel, %problem, "test alert failed");
                Note::new().text(format!(
                    "Could not post a test alert in this channel: {problem}"
                ))
            }
        }
    }

    async fn button(&self, actor: &Actor, button: &str, alert: Option<AlertId>) -> Reply {
        let Some(id) = alert else {
            return Reply::Private(Note::new().text("That button does not name an alert."));
        };
        if id == setup::TEST_ALERT_ID {
            return Reply::Private(Note::new().text(setup::TEST_ALERT_BUTTON));
        }
        let command = &self.desk.config().command;
        let now = self.clock.now();
        // A button that can repeat in one message (Promote in a list) carries its alert in
        // its id too (`chat::note_button_id`); the action is what comes before `:`.
        let button = button.split_once(':').map_or(button, |(action, _)| action);
        let action = match button {
            buttons::CLAIM => Action::Claim,
            buttons::PROMOTE => Action::Promote,
            buttons::UNCLAIM => Action::Unclaim,
            buttons::REOPEN => Action::Reopen,
            buttons::SNOOZE => return Reply::SnoozeChoices(id),
            buttons::RESOLVE => {
                return Reply::Modal {
                    dialog: Dialog::Resolve,
                    alert: id,
                    fallback: Note::markup(&format!(
                        "Could not open the dialog; use `{command} resolve {id} [note]`."
                    )),
                }
            }
            buttons::IGNORE => {
                return Reply::Modal {
                    dialog: Dialog::Ignore,
                    alert: id,
                    fallback: Note::markup(&format!(
                        "Could not open the dialog; use `{command} ignore {id} [reason]`."
                    )),
                }
            }
            other => match snooze_choice(other) {
                Some(how) => Action::Snooze {
                    until: self.desk.snooze_until(how, now),
                },
                None => {
                    tracing::warn!(button = %other, "unknown button");
                    return Reply::Private(
                        Note::new()
                            .text("That button is not known to this version of mentiondesk."),
                    );
                }
            },
        };
        match self.desk.act(id, actor, action, now).await {
            Ok(o) => Reply::Private(o.note),
            Err(e) => {
                tracing::error!(error = %e, "desk action failed in the store");
                Reply::Private(Note::new().text(STORE_FAILED))
            }
        }
    }

    /// Resolve or Not relevant from a dialog; after an applied Not relevant, the mutes asked
    /// for. A requested author mute that found no author is said in the answer.
    async fn submit(
        &self,
        actor: &Actor,
        dialog: Dialog,
        id: AlertId,
        text: Option<String>,
        mute: Mute,
    ) -> Result<super::Outcome, StoreError> {
        let now = self.clock.now();
        let action = match dialog {
            Dialog::Resolve => Action::Resolve { note: text },
            Dialog::Ignore => Action::Ignore { reason: text },
        };
        let mut outcome = self.desk.act(id, actor, action, now).await?;
        if dialog == Dialog::Ignore && outcome.applied && (mute.author || mute.site) {
            match self.desk.mute(id, actor, mute.author, mute.site, now).await {
                Ok(muted) if mute.author && !muted.iter().any(|k| k.starts_with("author:")) => {
                    outcome.note = std::mem::take(&mut outcome.note).text(format!(
                        " No author was muted: this mention has no known author{}.",
                        if mute.site && !muted.is_empty() {
                            "; its site is muted"
                        } else {
                            ""
                        }
                    ));
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "could not store a mute"),
            }
        }
        Ok(outcome)
    }
}

/// What a snooze-choice button means, for every platform.
fn snooze_choice(id: &str) -> Option<SnoozeFor> {
    match id {
        buttons::SNOOZE_1H => Some(SnoozeFor::Duration(Duration::from_secs(3600))),
        buttons::SNOOZE_4H => Some(SnoozeFor::Duration(Duration::from_secs(4 * 3600))),
        buttons::SNOOZE_TOMORROW => Some(SnoozeFor::TomorrowMorning),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desk::DeskConfig;

    fn dispatcher(dir: &tempfile::TempDir, allowed: &[&str]) -> Dispatcher {
        let store = Store::open(&dir.path().join("store")).unwrap();
        let cfg = DeskConfig {
            command: "/desk".into(),
            escalate_after: Duration::from_secs(3600),
            escalate_to: None,
            remind_after: None,
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
            timezone: chrono_tz::UTC,
        };
        Dispatcher::new(Desk::new(store.clone(), cfg), store, Clock::System)
    }

    fn interaction(user: &str, groups: &[&str], request_id: &str, kind: Kind) -> Interaction {
        Interaction {
            actor: format!("slack:{user}"),
            user: user.into(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            request_id: request_id.into(),
            kind,
        }
    }

    fn command(name: &str, text: &str) -> Kind {
        Kind::Command {
            name: Some(name.into()),
            text: text.into(),
            platform: "slack",
            channel: Some("C0PRALERTS".into()),
        }
    }

    fn submit(dialog: Option<Dialog>, alert: Option<AlertId>) -> Kind {
        Kind::ModalSubmit {
            dialog,
            alert,
            text: None,
            mute: Mute::default(),
            inline_errors: true,
        }
    }

    fn private_text(reply: Reply) -> String {
        match reply {
            Reply::Private(note) => note.plain(),
            other => panic!("expected a private answer, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_request_is_admitted_once_and_another_apps_command_is_answered_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dispatcher(&dir, &[]);
        let i = interaction("U1", &[], "slack:command:t1", command("/desk", "help"));
        assert_eq!(d.admit(&i).await, None);
        assert_eq!(d.admit(&i).await, Some(Reply::Duplicate));
        let other = interaction("U1", &[], "slack:command:t2", command("/other", "help"));
        assert_eq!(
            d.admit(&other).await.map(private_text),
            Some("This app answers /desk, not /other.".to_string())
        );
    }

    #[tokio::test]
    async fn the_allowed_gate_takes_people_and_their_groups() {
        let dir = tempfile::tempdir().unwrap();
        let d = dispatcher(&dir, &["U1", "G1"]);
        for (user, groups, request) in [("U1", vec![], "a"), ("U2", vec!["G1"], "b")] {
            let i = interaction(user, &groups, request, command("/desk", "help"));
            let text = private_text(d.dispatch(i).await);
            assert!(text.contains("/desk claim"), "{user}: {text}");
        }
        let outsider = interaction("U3", &["G2"], "c", command("/desk", "help"));
        assert!(private_text(d.dispatch(outsider).await).contains("[desk].allowed"));
        // A refused dialog is refused at its text field.
        let dialog = interaction(
            "U3",
            &[],
            "d",
            submit(Some(Dialog::Ignore), Some(AlertId(1))),
        );
        match d.dispatch(dialog).await {
            Reply::Refused { field, note } => {
                assert_eq!(field, "reason");
                assert!(note.plain().contains("[desk].allowed"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn buttons_and_dialogs_say_what_is_wrong_or_what_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let d = dispatcher(&dir, &[]);
        let button = |n: &str, alert: Option<u64>| {
            interaction(
                "U1",
                &[],
                &format!("{n}:{alert:?}"),
                Kind::Button {
                    button: n.into(),
                    alert: alert.map(AlertId),
                },
            )
        };
        assert_eq!(
            private_text(d.dispatch(button(buttons::CLAIM, None)).await),
            "That button does not name an alert."
        );
        match d.dispatch(button(buttons::RESOLVE, Some(5))).await {
            Reply::Modal {
                dialog: Dialog::Resolve,
                alert: AlertId(5),
                fallback,
            } => assert!(fallback.plain().contains("/desk resolve 5 [note]")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            d.dispatch(button(buttons::SNOOZE, Some(5))).await,
            Reply::SnoozeChoices(AlertId(5))
        );
        assert_eq!(
            private_text(d.dispatch(button("desk_frobnicate", Some(5))).await),
            "That button is not known to this version of mentiondesk."
        );
        assert!(
            private_text(d.dispatch(button(buttons::CLAIM, Some(9))).await)
                .contains("There is no alert #9")
        );
        let lost = interaction("U1", &[], "l", submit(Some(Dialog::Resolve), None));
        assert!(matches!(d.dispatch(lost).await,
            Reply::Refused { field: "note", note } if note.plain().contains("lost its alert id")));
        let unknown = interaction("U1", &[], "u", submit(None, Some(AlertId(5))));
        assert!(matches!(d.dispatch(unknown).await,
            Reply::Refused { note, .. } if note.plain().contains("not known")));
        assert_eq!(
            private_text(d.dispatch(button(buttons::CLAIM, Some(0))).await),
            setup::TEST_ALERT_BUTTON,
            "a test alert's buttons say what it is"
        );
        assert_eq!(
            private_text(
                d.dispatch(interaction("U1", &[], "t", command("/desk", "test")))
                    .await
            ),
            "This mentiondesk has no slack connection to post a test alert with."
        );
        let other = interaction("U1", &[], "o", Kind::Unsupported);
        assert_eq!(
            private_text(d.dispatch(other).await),
            "This kind of interaction is not used by mentiondesk."
        );
    }

    /// Every button an alert shows in a state is one the state machine accepts from that
    /// state (Resolve, Not relevant and Snooze through their dialogs and choices), so no
    /// button on a message can only ever be refused.
    #[test]
    fn every_button_an_alert_shows_is_allowed_in_its_state() {
        use crate::desk::state::transition;
        use crate::model::AlertState;
        let now = chrono::Utc::now();
        let by = "slack:U1".to_string();
        let states = [
            AlertState::Open,
            AlertState::Claimed {
                by: by.clone(),
                at: now,
            },
            AlertState::Snoozed {
                by: by.clone(),
                until: now + chrono::Duration::hours(1),
            },
            AlertState::Resolved {
                by: by.clone(),
                at: now,
                note: None,
            },
            AlertState::Ignored {
                by: by.clone(),
                at: now,
                reason: None,
            },
        ];
        for state in &states {
            for b in crate::chat::view::buttons_for(state) {
                let action = match b.id {
                    buttons::CLAIM => Action::Claim,
                    buttons::UNCLAIM => Action::Unclaim,
                    buttons::REOPEN => Action::Reopen,
                    buttons::RESOLVE => Action::Resolve { note: None },
                    buttons::IGNORE => Action::Ignore { reason: None },
                    buttons::SNOOZE => Action::Snooze {
                        until: now + chrono::Duration::hours(2),
                    },
                    other => panic!("button {other} maps to no action"),
                };
                // Someone other than the owner acts: a claim by another person is refused
                // on purpose, so Claim is only shown where nobody holds the alert.
                let actor = "slack:U2".to_string();
                assert!(
                    transition(state, &action, &actor, now).is_ok(),
                    "{} shown on a {} alert is refused",
                    b.label,
                    state.name()
                );
            }
        }
    }

    #[tokio::test]
    async fn unclaim_reopen_and_promote_buttons_are_known_actions() {
        let dir = tempfile::tempdir().unwrap();
        let d = dispatcher(&dir, &[]);
        // Promote as a list shows it: its alert in its id too, to keep ids unique.
        let promote = crate::chat::note_button_id(buttons::PROMOTE, AlertId(9));
        for (n, b) in [buttons::UNCLAIM, buttons::REOPEN, promote.as_str()]
            .into_iter()
            .enumerate()
        {
            let i = interaction(
                "U1",
                &[],
                &format!("r{n}"),
                Kind::Button {
                    button: b.into(),
                    alert: Some(AlertId(9)),
                },
            );
            let text = private_text(d.dispatch(i).await);
            assert!(text.contains("There is no alert #9"), "{b}: {text}");
        }
    }
}
