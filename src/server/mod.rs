//! HTTP endpoints on `[server].listen`: `/healthz` (per-source status), `/metrics`
//! (Prometheus text), Slack's and Discord's callbacks (`slack.rs`, `discord.rs`) and the
//! loopback admin endpoint. This module verifies, decodes and routes requests, and tracks the
//! work that outlives a request; it never decides business outcomes (`desk::dispatch` does).

pub mod admin;
pub(crate) mod config;
pub(crate) mod discord;
pub mod ingest;
mod outbox_view;
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
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: Store,
    pub(crate) health: Health,
    pub(crate) metrics: Arc<Metrics>,
    /// Present when `[slack]` is configured.
    pub(crate) slack: Option<slack::SlackEndpoints>,
    /// Present when `[discord]` is configured.
    pub(crate) discord: Option<discord::DiscordEndpoints>,
    /// `digest --now` through the running daemon.
    pub(crate) admin: Option<admin::Admin>,
    /// How chat delivery is doing, as the relay saw it.
    pub(crate) delivery: crate::relay::DeliveryHealth,
    /// `POST /ingest/{source}`, present when a `webhook` source is configured.
    pub(crate) ingest: Option<ingest::IngestEndpoints>,
}

/// Work that outlives its request (a Slack answer through `response_url`, a deferred Discord
/// answer), tracked so shutdown waits for it instead of dropping it silently. It runs on the
/// runtime the `Tasks` were made on (the daemon's), not on the HTTP server's own runtime
/// ([`serve`]): desk work reads and writes the store, and must not hold up `/healthz`.
#[derive(Clone)]
pub(crate) struct Tasks(Arc<Mutex<JoinSet<()>>>, Option<tokio::runtime::Handle>);

impl Default for Tasks {
    fn default() -> Tasks {
        Tasks(
            Default::default(),
            tokio::runtime::Handle::try_current().ok(),
        )
    }
}

impl Tasks {
    pub(crate) fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        let mut set = self.0.lock().expect("lock");
        // Finished work is reaped here so the set holds only what still runs.
        while set.try_join_next().is_some() {}
        match &self.1 {
            Some(runtime) => set.spawn_on(work, runtime),
            None => set.spawn(work),
        };
    }

    /// Waits up to `limit` for the tracked work, including work spawned meanwhile. Returns how
    /// much did not finish in time; that is logged and aborted, never dropped silently.
    pub(crate) async fn join(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let mut set = std::mem::take(&mut *self.0.lock().expect("lock"));
            if set.is_empty() {
                return 0;
            }
            while !set.is_empty() {
                match tokio::time::timeout_at(deadline, set.join_next()).await {
                    Ok(Some(Err(e))) if e.is_panic() => {
                        tracing::error!(error = %e, "deferred interaction work panicked")
                    }
                    Ok(_) => {}
                    Err(_) => {
                        let left = set.len() + self.0.lock().expect("lock").len();
                        tracing::warn!(
                            unfinished = left,
                            "deferred interaction work did not finish before shutdown; its answers are lost"
                        );
                        set.abort_all();
                        self.0.lock().expect("lock").abort_all();
                        return left;
                    }
                }
            }
        }
    }

    /// How much tracked work is still running.
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        let mut set = self.0.lock().expect("lock");
        while set.try_join_next().is_some() {}
        set.len()
    }
}

/// Largest callback body accepted; Slack's are a few kilobytes.
const MAX_CALLBACK_BYTES: usize = 256 * 1024;

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/slack/commands", post(slack_commands))
        .route("/slack/interactions", post(slack_interactions))
        .route("/discord/interactions", post(discord_interactions))
        .route("/admin/digest", post(admin_digest))
        .route("/admin/test-alert", post(admin_test_alert))
        // Each webhook source caps its own body (`max_body_bytes`); `ingest` enforces it.
        .route(
            "/ingest/{source}",
            post(ingest_delivery).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_CALLBACK_BYTES))
        .layer(axum::Extension(outbox_view::OutboxView::default()))
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

async fn admin_test_alert(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match s.admin {
        Some(a) => admin::test_alert(a, peer, headers, body).await,
        None => (StatusCode::NOT_FOUND, "the admin endpoint is off").into_response(),
    }
}

async fn ingest_delivery(
    State(s): State<AppState>,
    axum::extract::Path(source): axum::extract::Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    match s.ingest {
        Some(ep) => ingest::ingest(ep, source, headers, body).await,
        None => ingest::unknown_source(),
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
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until shutdown, on a runtime of its own ([`HTTP_WORKERS`] threads named
/// `mentiondesk-http`): the daemon's runtime also runs the relay and the desk, which call the
/// store directly and can hold its workers for as long as an ingest's write transaction takes
/// (sled makes every read wait for a committing transaction), so requests served there waited
/// up to a few hundred milliseconds during a large poll. Here a request waits only for its own
/// work. Dropping the returned future (the daemon gave up waiting for open requests) closes
/// every connection.
pub(crate) async fn serve(
    listener: TcpListener,
    state: AppState,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    // Dropped with this future: the server stops without waiting for open requests.
    let (_abandon, abandoned) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(HTTP_WORKERS)
        .thread_name("mentiondesk-http")
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("mentiondesk-http".into())
        .spawn(move || {
            let served = runtime.block_on(async move {
                let listener = TcpListener::from_std(listener)?;
                let server = axum::serve(
                    listener,
                    router(state).into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(async move { shutdown.wait().await });
                tokio::select! {
                    r = server => r,
                    _ = abandoned => Ok(()),
                }
            });
            // Whatever a request left running (a blocking read) is not waited for.
            runtime.shutdown_background();
            let _ = done_tx.send(served);
        })?;
    done_rx.await.unwrap_or(Ok(()))
}

/// Worker threads of the HTTP server's runtime: two, so one request stuck on the store (a
/// Discord or Slack interaction records its request id before answering) does not hold up
/// `/healthz`.
const HTTP_WORKERS: usize = 2;

/// How many parked entries `/healthz` lists one by one.
const MAX_LISTED_PARKED: usize = 50;

/// 200 while chat is reachable: a failing feed, a failing channel or an undeliverable alert
/// makes the status `degraded` (restarting would not help). 503 `unhealthy` when a chat
/// platform refuses the bot's credentials, or (PostgreSQL) when this replica cannot reach the
/// store for its source leases and so polls nothing, so a container healthcheck shows it. A
/// source another replica holds is listed with its holder and is not a problem here.
async fn healthz(
    State(s): State<AppState>,
    axum::Extension(view): axum::Extension<outbox_view::OutboxView>,
) -> impl IntoResponse {
    use crate::relay::Status;
    let sources = s.health.snapshot();
    let outbox = view.get(&s.store).await;
    let parked: Vec<serde_json::Value> = outbox
        .parked
        .iter()
        .filter_map(|e| {
            let p = e.parked.as_ref()?;
            Some(json!({
                "alert": e.alert_id.0,
                "target": e.target.to_string(),
                "action": action_name(&e.action),
                "reason": p.reason,
                "scope": p.scope,
                "fix": p.fix,
                "since": p.since,
                "attempts": e.attempts,
            }))
        })
        .collect();
    // A failing source, or one where only some of its feeds answered, degrades the whole.
    let sources_degraded = sources.iter().any(|src| !src.healthy || src.degraded);
    let delivery = s.delivery.status();
    let replica = replica_view(&s).await;
    let store_error = s.health.lease_error().or_else(|| {
        s.store
            .connection_lost()
            .map(|reason| format!("cannot reach the database: {reason}"))
    });
    let (status, code) = match delivery {
        // The replica cannot reach the database: it polls nothing, its leases lapse.
        _ if store_error.is_some() => ("unhealthy", StatusCode::SERVICE_UNAVAILABLE),
        Status::Unhealthy => ("unhealthy", StatusCode::SERVICE_UNAVAILABLE),
        _ if sources_degraded || delivery == Status::Degraded || !parked.is_empty() => {
            ("degraded", StatusCode::OK)
        }
        _ => ("ok", StatusCode::OK),
    };
    let parked_count = parked.len();
    let mut body = json!({
        "status": status,
        "sources": sources,
        "chat": s.delivery.snapshot(),
        "outbox_pending": outbox.pending,
        "oldest_pending": outbox.oldest,
        "outbox_parked": parked_count,
        "parked": parked.into_iter().take(MAX_LISTED_PARKED).collect::<Vec<_>>(),
    });
    if let (Some(replica), Some(fields)) = (replica, body.as_object_mut()) {
        fields.extend(replica);
        if let Some(e) = store_error {
            fields.insert("store_error".into(), e.into());
        }
    }
    (code, Json(body))
}

/// How long `/healthz` waits for the store's list of leases before answering without it.
const LEASES_WAIT: Duration = Duration::from_secs(2);

/// With several replicas on PostgreSQL: this replica's name, the sources it holds, and every
/// live lease (which replica holds which source, until when) as the store has them (`null`
/// when the store did not answer within [`LEASES_WAIT`]). `None` on sled.
async fn replica_view(s: &AppState) -> Option<serde_json::Map<String, serde_json::Value>> {
    let name = s.store.replica()?.to_string();
    let holds: Vec<String> = s
        .health
        .snapshot()
        .into_iter()
        .filter(|src| src.lease_held)
        .map(|src| src.name)
        .collect();
    let leases = match tokio::time::timeout(LEASES_WAIT, s.store.leases()).await {
        Ok(Ok(leases)) => json!(leases),
        _ => serde_json::Value::Null,
    };
    let mut fields = serde_json::Map::new();
    fields.insert("replica".into(), name.into());
    fields.insert("holds".into(), json!(holds));
    fields.insert("leases".into(), leases);
    Some(fields)
}

/// The outbox action's name as `/healthz` shows it.
fn action_name(a: &crate::store::OutboxAction) -> &'static str {
    use crate::store::OutboxAction as A;
    match a {
        A::PostAlert => "post_alert",
        A::UpdateAlert => "update_alert",
        A::ThreadNote(_) => "thread_note",
        A::ChannelNote(_) => "channel_note",
        A::Digest(_) => "digest",
    }
}

async fn metrics(
    State(s): State<AppState>,
    axum::Extension(view): axum::Extension<outbox_view::OutboxView>,
) -> impl IntoResponse {
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
            "Alerts created and put on the desk; held-back alerts count in mentiondesk_held_total instead.",
            Metrics::get(&m.alerts_total),
        ),
        (
            "mentiondesk_alerts_posted_total",
            "Alert messages delivered to chat.",
            Metrics::get(&m.alerts_posted_total),
        ),
        (
            "mentiondesk_post_errors_total",
            "Failed chat deliveries (see mentiondesk_delivery_failures_total for why).",
            Metrics::get(&m.post_errors_total),
        ),
        (
            "mentiondesk_recovered_posts_total",
            "Deliveries found on the platform after a restart instead of posting again.",
            Metrics::get(&m.recovered_posts_total),
        ),
        (
            "mentiondesk_outbox_claims_total",
            "Outbox entries this replica claimed before delivering them (PostgreSQL; 0 on sled).",
            Metrics::get(&m.outbox_claims_total),
        ),
        (
            "mentiondesk_outbox_claims_taken_over_total",
            "Claimed outbox entries whose claim by another replica had lapsed (it died or stalled mid-delivery).",
            Metrics::get(&m.outbox_claims_taken_over_total),
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
        (
            "mentiondesk_held_total",
            "Alerts held back by the relevance filter (stored, not posted).",
            Metrics::get(&m.held_total),
        ),
        (
            "mentiondesk_promoted_total",
            "Held-back alerts a person promoted (posted after all; each a miss of the filter).",
            Metrics::get(&m.promoted_total),
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    let sources = s.health.snapshot();
    let per_source: [PerSourceMetric; 5] = [
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
        (
            "mentiondesk_source_refused_total",
            "Requests to a receiving source refused before they were authenticated (webhook signatures).",
            "counter",
            |x| x.refused_total,
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
        "# HELP mentiondesk_source_quota_remaining What is left of a source's request budget with its service, as last seen.\n# TYPE mentiondesk_source_quota_remaining gauge"
    );
    for src in &sources {
        if let Some(q) = &src.quota {
            let _ = writeln!(
                out,
                "mentiondesk_source_quota_remaining{{source=\"{}\",kind=\"{}\",unit=\"{}\"}} {}",
                label(&src.name),
                label(&src.kind),
                q.unit,
                q.remaining
            );
        }
    }
    if s.store.replica().is_some() {
        lease_metrics(&mut out, &sources);
    }
    let outbox = view.get(&s.store).await;
    let _ = writeln!(
        out,
        "# HELP mentiondesk_outbox_pending Alert deliveries not yet confirmed.\n# TYPE mentiondesk_outbox_pending gauge\nmentiondesk_outbox_pending {}",
        outbox.pending
    );
    let mut parked: std::collections::BTreeMap<(&str, &str), u64> = Default::default();
    for e in &outbox.parked {
        if let Some(p) = &e.parked {
            *parked.entry((e.target.platform(), &p.reason)).or_default() += 1;
        }
    }
    let _ = writeln!(
        out,
        "# HELP mentiondesk_outbox_parked Outbox entries parked after a refusal a retry cannot fix, by platform and reason.\n# TYPE mentiondesk_outbox_parked gauge"
    );
    for ((platform, reason), n) in parked {
        let _ = writeln!(
            out,
            "mentiondesk_outbox_parked{{platform=\"{platform}\",reason=\"{}\"}} {n}",
            label(reason)
        );
    }
    let _ = writeln!(
        out,
        "# HELP mentiondesk_delivery_failures_total Failed chat calls by platform and kind (rate_limited, unavailable, refused_platform, refused_target, refused_message, error).\n# TYPE mentiondesk_delivery_failures_total counter"
    );
    for (platform, kind, n) in m.delivery_failures() {
        let _ = writeln!(
            out,
            "mentiondesk_delivery_failures_total{{platform=\"{platform}\",kind=\"{kind}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP mentiondesk_chat_up 1 unless the chat platform refuses the bot's credentials.\n# TYPE mentiondesk_chat_up gauge"
    );
    for (platform, up) in s.delivery.up() {
        let _ = writeln!(
            out,
            "mentiondesk_chat_up{{platform=\"{platform}\"}} {}",
            u64::from(up)
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// The source lease figures of a replica on PostgreSQL (see README, "HTTP endpoints").
fn lease_metrics(out: &mut String, sources: &[SourceStatus]) {
    let held = sources.iter().filter(|src| src.lease_held).count();
    let _ = writeln!(
        out,
        "# HELP mentiondesk_source_leases_held Sources whose lease this replica holds (it polls them).\n# TYPE mentiondesk_source_leases_held gauge\nmentiondesk_source_leases_held {held}"
    );
    let per_source: [PerSourceMetric; 2] = [
        (
            "mentiondesk_source_lease_acquired_total",
            "Times this replica took a source's lease.",
            "counter",
            |x| x.lease_acquired_total,
        ),
        (
            "mentiondesk_source_lease_lost_total",
            "Times this replica lost a source's lease (another replica took it over, or the store was unreachable).",
            "counter",
            |x| x.lease_lost_total,
        ),
    ];
    for (name, help, kind, f) in per_source {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        // Webhook sources have no lease.
        for src in sources.iter().filter(|src| src.kind != "webhook") {
            let _ = writeln!(
                out,
                "{name}{{source=\"{}\",kind=\"{}\"}} {}",
                label(&src.name),
                label(&src.kind),
                f(src)
            );
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write as _};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The design issue 14's goal 5 relies on: the server has a runtime of its own, so
    /// `/healthz` answers while every worker of the daemon's runtime is held in blocking code
    /// (as the relay and the desk are while a store call waits for an ingest's transaction).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn healthz_answers_while_every_daemon_worker_is_blocked() {
        let dir = tempfile::tempdir().unwrap();
        let state = AppState {
            store: Store::open(dir.path()).unwrap(),
            health: Health::new(),
            metrics: Arc::default(),
            slack: None,
            discord: None,
            admin: None,
            delivery: Default::default(),
            ingest: None,
        };
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, shutdown) = crate::shutdown::channel();
        let server = tokio::spawn(serve(listener, state, shutdown));

        // Both workers of this runtime (the daemon's) blocked until the answer is in.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = Arc::new(Mutex::new(held));
        let both = Arc::new(std::sync::Barrier::new(3));
        for _ in 0..2 {
            let (held, both) = (held.clone(), both.clone());
            tokio::spawn(async move {
                both.wait();
                let _ = held.lock().unwrap().recv_timeout(Duration::from_secs(120));
            });
        }
        both.wait();
        let answer = std::thread::spawn(move || {
            let mut conn = std::net::TcpStream::connect(addr).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            let _ = conn.read_to_string(&mut answer);
            answer
        })
        .join()
        .unwrap();
        release.send(()).unwrap();
        release.send(()).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("\"outbox_pending\":0"), "{answer}");

        stop.trigger();
        tokio::time::timeout(Duration::from_secs(60), server)
            .await
            .expect("the server stops at shutdown")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn work_started_just_before_shutdown_finishes() {
        let tasks = Tasks::default();
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            flag.store(true, Ordering::SeqCst);
        });
        assert_eq!(tasks.running(), 1);
        assert_eq!(tasks.join(Duration::from_secs(5)).await, 0);
        assert!(
            done.load(Ordering::SeqCst),
            "joined before the work finished"
        );
        assert_eq!(tasks.running(), 0);
    }

    #[tokio::test]
    async fn work_spawned_while_joining_is_waited_for_too() {
        let tasks = Tasks::default();
        let done = Arc::new(AtomicBool::new(false));
        let (inner, flag) = (tasks.clone(), done.clone());
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            // A follow-up spawned by work already running (a deferred answer's edit).
            inner.spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                flag.store(true, Ordering::SeqCst);
            });
        });
        assert_eq!(tasks.join(Duration::from_secs(5)).await, 0);
        assert!(done.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn work_that_outlives_the_wait_is_reported_and_stopped() {
        let tasks = Tasks::default();
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            flag.store(true, Ordering::SeqCst);
        });
        let started = std::time::Instant::now();
        assert_eq!(tasks.join(Duration::from_millis(100)).await, 1);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the wait is bounded"
        );
        assert_eq!(tasks.running(), 0, "unfinished work is aborted");
        assert!(!done.load(Ordering::SeqCst));
    }
}
