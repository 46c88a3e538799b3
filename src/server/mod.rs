//! HTTP endpoints on `[server].listen`: `/healthz` (per-source status), `/metrics`
//! (Prometheus text) and Slack's callbacks (`slack.rs`). This module verifies and routes
//! requests; it never decides business outcomes itself.

pub mod admin;
pub mod discord;
pub mod slack;

use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::sources::poll::{Health, SourceStatus};
use crate::store::Store;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub health: Health,
    pub metrics: Arc<Metrics>,
    /// Present when `[slack]` is configured.
    pub slack: Option<slack::SlackEndpoints>,
    /// Present when `[discord]` is configured.
    pub discord: Option<discord::DiscordEndpoints>,
    /// `digest --now` through the running daemon.
    pub admin: Option<admin::Admin>,
}

/// What a snooze-choice button means, for every platform.
fn snooze_choice(id: &str) -> Option<crate::desk::command::SnoozeFor> {
    use crate::chat::buttons;
    use crate::desk::command::SnoozeFor;
    match id {
        buttons::SNOOZE_1H => Some(SnoozeFor::Duration(std::time::Duration::from_secs(3600))),
        buttons::SNOOZE_4H => Some(SnoozeFor::Duration(std::time::Duration::from_secs(
            4 * 3600,
        ))),
        buttons::SNOOZE_TOMORROW => Some(SnoozeFor::TomorrowMorning),
        _ => None,
    }
}

/// Largest callback body accepted; Slack's are a few kilobytes.
const MAX_CALLBACK_BYTES: usize = 256 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/slack/commands", post(slack_commands))
        .route("/slack/interactions", post(slack_interactions))
        .route("/discord/interactions", post(discord_interactions))
        .route("/admin/digest", post(admin_digest))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_CALLBACK_BYTES))
        .with_state(state)
}

async fn slack_commands(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match s.slack {
        Some(ep) => slack::commands(ep, headers, body).await,
        None => not_configured(),
    }
}

async fn slack_interactions(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match s.slack {
        Some(ep) => slack::interactions(ep, headers, body).await,
        None => not_configured(),
    }
}

async fn discord_interactions(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match s.discord {
        Some(ep) => discord::interactions(ep, headers, body).await,
        None => (
            StatusCode::NOT_FOUND,
            "Discord is not configured on this mentiondesk: add [discord] to the config",
        )
            .into_response(),
    }
}

async fn admin_digest(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match s.admin {
        Some(a) => admin::digest(a, peer, headers, body).await,
        None => (StatusCode::NOT_FOUND, "the admin endpoint is off").into_response(),
    }
}

fn not_configured() -> Response {
    (
        StatusCode::NOT_FOUND,
        "Slack is not configured on this mentiondesk: add [slack] to the config",
    )
        .into_response()
}

/// Binds first (so a port in use is a start-up error), then serves until shutdown.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

pub async fn serve(
    listener: TcpListener,
    state: AppState,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.wait().await })
    .await
}

/// Always 200 while the process serves: a failing feed makes the status `degraded`, not the
/// container unhealthy. The per-source detail says which source and why.
async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    let sources = s.health.snapshot();
    // A failing source, or one where only some of its feeds answered, degrades the whole.
    let degraded = sources.iter().any(|src| !src.healthy || src.degraded);
    let outbox = s.store.outbox().map(|o| o.len()).unwrap_or(0);
    Json(json!({
        "status": if degraded { "degraded" } else { "ok" },
        "sources": sources,
        "outbox_pending": outbox,
        "oldest_pending": crate::relay::oldest_pending(&s.store),
    }))
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    let m = &s.metrics;
    let counters = [
        (
            "mentiondesk_mentions_total",
            "New mentions stored.",
            Metrics::get(&m.mentions_total),
        ),
        (
            "mentiondesk_duplicates_total",
            "Polled mentions dropped as already seen.",
            Metrics::get(&m.duplicates_total),
        ),
        (
            "mentiondesk_alerts_total",
            "Alerts created.",
            Metrics::get(&m.alerts_total),
        ),
        (
            "mentiondesk_alerts_posted_total",
            "Alert messages delivered to chat.",
            Metrics::get(&m.alerts_posted_total),
        ),
        (
            "mentiondesk_post_errors_total",
            "Failed chat deliveries (retried).",
            Metrics::get(&m.post_errors_total),
        ),
        (
            "mentiondesk_recovered_posts_total",
            "Deliveries found on the platform after a restart instead of posting again.",
            Metrics::get(&m.recovered_posts_total),
        ),
        (
            "mentiondesk_digests_posted_total",
            "Digests delivered to chat (one per target).",
            Metrics::get(&m.digests_posted_total),
        ),
        (
            "mentiondesk_spikes_total",
            "Spike alerts raised.",
            Metrics::get(&m.spikes_total),
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    let sources = s.health.snapshot();
    let per_source: [PerSourceMetric; 4] = [
        (
            "mentiondesk_source_polls_total",
            "Polls per source.",
            "counter",
            |x| x.polls_total,
        ),
        (
            "mentiondesk_source_errors_total",
            "Failed or partly failed polls per source.",
            "counter",
            |x| x.errors_total,
        ),
        (
            "mentiondesk_source_up",
            "1 if the source's last poll succeeded.",
            "gauge",
            |x| u64::from(x.healthy),
        ),
        (
            "mentiondesk_source_degraded",
            "1 if the source's last poll succeeded only in part (some of its feeds failed).",
            "gauge",
            |x| u64::from(x.degraded),
        ),
    ];
    for (name, help, kind, f) in per_source {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for src in &sources {
            let _ = writeln!(
                out,
                "{name}{{source=\"{}\",kind=\"{}\"}} {}",
                label(&src.name),
                label(&src.kind),
                f(src)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP mentiondesk_outbox_pending Alert deliveries not yet confirmed.\n# TYPE mentiondesk_outbox_pending gauge\nmentiondesk_outbox_pending {}",
        s.store.outbox().map(|o| o.len()).unwrap_or(0)
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// Name, help, type and value of one per-source metric.
type PerSourceMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&SourceStatus) -> u64,
);

/// Prometheus label value escaping.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
