//! The `mentiondesk` command line: parses arguments, sets up logging, runs one subcommand
//! and turns its outcome into an exit code. Business logic lives in the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use mentiondesk::store::pg::PgStore;
use mentiondesk::{app, intake::Judge, model::Mention, settings};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "mentiondesk",
    version,
    about = "Puts brand mentions that matter on your team's desk in Slack or Discord (or the console)",
    long_about = "Puts brand mentions that matter on your team's desk in Slack or Discord, where \
people claim, discuss and resolve them; without [slack] or [discord] in the config, alerts go \
to the console.",
    after_help = "Every command reads the config from --config PATH, else $MENTIONDESK_CONFIG, \
else config/mentiondesk.toml. Logs go to stderr; set MENTIONDESK_LOG (e.g. debug) for more. \
Exit code: 0 on success, 1 on any problem."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: poll sources, post alerts, serve /healthz and /metrics
    #[command(
        long_about = "Run the daemon: poll every source, post alerts for new matching mentions \
to Slack, Discord or the console, answer /desk commands and buttons, send escalations and \
digests, and serve /healthz and /metrics on [server].listen. Mentions already in the store never \
alert again. Stops cleanly on SIGINT/SIGTERM."
    )]
    Run(ConfigArg),
    /// Validate the config and compile every rule; print every problem with its line
    #[command(
        long_about = "Validate the config and compile every rule; print every problem with its \
line and key, and warnings (a rule that may not mean what it says). Exits 1 if there is any \
problem; warnings alone exit 0. With --online, also ask Slack and Discord: tokens, every \
alert/escalation/digest channel, Socket Mode's app token and the /desk command, each with its \
fix. On Discord the /desk check registers the command exactly as `run` does, replacing the \
application's (guild or global) command list with that one definition; no message is posted. \
With [store] backend = \"postgres\", also connect to the database and report its schema version \
(nothing is migrated)."
    )]
    Check {
        /// Also check the chat credentials, that the bot can reach every target channel, and
        /// the /desk command (Discord: registered exactly as `run` registers it, replacing the
        /// application's command list with that one definition); posts no message. With the
        /// PostgreSQL backend, also the database connection and schema version
        #[arg(long)]
        online: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Dry-run the rules: JSON lines of mentions on stdin, one JSON verdict per line on stdout
    #[command(
        long_about = "Dry-run the rules: read one JSON mention per line on stdin, write one JSON \
verdict per line on stdout, in the same order. No store, no network.",
        after_help = "Input, one object per line (only id and text are required):
  {\"id\": 1, \"text\": \"...\", \"title\": \"...\", \"url\": \"...\", \"author\": \"...\", \"source\": \"...\", \"lang\": \"en\"}
Output, one object per input line:
  {\"id\": 1, \"rules\": [\"acme\"], \"sentiment\": -0.62, \"negative\": true, \"priority\": \"high\", \"lang\": \"en\", \"vader\": -0.34}
  rules: the names of the rules that matched (empty: no alert); sentiment: -1..1, the
  trained model's P(positive) - P(negative); negative: the model calls it negative about or a
  complaint to the brand; priority: low | normal | high | critical; vader: VADER's compound
  score, for comparison, with --vader only (null without it: VADER costs more than the rest
  of the analysis). sentiment, negative, priority and vader are null when no rule matched;
  lang: the input's lang, else detected (ISO 639-1) when a rule matched, null when unknown;
  sentiment, negative and vader are null for a post not in English (only English is scored).
A line that is not a mention gets {\"line\": N, \"error\": \"...\"} and the exit code is 1.
Example:
  echo '{\"id\":1,\"text\":\"Acme lost my refund\"}' | mentiondesk match --config config/mentiondesk.toml"
    )]
    Match(MatchArgs),
    /// Poll every source once and print what matched; posts nothing, stores nothing
    #[command(
        after_help = "Prints, per source, the number of matching mentions and one line each: \
[priority] rules · link · text. Exit code: 0 when every source answered, 1 when any source \
failed (its line says why); the other sources are still printed."
    )]
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
    /// Post a clearly marked sample alert to every alert target and report each outcome
    #[command(
        name = "test-alert",
        long_about = "Post a clearly marked sample alert (\"🧪 Test alert — mentiondesk is \
connected; nothing to do\") to every configured target: each rule's alert targets, \
[desk].escalate_to and every digest's targets, each once; or only to --to TARGET. Prints one \
line per target: ok, or the problem with its fix (token refused, channel not found, bot not in \
the channel, missing scope or permission). Goes through the running daemon when there is one \
(its credentials are the ones that matter), directly otherwise. The test alert is not stored: \
it never escalates, never shows in digests or stats, and its buttons do nothing. Exit code 1 \
if any target failed."
    )]
    TestAlert {
        /// Only this target, e.g. slack:#pr-alerts, slack:C0123ABCD or discord:<channel id>
        #[arg(long, value_name = "TARGET")]
        to: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Work on a store itself (copy it to another backend)
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy everything a store holds into another (sled to PostgreSQL, and back)
    #[command(
        long_about = "Copy everything a store holds (mentions and their seen keys, alerts with \
their audit logs, timers, outbox and message references, request ids, mutes, thread keys, \
labels and relevance counts, rule hits, digest slots and other marks, source states, and the \
next alert id) into another store, so a daemon started on the copy carries on where the \
original stopped. Stop the daemon (or every replica) first: a sled store allows one process, \
and a PostgreSQL store with live leases is refused. The source is only read. The target must \
be empty, or an earlier copy of the same source that nothing has written to since (an \
interrupted copy, or running this again): that copy is replaced, so running it twice gives \
the same store. Prints how many records of each kind were copied.",
        after_help = "Stores: sled:PATH (the store's folder), postgres://user[:password]@host[:port]/db \
(passwords are never printed), or postgres alone for the URL in $DATABASE_URL.
Example:
  mentiondesk store copy --from sled:data/mentiondesk.sled --to postgres"
    )]
    Copy {
        /// The store to copy from: sled:PATH, postgres://… or postgres ($DATABASE_URL)
        #[arg(long, value_name = "STORE")]
        from: String,
        /// The store to copy into: sled:PATH, postgres://… or postgres ($DATABASE_URL)
        #[arg(long, value_name = "STORE")]
        to: String,
    },
}

#[derive(clap::Args)]
struct MatchArgs {
    /// Also print VADER's compound score of each matched line (`vader`; null without this)
    #[arg(long)]
    vader: bool,
    #[command(flatten)]
    config: ConfigArg,
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
    mentiondesk::heap::limit_arenas();
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Run(c) => run(&c),
        Command::Check { online, config } => check(&config, online),
        Command::Match(m) => match_lines(&m.config, m.vader),
        Command::Scan { once, config } => scan(once, &config),
        Command::Digest { now, name, config } => digest_now(now, name.as_deref(), &config),
        Command::TestAlert { to, config } => test_alert(to.as_deref(), &config),
        Command::Store(StoreCommand::Copy { from, to }) => store_copy(&from, &to),
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
    settings::load(&c.path()).map_err(|e| anyhow::anyhow!(config_message(&e)))
}

/// A config error as one message: a missing file says where it was looked for and how to fix
/// it, once (the io error's text is not repeated as a cause).
fn config_message(e: &mentiondesk::config::ConfigError) -> String {
    match e {
        mentiondesk::config::ConfigError::Read { path, source }
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            format!(
                "no config file at {}: copy the bundled config/mentiondesk.toml there and edit it, or pass --config PATH (or set MENTIONDESK_CONFIG)",
                path.display()
            )
        }
        e => e.to_string(),
    }
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

fn store_copy(from: &str, to: &str) -> anyhow::Result<ExitCode> {
    use mentiondesk::store::copy::{copy, Location};
    let database_url = std::env::var("DATABASE_URL").ok();
    let from = Location::parse(from, database_url.clone()).context("--from")?;
    let to = Location::parse(to, database_url).context("--to")?;
    let summary = runtime()?.block_on(copy(&from, &to))?;
    print!("{summary}");
    Ok(ExitCode::SUCCESS)
}

fn check(c: &ConfigArg, online: bool) -> anyhow::Result<ExitCode> {
    match settings::load(&c.path()) {
        Ok(cfg) => {
            let chat = match app::chat_label(&cfg) {
                "slack+discord" => "Slack and Discord",
                "slack" => "Slack",
                "discord" => "Discord",
                _ => "the console",
            };
            println!(
                "{}: ok ({} source{}, {} rule{}, alerts to {})",
                c.path().display(),
                cfg.sources.len(),
                if cfg.sources.len() == 1 { "" } else { "s" },
                cfg.rules.len(),
                if cfg.rules.len() == 1 { "" } else { "s" },
                chat,
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
            let rt = runtime()?;
            let mut results = rt.block_on(app::check_online(&cfg))?;
            if results.is_empty() {
                println!("no chat platform configured: alerts go to the console");
            }
            if let Some(pg) = cfg.store.postgres() {
                // Connects without migrating: `run` migrates.
                let facts = rt.block_on(PgStore::check_online(pg));
                let outcome = facts.map_err(|e| e.to_string()).and_then(|f| f.summary());
                results.push(("store (PostgreSQL)".to_string(), outcome));
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
            eprintln!("{}", config_message(&e));
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

fn match_lines(c: &ConfigArg, with_vader: bool) -> anyhow::Result<ExitCode> {
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
        match serde_json::from_str::<MatchInput>(&line) {
            Ok(input) => {
                serde_json::to_writer(&mut stdout, &verdict_json(&judge, input, with_vader))?
            }
            Err(e) => {
                bad += 1;
                let out = serde_json::json!({
                    "line": n + 1,
                    "error": format!("not a mention: {e}; expected {{\"id\",\"text\",\"title\"?,\"url\"?,\"author\"?,\"source\"?,\"lang\"?}}"),
                });
                serde_json::to_writer(&mut stdout, &out)?;
            }
        }
        stdout.write_all(b"\n")?;
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

fn verdict_json(judge: &Judge, input: MatchInput, with_vader: bool) -> MatchOutput {
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
    // VADER's compound, for comparison and the parity scripts (`--vader`); like the model's
    // figures, only for a matched mention. Off by default: it costs more per post than the
    // model and the matcher together (BENCHMARKS.md, "Rule matcher").
    let vader = v.sentiment.filter(|_| with_vader).map(|_| {
        let text = mentiondesk::analysis::negativity::analysed_text(
            mention.title.as_deref(),
            &mention.text,
        );
        mentiondesk::analysis::sentiment::score(&text).score
    });
    MatchOutput {
        id: input.id,
        lang: v.lang,
        negative: v.negative,
        priority: v.priority,
        rules: v.rules,
        sentiment: v.sentiment,
        vader,
    }
}

/// One output line of `match`. The fields are in the order the output always had (sorted):
/// written straight from this struct, without building a `serde_json::Value` map per line.
#[derive(serde::Serialize)]
struct MatchOutput {
    id: serde_json::Value,
    lang: Option<String>,
    negative: Option<bool>,
    priority: Option<mentiondesk::model::Priority>,
    rules: Vec<String>,
    sentiment: Option<f64>,
    vader: Option<f64>,
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

/// Asks the running daemon at `/admin/{endpoint}` with the admin token it wrote beside the
/// store. `Ok(None)` when no daemon is running (no token file, or nobody listens).
fn ask_daemon(
    rt: &tokio::runtime::Runtime,
    cfg: &settings::Config,
    endpoint: &str,
    body: serde_json::Value,
) -> anyhow::Result<Option<serde_json::Value>> {
    let token_path = mentiondesk::server::admin::token_path(&cfg.store.path);
    let Ok(token) = std::fs::read_to_string(&token_path) else {
        return Ok(None);
    };
    let url = daemon_url(cfg, endpoint);
    let asked = rt.block_on(async {
        // Longer than the daemon's own bound on a test alert (every target at once, each
        // allowed TEST_ALERT_TIMEOUT), so the per-target results always arrive.
        let client = reqwest::Client::builder()
            .timeout(
                std::time::Duration::from_secs(120)
                    .max(mentiondesk::chat::setup::TEST_ALERT_TIMEOUT * 2),
            )
            .no_proxy()
            .build()?;
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
            Ok(Some(serde_json::from_str(&text).unwrap_or_default()))
        }
        // Nobody listens: the daemon is not running (a stale token file); go direct.
        Err(e) if e.is_connect() => Ok(None),
        Err(e) => anyhow::bail!(
            "could not ask the running daemon at {url}: {}",
            e.without_url()
        ),
    }
}

/// The daemon's admin URL on this machine.
fn daemon_url(cfg: &settings::Config, endpoint: &str) -> String {
    let mut addr = cfg.server.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}/admin/{endpoint}")
}

/// The error for a store another process holds while its admin endpoint did not answer.
fn held_store(e: anyhow::Error, cfg: &settings::Config, endpoint: &str) -> anyhow::Error {
    if e.downcast_ref::<mentiondesk::store::StoreError>()
        .is_some_and(|s| matches!(s, mentiondesk::store::StoreError::Locked { .. }))
    {
        anyhow::anyhow!("a running mentiondesk holds the store at {}, but it did not answer at {}; is [server].listen the same in its config? (or stop it and run this again)", cfg.store.path.display(), daemon_url(cfg, endpoint))
    } else {
        e
    }
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
    if let Some(v) = ask_daemon(&rt, &cfg, "digest", serde_json::json!({ "name": name }))? {
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
    let sent = rt
        .block_on(app::digest_now_offline(&cfg, name))
        .map_err(|e| held_store(e, &cfg, "digest"))?;
    for (_, post) in sent {
        println!("sent {:?}", post.title);
    }
    Ok(ExitCode::SUCCESS)
}

/// `test-alert`: posts the sample alert through the running daemon if there is one (its
/// credentials are the ones alerts use), else with this process's; one line per target.
fn test_alert(to: Option<&str>, c: &ConfigArg) -> anyhow::Result<ExitCode> {
    let cfg = load(c)?;
    let rt = runtime()?;
    let (results, via): (Vec<(String, bool, String)>, &str) =
        match ask_daemon(&rt, &cfg, "test-alert", serde_json::json!({ "to": to }))? {
            Some(v) => (
                v["results"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        (
                            r["target"].as_str().unwrap_or_default().to_string(),
                            r["ok"].as_bool().unwrap_or(false),
                            r["detail"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect(),
                "through the running daemon",
            ),
            None => (
                rt.block_on(app::test_alert_direct(&cfg, to))?
                    .into_iter()
                    .map(|(t, r)| match r {
                        Ok(d) => (t.to_string(), true, d),
                        Err(d) => (t.to_string(), false, d),
                    })
                    .collect(),
                "directly (no daemon is running)",
            ),
        };
    let failed = results.iter().filter(|(_, ok, _)| !ok).count();
    for (target, ok, detail) in &results {
        if *ok {
            println!("{target}: ok: {detail}");
        } else {
            println!("{target}: problem: {detail}");
        }
    }
    println!(
        "{} of {} target{} reached, {via}; test alerts are not stored (no escalation, digest or stats)",
        results.len() - failed,
        results.len(),
        if results.len() == 1 { "" } else { "s" }
    );
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
