//! Test doubles shared by the integration tests, all plain HTTP (or websockets) on 127.0.0.1
//! with an OS-chosen port: a fake Slack, a fake Discord, fake feed servers and source APIs,
//! and the daemon run in-process. They record what they receive so tests can assert on it,
//! take injected faults (`faults.rs`), and build configs (`config.rs`).

pub mod config;
pub mod daemon;
pub mod discord;
pub mod discord_spec;
pub mod discord_wire;
pub mod fake_appstore;
pub mod fake_discourse;
pub mod fake_github;
pub mod fake_lemmy;
pub mod fake_sources;
pub mod fake_stackexchange;
pub mod fake_youtube;
pub mod faults;
pub mod feeds;
pub mod schema;
pub mod slack;
pub mod slack_spec;
pub mod store_backend;
pub mod violations;

pub use config::ConfigBuilder;
pub use daemon::*;
pub use feeds::*;
pub use slack::*;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::net::SocketAddr;
use std::time::Duration;

pub const BOT_TOKEN: &str = "xoxb-test-token";

/// Sends the in-process daemons' log (warnings and errors; `MENTIONDESK_TEST_LOG` sets
/// another filter) to the test harness's captured output, which is printed only for a test
/// that fails: a failure then says what the daemon saw, not just what the test asserted.
/// Tests that capture the log themselves set their own subscriber on their thread.
pub fn capture_daemon_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("MENTIONDESK_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_ansi(false)
            .with_test_writer()
            .finish();
        // Another test binary's harness may have set one already: theirs stays.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// Polls `f` every 20 ms until it returns Some, or panics after `secs` naming `what`.
pub async fn poll_until<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `router` on 127.0.0.1:0 in the background and returns its address.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

/// Runs `mentiondesk match` with the config file `cfg` and `args` over `lines` (one JSON
/// object each) and returns its JSON output lines; fails the test unless it exits 0.
pub fn run_match(
    cfg: &std::path::Path,
    args: &[&str],
    lines: &[serde_json::Value],
) -> Vec<serde_json::Value> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = mentiondesk()
        .arg("match")
        .args(args)
        .arg("--config")
        .arg(cfg)
        .env("MENTIONDESK_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for l in lines {
            writeln!(stdin, "{l}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `mentiondesk` binary with the settings it reads from the environment removed, so a
/// developer's exported `SLACK_BOT_TOKEN` (which turns Slack on without a `[slack]` table) or
/// `MENTIONDESK_LISTEN` can never make a test talk to a real workspace or another port.
pub fn mentiondesk() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_mentiondesk"));
    for var in [
        "MENTIONDESK_CONFIG",
        "MENTIONDESK_STORE",
        "MENTIONDESK_LISTEN",
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "SLACK_API_URL",
        "DISCORD_BOT_TOKEN",
        "DISCORD_APPLICATION_ID",
        "DISCORD_PUBLIC_KEY",
        "DISCORD_GUILD_ID",
        "DISCORD_GATEWAY",
        "DISCORD_API_URL",
    ] {
        c.env_remove(var);
    }
    c
}

/// A port that was free a moment ago, for configs that must name one.
///
/// Taken from 20000–31999, below Linux's ephemeral range (32768–60999 by default) from which
/// every `127.0.0.1:0` fake and every outgoing connection gets its port: a port handed out by
/// the kernel could be given to another test's fake between this check and the daemon's
/// bind, and that test would then talk to the wrong server. A counter keeps this process's
/// ports distinct; the process id spreads concurrent test processes apart.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = (std::process::id() % 600) * 20;
    for _ in 0..12_000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + ((start + n) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000–31999");
}

/// Accepts a WebSocket upgrade on an axum route with tokio-tungstenite, the version the
/// product's own websocket code and slack-morphism already use: axum's `ws` feature would
/// build a second tungstenite (and its rand/getrandom) into every test binary.
pub fn ws_upgrade<F, Fut>(req: axum::extract::Request, on_socket: F) -> Response
where
    F: FnOnce(
            tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>,
        ) -> Fut
        + Send
        + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use axum::http::header;
    use tokio_tungstenite::tungstenite::{handshake::derive_accept_key, protocol::Role};
    let headers = req.headers();
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return (StatusCode::BAD_REQUEST, "not a websocket upgrade").into_response();
    };
    let upgrade_ok = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade_ok {
        return (StatusCode::BAD_REQUEST, "not a websocket upgrade").into_response();
    }
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let io = hyper_util::rt::TokioIo::new(upgraded);
            let socket =
                tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Server, None).await;
            on_socket(socket).await;
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(axum::body::Body::empty())
        .expect("static upgrade response")
}
