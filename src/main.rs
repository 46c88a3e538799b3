//! The `mentiondesk` command line: parses arguments, sets up logging, runs one subcommand
//! and turns its outcome into an exit code. Business logic lives in the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use mentiondesk::{app, intake::Judge, model::Mention, settings};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "mentiondesk",
    version,
    about = "Puts brand mentions that matter on your team's desk in Slack"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: poll sources, post alerts, serve /healthz and /metrics
    Run(ConfigArg),
    /// Validate the config and compile every rule; print every problem with its line
    Check {
        /// Also check the chat credentials and that the bot can post into every target
        #[arg(long)]
        online: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Dry-run the rules: JSON lines of mentions on stdin, one JSON verdict per line on stdout
    Match(ConfigArg),
    /// Poll every source once and print what matched; posts nothing, stores nothing
    Scan {
        /// Poll once and exit (the only mode today; required so the intent is explicit)
        #[arg(long)]
        once: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Build and post the digest now (through the running daemon if there is one)
    Digest {
        /// Send it now (required: the schedule in [digest] sends the regular ones)
        #[arg(long)]
        now: bool,
        /// Only the digest with this name (default: every configured digest)
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(clap::Args)]
struct ConfigArg {
    /// Config file [default: config/mentiondesk.toml]
    #[arg(long, short = 'c', env = "MENTIONDESK_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
}

impl ConfigArg {
    fn path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| PathBuf::from(settings::DEFAULT_PATH))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Run(c) => run(&c),
        Command::Check { online, config } => check(&config, online),
        Command::Match(c) => match_lines(&c),
        Command::Scan { once, config } => scan(once, &config),
        Command::Digest { now, name, config } => digest_now(now, name.as_deref(), &config),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("MENTIONDESK_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,slack_morphism=warn,hyper=warn,sled=warn")
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn load(c: &ConfigArg) -> anyhow::Result<settings::Config> {
    Ok(settings::load(&c.path())?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(c: &ConfigArg) -> anyhow::Result<ExitCode> {
    let config = load(c)?;
    for w in &config.warnings {
        // One log line: the query and caret lines are for `check`.
        let first = w.message.lines().next().unwrap_or_default();
        tracing::warn!(line = w.line, key = %w.key, "config warning: {first}");
    }
    for origin in &config.origins {
        tracing::info!("config: {origin}");
    }
    runtime()?.block_on(app::run(config))?;
    Ok(ExitCode::SUCCESS)
}

fn check(c: &ConfigArg, online: bool) -> anyhow::Result<ExitCode> {
    match settings::load(&c.path()) {
        Ok(cfg) => {
            let chat: Vec<&str> = [
                cfg.slack.as_ref().map(|_| "Slack"),
                cfg.discord.as_ref().map(|_| "Discord"),
            ]
            .into_iter()
            .flatten()
            .collect();
            println!(
                "{}: ok ({} source{}, {} rule{}, alerts to {})",
                c.path().display(),
                cfg.sources.len(),
                if cfg.sources.len() == 1 { "" } else { "s" },
                cfg.rules.len(),
                if cfg.rules.len() == 1 { "" } else { "s" },
                if chat.is_empty() {
                    "the console".to_string()
                } else {
                    chat.join(" and ")
                },
            );
            // Which chat sections and overrides came from the environment (names, no values).
            for origin in &cfg.origins {
                println!("  {origin}");
            }
            // Warnings do not fail the check: the config works, it may just not say what was
            // meant.
            for w in &cfg.warnings {
                println!(
                    "{}: warning: {}: {}",
                    w.location(&c.path()),
                    w.key,
                    w.message.replace('\n', "\n      ")
                );
            }
            if !online {
                return Ok(ExitCode::SUCCESS);
            }
            let results = runtime()?.block_on(app::check_online(&cfg))?;
            if results.is_empty() {
                println!("no chat platform configured: alerts go to the console");
            }
            let mut problems = 0;
            for (what, outcome) in results {
                match outcome {
                    Ok(ok) => println!("{what}: {ok}"),
                    Err(problem) => {
                        problems += 1;
                        println!("{what}: problem: {problem}");
                    }
                }
            }
            Ok(if problems > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// One input line of `match`.
#[derive(serde::Deserialize)]
struct MatchInput {
    id: serde_json::Value,
    text: String,
    title: Option<String>,
    url: Option<String>,
    author: Option<String>,
    source: Option<String>,
    lang: Option<String>,
}

fn match_lines(c: &ConfigArg) -> anyhow::Result<ExitCode> {
    let cfg = load(c)?;
    let judge = app::judge(&cfg);
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut bad = 0usize;
    for (n, line) in stdin.lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let out = match serde_json::from_str::<MatchInput>(&line) {
            Ok(input) => verdict_json(&judge, input),
            Err(e) => {
                bad += 1;
                serde_json::json!({
                    "line": n + 1,
                    "error": format!("not a mention: {e}; expected {{\"id\",\"text\",\"title\"?,\"url\"?,\"author\"?,\"source\"?,\"lang\"?}}"),
                })
            }
        };
        writeln!(stdout, "{out}")?;
    }
    stdout.flush()?;
    if bad > 0 {
        eprintln!(
            "{bad} input line{} could not be read",
            if bad == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn verdict_json(judge: &Judge, input: MatchInput) -> serde_json::Value {
    let source = input.source.unwrap_or_else(|| "stdin".into());
    let mention = Mention {
        item_id: input.id.to_string(),
        source_kind: source.clone(),
        source,
        url: input.url,
        title: input.title,
        text: input.text,
        author: input.author,
        author_reach: None,
        published: None,
        lang: input.lang,
        rating: None,
    };
    let v = judge.judge(&mention);
    serde_json::json!({
        "id": input.id,
        "rules": v.rules,
        "sentiment": v.sentiment,
        "negative": v.negative,
        "priority": v.priority,
    })
}

fn scan(once: bool, c: &ConfigArg) -> anyhow::Result<ExitCode> {
    if !once {
        anyhow::bail!("scan needs --once (to watch continuously, use `mentiondesk run`)");
    }
    let cfg = load(c)?;
    let results = runtime()?.block_on(app::scan_once(&cfg))?;
    let mut failed = 0;
    for (source, result) in results {
        let kind = cfg
            .sources
            .iter()
            .find(|s| s.name() == source)
            .map(|s| s.kind());
        if kind == Some(mentiondesk::sources::SourceKind::Webhook) {
            // Nothing to poll: its mentions arrive while `run` listens.
            println!(
                "{source}: webhook source: it receives mentions at POST /ingest/{source} while `mentiondesk run` runs; nothing to poll"
            );
            continue;
        }
        match result {
            Ok(hits) => {
                println!(
                    "{source}: {} matching mention{}",
                    hits.len(),
                    if hits.len() == 1 { "" } else { "s" }
                );
                for h in hits {
                    let text = mentiondesk::chat::escape::terminal_text(
                        &mentiondesk::chat::escape::truncate(&h.mention.text, 160),
                    );
                    println!(
                        "  [{}] {} · {} · {}",
                        h.verdict.priority.map(|p| p.as_str()).unwrap_or("-"),
                        h.verdict.rules.join(","),
                        h.mention.url.as_deref().unwrap_or("(no link)"),
                        text
                    );
                }
            }
            Err(e) => {
                failed += 1;
                println!("{source}: error: {e}");
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `digest --now`: asks the running daemon (which holds the store) through its loopback admin
/// endpoint; with no daemon running, opens the store and sends the digest itself.
fn digest_now(now: bool, name: Option<&str>, c: &ConfigArg) -> anyhow::Result<ExitCode> {
    if !now {
        anyhow::bail!("digest needs --now (scheduled digests are sent by `mentiondesk run`)");
    }
    let cfg = load(c)?;
    if cfg.digest.is_empty() {
        anyhow::bail!(
            "no [digest] is configured in {}; add one (see README, \"Daily digest\")",
            cfg.path.display()
        );
    }
    let rt = runtime()?;
    let token_path = mentiondesk::server::admin::token_path(&cfg.store.path);
    let mut addr = cfg.server.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{addr}/admin/digest");
    if let Ok(token) = std::fs::read_to_string(&token_path) {
        let asked = rt.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .no_proxy()
                .build()?;
            let body = serde_json::json!({ "name": name });
            client
                .post(&url)
                .bearer_auth(token.trim())
                .json(&body)
                .send()
                .await
        });
        match asked {
            Ok(resp) => {
                let status = resp.status();
                let text = rt.block_on(resp.text()).unwrap_or_default();
                if !status.is_success() {
                    anyhow::bail!("the running daemon refused: {text}");
                }
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                for q in v["queued"].as_array().into_iter().flatten() {
                    println!(
                        "queued {:?} for {} (the running daemon posts it now)",
                        q["title"].as_str().unwrap_or_default(),
                        q["to"]
                            .as_array()
                            .map(|a| a
                                .iter()
                                .filter_map(|t| t.as_str())
                                .collect::<Vec<_>>()
                                .join(", "))
                            .unwrap_or_default()
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) if e.is_connect() => {
                // Nobody listens: the daemon is not running (a stale token file); go direct.
            }
            Err(e) => anyhow::bail!(
                "could not ask the running daemon at {url}: {}",
                e.without_url()
            ),
        }
    }
    let sent = rt.block_on(app::digest_now_offline(&cfg, name)).map_err(|e| {
        if e.downcast_ref::<mentiondesk::store::StoreError>()
            .is_some_and(|s| matches!(s, mentiondesk::store::StoreError::Locked { .. }))
        {
            anyhow::anyhow!("a running mentiondesk holds the store at {}, but it did not answer at {url}; is [server].listen the same in its config? (or stop it and run this again)", cfg.store.path.display())
        } else {
            e
        }
    })?;
    for (_, post) in sent {
        println!("sent {:?}", post.title);
    }
    Ok(ExitCode::SUCCESS)
}
