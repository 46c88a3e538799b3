//! `[slack]` and `[discord]`: tokens, ids and API overrides of the chat platforms. Each is
//! optional; absent means no such platform. Reads only these two sections.

use crate::config::{Reader, Table};
use crate::model::Secret;

pub(crate) const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api";
pub(crate) const DEFAULT_DISCORD_API_URL: &str = "https://discord.com";

const SLACK_KEYS: &[&str] = &["bot_token", "signing_secret", "app_token", "api_url"];
const DISCORD_KEYS: &[&str] = &[
    "bot_token",
    "application_id",
    "public_key",
    "api_url",
    "guild_id",
    "gateway",
];

#[derive(Debug, Clone, PartialEq)]
pub struct SlackConfig {
    pub(crate) bot_token: Secret,
    pub(crate) signing_secret: Secret,
    pub app_token: Option<Secret>,
    pub api_url: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiscordConfig {
    pub(crate) bot_token: Secret,
    pub(crate) application_id: u64,
    /// Hex Ed25519 key that signs interactions (Developer Portal → General Information).
    pub(crate) public_key: String,
    pub api_url: String,
    /// Register `/desk` in this guild (instant) instead of globally.
    pub(crate) guild_id: Option<u64>,
    /// Receive interactions over the gateway instead of `POST /discord/interactions`.
    pub gateway: bool,
}

/// `api_url` of a platform table, with its default; reports anything but http(s).
fn api_url(r: &mut Reader, t: &Table, prefix: &str, default: &str) -> String {
    let api_url = r
        .string(t, prefix, "api_url")
        .unwrap_or_else(|| default.into());
    r.check_url(t, prefix, "api_url", &api_url, false);
    api_url
}

impl SlackConfig {
    /// Reads `[slack]`; `None` when absent or incomplete (reported).
    pub(crate) fn read(r: &mut Reader, root: &Table) -> Option<SlackConfig> {
        let t = r.table(root, "slack")?;
        r.known_keys(t, "slack", SLACK_KEYS);
        let bot_token = r.secret(t, "slack", "bot_token", "SLACK_BOT_TOKEN");
        let signing_secret = r.secret(t, "slack", "signing_secret", "SLACK_SIGNING_SECRET");
        let app_token = r.optional_secret(t, "slack", "app_token", "SLACK_APP_TOKEN");
        let api_url = api_url(r, t, "slack", DEFAULT_SLACK_API_URL);
        Some(SlackConfig {
            bot_token: bot_token?,
            signing_secret: signing_secret?,
            app_token,
            api_url,
        })
    }
}

impl DiscordConfig {
    /// Reads `[discord]`; `None` when absent or incomplete (reported).
    pub(crate) fn read(r: &mut Reader, root: &Table) -> Option<DiscordConfig> {
        let t = r.table(root, "discord")?;
        r.known_keys(t, "discord", DISCORD_KEYS);
        let bot_token = r.secret(t, "discord", "bot_token", "DISCORD_BOT_TOKEN");
        let snowflake = |r: &mut Reader, key: &str, required: bool| -> Option<u64> {
            if !t.contains_key(key) && !required {
                return None;
            }
            let s = if required {
                r.required_string(t, "discord", key)?
            } else {
                r.string(t, "discord", key)?
            };
            match s.parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    let line = r.key_line(t, key);
                    r.problem(line, &format!("discord.{key}"), format!("{s:?} is not a Discord id; copy the number from the Developer Portal (in quotes)"));
                    None
                }
            }
        };
        let application_id = snowflake(r, "application_id", true);
        let guild_id = snowflake(r, "guild_id", false);
        let public_key = r.required_string(t, "discord", "public_key");
        if let Some(k) = &public_key {
            if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
                let line = r.key_line(t, "public_key");
                r.problem(line, "discord.public_key", "must be the 64-character hex public key from the Developer Portal's General Information page");
            }
        }
        let api_url = api_url(r, t, "discord", DEFAULT_DISCORD_API_URL);
        let gateway = r.boolean(t, "discord", "gateway").unwrap_or(false);
        Some(DiscordConfig {
            bot_token: bot_token?,
            application_id: application_id?,
            public_key: public_key?,
            api_url,
            guild_id,
            gateway,
        })
    }
}
