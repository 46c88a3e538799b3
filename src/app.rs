//! Wiring: builds the pipeline from a `Config` in data-flow order (store, sources, intake,
//! relay, desk, timers, spikes, digests, server), runs each stage as a task, and stops them
//! in order on shutdown. It decides nothing about mentions itself.

use crate::chat::console::ConsolePlatform;
use crate::chat::discord::DiscordPlatform;
use crate::chat::setup;
use crate::chat::slack::SlackPlatform;
use crate::chat::{ChatError, ChatPlatform};
use crate::clock::Clock;
use crate::desk::dispatch::Dispatcher;
use crate::desk::timers::Timers;
use crate::desk::Desk;
use crate::digest::{self, DigestJob, Digests};
use crate::intake::{self, Intake, Judge};
use crate::metrics::Metrics;
use crate::relay::{self, Platforms, Relay};
use crate::server::discord::DiscordEndpoints;
use crate::server::slack::SlackEndpoints;
use crate::server::{self, admin, AppState};
use crate::settings::Config;
use crate::shutdown::{self, Shutdown, ShutdownTrigger};
use crate::sources::{self, poll};
use crate::spikes::SpikeWatch;
use crate::store::Store;
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long shutdown waits for the relay to finish the post in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(40);
/// How long shutdown waits for interaction answers still being worked on.
const ANSWER_DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the HTTP server may finish the requests open at shutdown (a webhook body is
/// bounded by its source's timeout; a client that trickles forever is cut off here).
const SERVER_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

pub fn judge(config: &Config) -> Judge {
    Judge {
        matcher: config.matcher.clone(),
        rules: config.rules.clone(),
        source_languages: config
            .sources
            .iter()
            .map(|s| s.common())
            .filter(|c| !c.languages.is_empty())
            .map(|c| (c.name.clone(), c.languages.clone()))
            .collect(),
    }
}

pub(crate) fn slack_platform(config: &Config) -> anyhow::Result<Option<Arc<SlackPlatform>>> {
    match &config.slack {
        Some(s) => Ok(Some(Arc::new(
            SlackPlatform::new(&s.api_url, s.bot_token.expose()).context("setting up Slack")?,
        ))),
        None => Ok(None),
    }
}

pub(crate) fn discord_platform(config: &Config) -> anyhow::Result<Option<Arc<DiscordPlatform>>> {
    match &config.discord {
        Some(d) => Ok(Some(Arc::new(
            DiscordPlatform::new(&d.api_url, d.bot_token.expose()).context("setting up Discord")?,
        ))),
        None => Ok(None),
    }
}

pub(crate) fn platforms(
    slack: Option<Arc<SlackPlatform>>,
    discord: Option<Arc<DiscordPlatform>>,
) -> Platforms {
    Platforms {
        slack: slack.map(|s| s as Arc<dyn ChatPlatform>),
        discord: discord.map(|d| d as Arc<dyn ChatPlatform>),
        console: Arc::new(ConsolePlatform),
    }
}

/// The rules' names, as the digest and the store's volume log know them.
fn rule_names(config: &Config) -> Vec<String> {
    config.rules.iter().map(|r| r.name.clone()).collect()
}

/// The configured digests with their schedules parsed (the config check already did).
pub(crate) fn digest_jobs(config: &Config) -> anyhow::Result<Vec<DigestJob>> {
    config
        .digest
        .iter()
        .map(|d| {
            let mut job = DigestJob::from_config(d)
                .map_err(|e| anyhow::anyhow!("digest {:?}: {e}", d.name))?;
            job.relevance = config.relevance.clone();
            job.command = config.desk.command.clone();
            Ok(job)
        })
        .collect()
}

/// `digest --now` without a running daemon: opens the store itself, queues the digest and
/// delivers it (and anything else still in the outbox) once.
pub async fn digest_now_offline(
    config: &Config,
    name: Option<&str>,
) -> anyhow::Result<Vec<(String, crate::model::DigestPost)>> {
    let store = Store::open_with(&config.store).await?;
    let jobs = digest_jobs(config)?;
    let rules = rule_names(config);
    let queued = digest::queue_now(&store, &rules, &jobs, name, chrono::Utc::now()).await?;
    let platforms = platforms(slack_platform(config)?, discord_platform(config)?);
    let (_trigger, shutdown) = shutdown::channel();
    relay::deliver_due(&store, &platforms, &Metrics::default(), &shutdown).await;
    let left: Vec<String> = store
        .outbox()
        .await?
        .into_iter()
        .filter(|(_, e)| matches!(e.action, crate::store::OutboxAction::Digest(_)))
        .map(|(_, e)| format!("{}: {}", e.target, e.last_error.unwrap_or_default()))
        .collect();
    store.close().await?;
    if !left.is_empty() {
        anyhow::bail!(
            "the digest is queued but could not be delivered yet ({}); the daemon retries it when it runs",
            left.join("; ")
        );
    }
    Ok(queued)
}

/// How long `check --online` waits for one platform call.
const ONLINE_CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// `check --online`: the configured chat platforms' credentials (`auth.test`,
/// `GET /users/@me`) and, where they are accepted, every alert, escalation and digest
/// target channel, Slack's app-level token when Socket Mode is configured, and the `/desk`
/// command's registration on Discord. One (what, outcome) per check; an `Err` is the problem
/// with its fix (a Discord permission problem names every permission and the invite URL).
/// Tokens never appear in the outcome.
pub async fn check_online(
    config: &Config,
) -> anyhow::Result<Vec<(String, Result<String, String>)>> {
    let slack = slack_platform(config)?;
    let discord = discord_platform(config)?;
    let platforms = platforms(slack.clone(), discord.clone());
    let mut out = Vec::new();
    let mut accepted = Vec::new();
    for p in platforms.configured() {
        let what = format!("{} credentials", p.name());
        match tokio::time::timeout(ONLINE_CHECK_TIMEOUT, p.verify()).await {
            Ok(Ok(me)) => {
                accepted.push(p.name());
                out.push((what, Ok(format!("accepted (bot {})", me.name))));
            }
            Ok(Err(e)) => out.push((what, Err(e.to_string()))),
            Err(_) => out.push((
                what,
                Err(format!(
                    "{} did not answer within {ONLINE_CHECK_TIMEOUT:?}; check the network and [{}].api_url",
                    p.name(),
                    p.name()
                )),
            )),
        }
    }
    let app_token = config.slack.as_ref().and_then(|c| c.app_token.as_ref());
    if let (Some(slack), Some(app_token)) = (&slack, app_token) {
        let what = "slack app-level token (Socket Mode)".to_string();
        match tokio::time::timeout(
            ONLINE_CHECK_TIMEOUT,
            slack.verify_app_token(app_token.expose()),
        )
        .await
        {
            Ok(Ok(())) => out.push((what, Ok("accepted".into()))),
            Ok(Err(e)) => out.push((what, Err(e.to_string()))),
            Err(_) => out.push((what, Err("slack did not answer in time".into()))),
        }
    }
    let discord_app = config.discord.as_ref().map(|d| d.application_id);
    for t in alert_targets(config) {
        let p = platforms.for_target(&t);
        if !accepted.contains(&p.name()) {
            continue;
        }
        let what = format!("target {t}");
        match tokio::time::timeout(ONLINE_CHECK_TIMEOUT, p.check_channel(t.channel())).await {
            Ok(Ok(proved)) => out.push((what, Ok(proved))),
            Ok(Err(e)) => out.push((what, Err(setup::describe_error(&e, discord_app)))),
            Err(_) => out.push((what, Err(format!("{} did not answer in time", p.name())))),
        }
    }
    // The slash command. Discord: registered exactly as `run` registers it (a PUT that
    // replaces the application's guild or global command list with this one definition, so
    // any other command there is removed, as `run` would), which proves the application id
    // belongs to the token and the bot was invited with the applications.commands scope.
    // Slack keeps commands in the app's settings, which a bot token cannot read.
    if let (Some(cfg), Some(discord)) = (&config.discord, &discord) {
        if accepted.contains(&"discord") {
            let what = format!("discord command {}", config.desk.command);
            let registered = tokio::time::timeout(
                ONLINE_CHECK_TIMEOUT,
                discord.register_commands(cfg.application_id, cfg.guild_id, &config.desk.command),
            )
            .await;
            out.push((
                what,
                match registered {
                    Ok(Ok(())) => Ok(format!(
                        "registered ({}), as `run` registers it: the application's {} command list is now {} alone",
                        registered_where(cfg),
                        if cfg.guild_id.is_some() { "guild" } else { "global" },
                        config.desk.command
                    )),
                    Ok(Err(e)) => Err(format!(
                        "{e}; check [discord].application_id (Developer Portal → General Information → Application ID){} and that the bot was invited with the applications.commands scope: {}",
                        if cfg.guild_id.is_some() { " and [discord].guild_id" } else { "" },
                        setup::discord_invite_url(cfg.application_id)
                    )),
                    Err(_) => Err("discord did not answer in time".into()),
                },
            ));
        }
    }
    if config.slack.is_some() && accepted.contains(&"slack") {
        out.push((
            format!("slack command {}", config.desk.command),
            Ok(format!(
                "not checkable with a bot token: the app's Slash Commands page must list {}{}",
                config.desk.command,
                if config.slack.as_ref().is_some_and(|s| s.app_token.is_some()) {
                    " (Socket Mode: no Request URL needed)"
                } else {
                    " with the Request URL https://<your host>/slack/commands"
                }
            )),
        ));
    }
    Ok(out)
}

/// Where `/desk` is registered on Discord, for the log and `check --online`.
fn registered_where(cfg: &crate::chat::config::DiscordConfig) -> String {
    match cfg.guild_id {
        Some(g) => format!("application {}, guild {g}", cfg.application_id),
        None => format!(
            "application {}, globally: new servers may take up to an hour to see it",
            cfg.application_id
        ),
    }
}

/// Every alert target of the config: each rule's `alert`, `[desk].escalate_to` and every
/// digest's `to`, sorted and deduplicated.
pub fn alert_targets(config: &Config) -> Vec<crate::model::Target> {
    let mut targets: Vec<crate::model::Target> = config
        .rules
        .iter()
        .flat_map(|r| r.alert.iter().cloned())
        .chain(config.desk.escalate_to.iter().cloned())
        .chain(config.digest.iter().flat_map(|d| d.to.iter().cloned()))
        .collect();
    targets.sort();
    targets.dedup();
    targets
}

/// `test-alert` without a running daemon: posts the test alert with this process's own
/// credentials. Nothing is stored; the store is not even opened.
pub async fn test_alert_direct(
    config: &Config,
    to: Option<&str>,
) -> anyhow::Result<Vec<(crate::model::Target, Result<String, String>)>> {
    let platforms = platforms(slack_platform(config)?, discord_platform(config)?);
    admin::send_test_alerts(
        &platforms,
        &alert_targets(config),
        to,
        chrono::Utc::now(),
        config.discord.as_ref().map(|d| d.application_id),
    )
    .await
    .map_err(anyhow::Error::msg)
}

/// Which chat platforms the config posts to, for the start-up log and `check`:
/// `slack`, `discord`, `slack+discord` or `console`.
pub fn chat_label(config: &Config) -> &'static str {
    match (config.slack.is_some(), config.discord.is_some()) {
        (true, true) => "slack+discord",
        (true, false) => "slack",
        (false, true) => "discord",
        (false, false) => "console",
    }
}

/// Socket Mode is the only way commands and buttons reach a bot without a public URL, and
/// a token is read only at start: a refused app-level token stops the start with its fix
/// (the SDK would otherwise retry it every 10 s forever, with no fix, while the desk looks
/// up). Slack being unreachable is not fatal: Socket Mode keeps trying to connect.
async fn check_app_token(slack: &SlackPlatform, app_token: &str) -> anyhow::Result<()> {
    match slack.verify_app_token(app_token).await {
        Ok(()) => Ok(()),
        Err(e @ ChatError::Refused { .. }) => {
            anyhow::bail!("cannot start Slack Socket Mode: {e}")
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not check the Slack app-level token; Socket Mode keeps trying to connect");
            Ok(())
        }
    }
}

/// The daemon: runs until SIGINT/SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let (trigger, shutdown) = shutdown::channel();
    let signals = tokio::spawn(wait_for_signal(trigger));
    let result = run_until(config, shutdown).await;
    signals.abort();
    result
}

/// Runs every task until `shutdown` fires; then stops them in order and flushes the store.
pub async fn run_until(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    run_with_clock(config, shutdown, Clock::System).await
}

/// `run_until` with an explicit clock for business time (tests anchor it to tokio's).
///
/// Builds the pipeline in data-flow order (store, sources, intake, relay, desk, timers,
/// spikes, digests, server), then spawns each stage's `run(self, shutdown)` in the same
/// order, and at shutdown joins them: producers first, then the relay finishes the post in
/// flight, then the server; last the store is flushed.
pub(crate) async fn run_with_clock(
    config: Config,
    shutdown: Shutdown,
    clock: Clock,
) -> anyhow::Result<()> {
    // Chat platforms first: a refused Socket Mode token stops the start before anything runs.
    let slack = slack_platform(&config)?;
    if let (Some(cfg), Some(platform)) = (&config.slack, &slack) {
        if let Some(app_token) = &cfg.app_token {
            check_app_token(platform, app_token.expose()).await?;
        }
    }
    let discord = discord_platform(&config)?;
    let metrics = Arc::new(Metrics::default());

    // Store.
    let store = Store::open_with(&config.store).await?;
    let listener = server::bind(config.server.listen).await.with_context(|| {
        format!(
            "cannot listen on {} ([server].listen); is another process using it?",
            config.server.listen
        )
    })?;
    tracing::info!(
        listen = %listener.local_addr()?,
        store = %config.store.path.display(),
        sources = config.sources.len(),
        rules = config.rules.len(),
        chat = chat_label(&config),
        "mentiondesk running"
    );
    // Mentions already stored never alert again (dedup), so a config newly pointed at Slack
    // or Discord posts nothing until a new mention arrives: say so, and how to test.
    let stored_alerts = store.alert_count().await;
    if stored_alerts > 0 {
        tracing::info!(
            stored_alerts,
            "{stored_alerts} alert{} already in the store; only new mentions will alert (to see an alert now: mentiondesk test-alert)",
            if stored_alerts == 1 { " is" } else { "s are" }
        );
    }
    // Opening a big store (sled's recovery, the desk index, the journal's hashes) freed
    // much of what it allocated; give it back before the daemon settles.
    crate::heap::release_free_off_runtime().await;

    // Sources: one poll loop each, all feeding the intake.
    let health = poll::Health::default();
    let (poll_tx, poll_rx) = mpsc::channel(64);
    let mut source_runs = Vec::new();
    // Webhook sources are not polled: the server hands their deliveries to the intake.
    let mut webhooks = Vec::new();
    for spec in &config.sources {
        let source = sources::build(spec).with_context(|| format!("source {:?}", spec.name()))?;
        health.register(spec.name(), spec.kind().as_str());
        if let sources::SourceConfig::Webhook(c) = spec {
            webhooks.push(c);
            continue;
        }
        let state = store.source_state(spec.name()).await?;
        let poller = poll::Poller::new(
            source,
            spec.every(),
            spec.timeout(),
            state,
            poll_tx.clone(),
            health.clone(),
        )
        // Several replicas on PostgreSQL: polled only while this one holds its lease.
        .with_lease(crate::intake::leases::StoreLeases::gate(&store));
        source_runs.push(poller.run(shutdown.clone()));
    }
    drop(poll_tx);

    // Intake: judged mentions and their alerts into the store (and so into the outbox),
    // and webhook deliveries, each answered once stored (`sources::webhook`).
    let (delivery_tx, delivery_rx) = mpsc::channel(16);
    let mut intake = Intake::new(
        Arc::new(judge(&config)),
        config.desk.escalate_after,
        store.clone(),
        poll_rx,
        metrics.clone(),
        clock,
    )
    .with_relevance(config.relevance.clone());
    let ingest = (!webhooks.is_empty()).then(|| {
        server::ingest::IngestEndpoints::new(
            webhooks,
            delivery_tx,
            health.clone(),
            clock,
            shutdown.clone(),
        )
    });
    if ingest.is_some() {
        intake = intake.with_deliveries(delivery_rx);
    }

    // Relay: outbox to chat, woken by the store. A refused token is logged with its fix and
    // shows in /healthz; the daemon keeps running and keeps storing alerts, which go out
    // once the token is fixed.
    let delivery = relay::DeliveryHealth::default();
    let admin_platforms = platforms(slack.clone(), discord.clone());
    let relay = Relay::new(
        store.clone(),
        admin_platforms.clone(),
        metrics.clone(),
        delivery.clone(),
        clock,
    );
    relay.check_credentials().await;

    // Desk and its timers, the spike watch and the digests: they write alerts, notes and
    // digests to the store; the relay posts them.
    let desk = Desk::new(store.clone(), config.desk.clone())
        .with_relevance(config.relevance.clone())
        .with_metrics(metrics.clone());
    let timers = Timers::new(desk.clone(), store.clone(), clock);
    let spike_watch = config.spikes.enabled.then(|| {
        SpikeWatch::new(
            config.spikes.clone(),
            config.rules.clone(),
            config.desk.clone(),
            store.clone(),
            clock,
            metrics.clone(),
            health.clone(),
        )
    });
    let jobs = digest_jobs(&config)?;
    let rule_names = rule_names(&config);
    let digests = Digests::new(jobs.clone(), store.clone(), rule_names.clone(), clock);

    // Server: Slack and Discord callbacks (or Socket Mode and the gateway), the admin
    // endpoint, /healthz and /metrics.
    let dispatcher = Dispatcher::new(desk.clone(), store.clone(), clock).with_test_alerts(
        admin_platforms.configured().cloned().collect(),
        config.discord.as_ref().map(|d| d.application_id),
    );
    // Answers that outlive their request; joined at shutdown.
    let interaction_work = server::Tasks::default();
    let slack_endpoints = match (&config.slack, slack) {
        (Some(cfg), Some(platform)) => Some(SlackEndpoints::new(
            cfg.signing_secret.clone(),
            platform,
            dispatcher.clone(),
            clock,
            interaction_work.clone(),
        )),
        _ => None,
    };
    let discord_endpoints = match (&config.discord, discord) {
        (Some(cfg), Some(platform)) => {
            match platform
                .register_commands(cfg.application_id, cfg.guild_id, &config.desk.command)
                .await
            {
                Ok(()) => tracing::info!(
                    command = %config.desk.command,
                    application = cfg.application_id,
                    guild = cfg.guild_id.map(|g| g.to_string()).unwrap_or_else(|| "global".into()),
                    "registered the Discord slash command ({})",
                    registered_where(cfg)
                ),
                // The alerts and buttons still work; only the slash command is missing.
                Err(e) => tracing::error!(
                    command = %config.desk.command,
                    application = cfg.application_id,
                    error = %e,
                    "could not register the Discord slash command; check [discord].application_id and invite the bot with the applications.commands scope: {}",
                    setup::discord_invite_url(cfg.application_id)
                ),
            }
            Some(
                DiscordEndpoints::new(
                    &cfg.public_key,
                    platform,
                    cfg.application_id,
                    dispatcher.clone(),
                    clock,
                    interaction_work.clone(),
                )
                .map_err(anyhow::Error::msg)?,
            )
        }
        _ => None,
    };
    let gateway = match (&config.discord, &discord_endpoints) {
        // With its token refused the gateway cannot connect; the fix is already logged and in
        // /healthz, and the daemon keeps storing alerts until a restart with a good token.
        (Some(cfg), Some(_)) if cfg.gateway && delivery.refused("discord") => {
            tracing::error!("not starting the Discord gateway: Discord refuses the bot token");
            None
        }
        (Some(cfg), Some(ep)) if cfg.gateway => Some(
            crate::chat::discord::gateway::start(
                &cfg.api_url,
                cfg.bot_token.expose(),
                ep.platform.clone(),
                Arc::new(ep.clone()),
            )
            .await
            .context("starting the Discord gateway")?,
        ),
        _ => None,
    };
    let socket_mode = match (&config.slack, &slack_endpoints) {
        (Some(cfg), Some(ep)) => match &cfg.app_token {
            Some(app_token) => Some(
                ep.platform
                    .socket_mode(app_token.expose(), Arc::new(ep.clone()))
                    .await
                    .context("starting Slack Socket Mode")?,
            ),
            None => None,
        },
        _ => None,
    };
    let token_path = admin::token_path(&config.store.path);
    let admin = match admin::write_token(&token_path) {
        Ok(token) => Some(admin::Admin {
            token: token.into(),
            jobs: jobs.into(),
            rules: rule_names.into(),
            store: store.clone(),
            clock,
            platforms: admin_platforms,
            targets: alert_targets(&config).into(),
            discord_application: config.discord.as_ref().map(|d| d.application_id),
        }),
        Err(e) => {
            tracing::warn!(path = %token_path.display(), error = %e, "cannot write the admin token; `digest --now` will not reach this daemon");
            None
        }
    };
    let server = server::serve(
        listener,
        AppState {
            store: store.clone(),
            health,
            metrics,
            slack: slack_endpoints,
            discord: discord_endpoints,
            admin,
            delivery,
            ingest,
        },
        shutdown.clone(),
    );

    // Start every stage, in the same order. Nothing was spawned before: every platform call
    // made while building (credential check, command registration, gateway) is done, so a
    // platform's pause starting now holds everything that follows it.
    let source_tasks: Vec<_> = source_runs.into_iter().map(tokio::spawn).collect();
    let intake_task = tokio::spawn(intake.run(shutdown.clone()));
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));
    let timers_task = tokio::spawn(timers.run(shutdown.clone()));
    let spike_task = spike_watch.map(|w| tokio::spawn(w.run(shutdown.clone())));
    let digest_task = tokio::spawn(digests.run(shutdown.clone()));
    let server_task = tokio::spawn(server);

    let mut waiter = shutdown.clone();
    waiter.wait().await;
    tracing::info!("shutting down: finishing the delivery in flight");
    for t in source_tasks {
        join("source", t).await;
    }
    join("intake", intake_task).await;
    join("timers", timers_task).await;
    if let Some(t) = spike_task {
        join("spikes", t).await;
    }
    join("digests", digest_task).await;
    match tokio::time::timeout(DRAIN_TIMEOUT, relay_task).await {
        Ok(r) => report_panic("relay", r),
        Err(_) => {
            tracing::warn!("relay did not stop in time; undelivered alerts stay in the outbox")
        }
    }
    let server_abort = server_task.abort_handle();
    match tokio::time::timeout(SERVER_DRAIN_TIMEOUT, server_task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "the HTTP server stopped with an error"),
        Ok(Err(e)) => report_panic("server", Err(e)),
        Err(_) => {
            // A client that never finishes its request must not keep the daemon running.
            tracing::warn!(
                wait_secs = SERVER_DRAIN_TIMEOUT.as_secs(),
                "requests still open after the wait; closing their connections"
            );
            server_abort.abort();
        }
    }
    if let Some(sm) = socket_mode {
        sm.shutdown().await;
    }
    if let Some(gw) = gateway {
        gw.shutdown().await;
    }
    // Every way a request comes in is closed now, so no new work can start: answers still
    // being worked on (a deferred command, a button's follow-up) finish or are reported. The
    // desk changes they write are stored; the relay has stopped, so their messages go out at
    // the next start.
    interaction_work.join(ANSWER_DRAIN_TIMEOUT).await;
    store.close().await?;
    let _ = std::fs::remove_file(&token_path);
    tracing::info!("stopped; store flushed");
    Ok(())
}

/// Waits for a stage's task to end after shutdown.
async fn join(stage: &'static str, task: JoinHandle<()>) {
    report_panic(stage, task.await);
}

/// A stage that panicked has stopped early; shutdown goes on, but the log says so.
fn report_panic(stage: &'static str, result: Result<(), tokio::task::JoinError>) {
    if let Err(e) = result {
        tracing::error!(stage, error = %e, "a pipeline stage ended abnormally");
    }
}

async fn wait_for_signal(trigger: ShutdownTrigger) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
                trigger.trigger();
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    trigger.trigger();
}

/// `scan --once`: polls every source once and returns what matched, posting nothing and
/// writing nothing.
pub async fn scan_once(
    config: &Config,
) -> anyhow::Result<Vec<(String, Result<Vec<ScanHit>, String>)>> {
    let judge = judge(config);
    let mut out = Vec::new();
    for spec in &config.sources {
        let mut source =
            sources::build(spec).with_context(|| format!("source {:?}", spec.name()))?;
        let mut state = sources::SourceState::default();
        let polled = tokio::time::timeout(spec.timeout(), source.poll(&mut state)).await;
        let result = match polled {
            Err(_) => Err(format!("timed out after {:?}", spec.timeout())),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(mentions)) => Ok(mentions
                .into_iter()
                .filter_map(|m| {
                    let v = judge.judge(&m);
                    v.priority.is_some().then_some(ScanHit {
                        mention: m,
                        verdict: v,
                    })
                })
                .collect()),
        };
        out.push((spec.name().to_string(), result));
    }
    Ok(out)
}

pub struct ScanHit {
    pub mention: crate::model::Mention,
    pub verdict: intake::Verdict,
}
