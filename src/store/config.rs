//! `[store]`: which backend holds the store (sled, embedded, the default; or PostgreSQL),
//! where it lives, how much memory sled's page cache may use, and how long mention bodies are
//! kept. Reads only its own section; opening the store is `store`'s job.

use crate::config::{Reader, Table};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

const KEYS: &[&str] = &[
    "path",
    "cache_mb",
    "keep_mentions",
    "backend",
    "url",
    "pool_size",
    "tls",
    "replica",
    "lease",
];

/// Connections in the PostgreSQL pool when `pool_size` is not set: enough for the desk's
/// callbacks, the relay and the intake at once without holding many server processes.
pub(crate) const DEFAULT_POOL_SIZE: usize = 8;

/// How long a replica's claim on a source (and on an outbox entry) lasts without renewal when
/// `lease` is not set: a dead replica's work moves to another within this time.
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// sled's page cache when `cache_mb` is not set. sled's own default is 1 GiB, which it fills
/// as the store grows: the daemon's memory then grows with the store instead of the config.
pub(crate) const DEFAULT_CACHE_MB: u64 = 16;

/// How long a mention's body is kept when `keep_mentions` is not set.
pub(crate) const DEFAULT_KEEP_MENTIONS: Duration = Duration::from_secs(90 * 24 * 3600);

/// Where the store lives without `[store] path`: `data/` next to the config file.
const DEFAULT_PATH: &str = "data/mentiondesk.sled";

#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    pub path: PathBuf,
    /// sled's page cache in MiB (`cache_mb`): the largest part of the daemon's memory that
    /// grows with the store (see README, "Store").
    pub cache_mb: u64,
    /// Mention bodies (text, title, author, link) of mentions that raised no alert are
    /// dropped this long after they were received (`keep_mentions`); their dedup keys stay,
    /// so they are never alerted again. Alerts keep their mention.
    pub keep_mentions: Duration,
    /// Where versions before config-relative paths opened this store: `path` (or the default)
    /// relative to the working directory, `${VAR}`s replaced. When nothing is at `path` but
    /// a store is here, opening refuses instead of starting an empty store that would alert
    /// on every mention again.
    pub previous: Option<PathBuf>,
    /// `backend`: sled (embedded, one process) unless `backend = "postgres"`.
    pub backend: Backend,
}

/// Which database holds the store (`[store] backend`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Backend {
    /// The embedded store at `path` (the default; one process at a time).
    #[default]
    Sled,
    /// A shared PostgreSQL database that several replicas can use at once.
    Postgres(PgConfig),
}

/// `[store]` with `backend = "postgres"`: where the database is and how to reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct PgConfig {
    /// `url`: a `postgres://` URL; it may hold a password, so it only prints redacted.
    pub url: PgUrl,
    /// `pool_size`: connections the pool opens at most.
    pub pool_size: usize,
    /// `tls`; `None` follows the URL's `sslmode` (libpq's default, `prefer`, without one).
    pub tls: Option<TlsMode>,
    /// `replica`: this process's name among the replicas sharing the database, written as
    /// the owner of what it holds (source leases, outbox claims) and shown on `/healthz`.
    /// Unique per process: the default is `<hostname>-<pid>-<random>`.
    pub replica: String,
    /// `lease`: how long what a replica holds stays held without renewal.
    pub lease: Duration,
}

impl PgConfig {
    /// The defaults for the database at `url` (tests and tools that connect directly).
    pub fn new(url: impl Into<String>) -> PgConfig {
        PgConfig {
            url: PgUrl::new(url),
            pool_size: DEFAULT_POOL_SIZE,
            tls: None,
            replica: default_replica(),
            lease: DEFAULT_LEASE,
        }
    }
}

/// `<hostname>-<pid>-<4 random hex digits>`: readable on `/healthz`, stable for the life of
/// the process (a restarted replica is a new owner; its old leases lapse), and unique even
/// where hostname and pid repeat (containers on the host's network all run as pid 1 under
/// the host's name).
fn default_replica() -> String {
    use std::hash::{BuildHasher, Hasher};
    // std's per-process random hash keys: randomness without a dependency.
    let salt = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        & 0xffff;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "mentiondesk".to_string());
    format!("{host}-{}-{salt:04x}", std::process::id())
}

/// Whether the connection to PostgreSQL is encrypted (`[store] tls`), as libpq's `sslmode`
/// of the same names. With TLS, the server's certificate is always checked against the
/// system's root certificates (stricter than libpq's `require`, which checks nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Never: plain TCP (a database on the same host or a private network).
    Disable,
    /// When the server offers it, else plain (libpq's default).
    Prefer,
    /// Always: refuse to talk to a server without TLS.
    Require,
}

impl TlsMode {
    fn parse(s: &str) -> Result<TlsMode, String> {
        match s {
            "disable" => Ok(TlsMode::Disable),
            "prefer" => Ok(TlsMode::Prefer),
            "require" => Ok(TlsMode::Require),
            other => Err(format!(
                "unknown TLS mode {other:?}; write tls = \"disable\", \"prefer\" or \"require\""
            )),
        }
    }
}

/// A PostgreSQL connection URL. It may hold a password: `Debug` and `Display` show it with
/// the password replaced by `***`; only the driver gets the whole URL ([`PgUrl::expose`]).
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl(String);

impl PgUrl {
    pub fn new(url: impl Into<String>) -> PgUrl {
        PgUrl(url.into())
    }

    /// The URL as written, password included: for the driver only, never for a message.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password replaced by `***`, in the user part and in a `password=`
    /// query parameter (both reach the server), and the whole URL hidden when it does not
    /// parse, as it might then show a password anywhere.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut u) => {
                if u.password().is_some() {
                    // Cannot fail on a URL that has a password (it has a host).
                    let _ = u.set_password(Some("***"));
                }
                if u.query_pairs().any(|(k, _)| k == "password") {
                    let pairs: Vec<(String, String)> = u
                        .query_pairs()
                        .map(|(k, v)| {
                            let v = if k == "password" {
                                "***".into()
                            } else {
                                v.into_owned()
                            };
                            (k.into_owned(), v)
                        })
                        .collect();
                    u.query_pairs_mut().clear().extend_pairs(pairs);
                }
                u.to_string()
            }
            Err(_) => "(unreadable postgres URL)".to_string(),
        }
    }

    /// `text` (a driver's or a server's error) with the password, should it appear, replaced.
    pub fn scrub(&self, text: &str) -> String {
        let Ok(u) = url::Url::parse(&self.0) else {
            return text.to_string();
        };
        let mut secrets: Vec<String> = Vec::new();
        if let Some(p) = u.password().filter(|p| !p.is_empty()) {
            secrets.push(p.to_string());
            secrets.push(decode(p));
        }
        for (k, v) in u.query_pairs() {
            if k == "password" && !v.is_empty() {
                secrets.push(v.into_owned());
            }
        }
        // The raw query form too (`%XX` escapes as written).
        if let Some(q) = u.query() {
            for pair in q.split('&') {
                if let Some(("password", v)) = pair.split_once('=') {
                    if !v.is_empty() {
                        secrets.push(v.to_string());
                    }
                }
            }
        }
        // Longest first, so a password that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.iter().fold(text.to_string(), |t, secret| {
            t.replace(secret.as_str(), "***")
        })
    }
}

/// A URL component with its `%XX` escapes decoded (a password as the server sees it).
fn decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgUrl({:?})", self.redacted())
    }
}

impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl StoreConfig {
    /// The defaults with the store at `path` (tests and tools that open a store directly).
    pub fn at(path: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            path: path.into(),
            cache_mb: DEFAULT_CACHE_MB,
            keep_mentions: DEFAULT_KEEP_MENTIONS,
            previous: None,
            backend: Backend::Sled,
        }
    }

    /// The PostgreSQL settings when `backend = "postgres"`.
    pub fn postgres(&self) -> Option<&PgConfig> {
        match &self.backend {
            Backend::Postgres(pg) => Some(pg),
            Backend::Sled => None,
        }
    }

    /// Reads `[store]` (all keys optional).
    pub(crate) fn read(r: &mut Reader, root: &Table) -> StoreConfig {
        let t = r.table(root, "store");
        if let Some(t) = t {
            r.known_keys(t, "store", KEYS);
        }
        // Relative paths, the default too, are relative to the config file's folder.
        let path = t
            .and_then(|t| r.path(t, "store", "path"))
            .unwrap_or_else(|| r.resolve(DEFAULT_PATH));
        let mut config = StoreConfig::at(path);
        let raw = t.and_then(|t| r.peek_string(t, "path"));
        config.previous = Some(PathBuf::from(raw.as_deref().unwrap_or(DEFAULT_PATH)));
        if let Some(t) = t {
            if let Some(mb) = r.integer(t, "store", "cache_mb") {
                config.cache_mb = mb;
            }
            if let Some(keep) = r.duration(t, "store", "keep_mentions") {
                config.keep_mentions = keep;
            }
            config.backend = read_backend(r, t);
        }
        config
    }
}

/// `backend` and, for PostgreSQL, `url`, `pool_size` and `tls`. A problem never quotes the
/// URL's value: it may hold a password.
fn read_backend(r: &mut Reader, t: &Table) -> Backend {
    let backend = r.string(t, "store", "backend");
    let postgres = match backend.as_deref() {
        None | Some("sled") => false,
        Some("postgres") => true,
        Some(other) => {
            let line = r.key_line(t, "backend");
            r.problem(
                line,
                "store.backend",
                format!("unknown backend {other:?}; write backend = \"sled\" (embedded, the default) or backend = \"postgres\" (with url = \"${{DATABASE_URL}}\")"),
            );
            return Backend::Sled;
        }
    };
    if !postgres {
        for key in ["url", "pool_size", "tls", "replica", "lease"] {
            if t.contains_key(key) {
                let line = r.key_line(t, key);
                r.warning(
                    line,
                    &format!("store.{key}"),
                    "is ignored: it only applies to PostgreSQL; add backend = \"postgres\" to use it, or remove it",
                );
            }
        }
        return Backend::Sled;
    }
    let url = match r.required_string(t, "store", "url") {
        Some(u) => check_url(r, t, &u).then_some(u),
        None => None,
    };
    let pool_size = r
        .integer(t, "store", "pool_size")
        .map_or(DEFAULT_POOL_SIZE, |n| n as usize);
    let tls = r.parsed(t, "store", "tls", TlsMode::parse);
    let replica = r
        .string(t, "store", "replica")
        .map(|s| s.trim().to_string());
    if replica.as_deref() == Some("") {
        let line = r.key_line(t, "replica");
        r.problem(
            line,
            "store.replica",
            "is empty; write a name unique to this process (e.g. replica = \"${HOSTNAME}\"), or remove it for <hostname>-<pid>-<random>",
        );
    }
    let lease = r.duration(t, "store", "lease").unwrap_or(DEFAULT_LEASE);
    if lease < Duration::from_secs(3) {
        let line = r.key_line(t, "lease");
        r.problem(
            line,
            "store.lease",
            "is shorter than 3s: a replica renews every third of it, and a shorter lease would move sources on every slow database answer; write lease = \"15s\" (the default) or longer",
        );
    }
    match url {
        Some(url) => Backend::Postgres(PgConfig {
            url: PgUrl::new(url),
            pool_size,
            tls,
            replica: replica.unwrap_or_else(default_replica),
            lease,
        }),
        // Reported; the config is refused, so what is returned does not matter.
        None => Backend::Sled,
    }
}

/// Whether `url` is a `postgres://` URL the driver can read; reports it at `url` if not.
fn check_url(r: &mut Reader, t: &Table, url: &str) -> bool {
    let line = r.key_line(t, "url");
    let example = "write url = \"postgres://USER:PASSWORD@HOST:5432/DATABASE\", or url = \"${DATABASE_URL}\" and export DATABASE_URL";
    if url.trim().is_empty() {
        r.problem(line, "store.url", format!("is empty; {example}"));
        return false;
    }
    let scheme = url.split_once("://").map(|(s, _)| s);
    if !matches!(scheme, Some("postgres" | "postgresql")) {
        r.problem(
            line,
            "store.url",
            format!("is not a postgres:// URL; {example}"),
        );
        return false;
    }
    // libpq's certificate-checking modes, as managed databases print them: the driver knows
    // only disable/prefer/require (and `tls = "require"` checks the certificate anyway).
    let sslmode = url::Url::parse(url).ok().and_then(|u| {
        u.query_pairs()
            .find(|(k, _)| k == "sslmode" || k == "sslrootcert")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
    });
    if let Some((key, value)) = sslmode.filter(|(k, v)| {
        k == "sslrootcert" || matches!(v.as_str(), "verify-full" | "verify-ca" | "allow")
    }) {
        r.problem(
            line,
            "store.url",
            format!(
                "has {key}={value}, which mentiondesk does not read; remove it from the URL and write [store] tls = \"require\" (the server's certificate is then checked against the system's trusted roots)"
            ),
        );
        return false;
    }
    if let Err(e) = url.parse::<tokio_postgres::Config>() {
        let redacted = PgUrl::new(url);
        r.problem(
            line,
            "store.url",
            format!(
                "cannot be read as a PostgreSQL URL ({}); {example}",
                redacted.scrub(&e.to_string())
            ),
        );
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problem;
    use std::path::Path;

    /// `[store]` of `text` read alone, with `DATABASE_URL` set to `url`: the config, or
    /// its problems; and the warnings.
    fn read(text: &str, url: &str) -> (Result<StoreConfig, Vec<Problem>>, Vec<Problem>) {
        let env = |k: &str| (k == "DATABASE_URL").then(|| url.to_string());
        let doc = crate::config::parse_document(text, Path::new("t.toml")).unwrap();
        let mut r = Reader::new(text, &env);
        let config = StoreConfig::read(&mut r, doc.as_table());
        match r.finish(Path::new("t.toml")) {
            Ok(warnings) => (Ok(config), warnings),
            Err(crate::config::ConfigError::Invalid { problems, .. }) => (Err(problems), vec![]),
            Err(e) => panic!("{e}"),
        }
    }

    const SECRET_URL: &str = "postgres://desk:hunter2@db.internal:5432/mentiondesk";

    #[test]
    fn sled_stays_the_default_and_postgres_reads_url_pool_and_tls() {
        let (config, warnings) = read("[store]\npath = \"x.sled\"\n", SECRET_URL);
        assert_eq!(config.unwrap().backend, Backend::Sled);
        assert!(warnings.is_empty());

        let text = "[store]\nbackend = \"postgres\"\nurl = \"${DATABASE_URL}\"\npool_size = 3\ntls = \"require\"\n";
        let (config, warnings) = read(text, SECRET_URL);
        let Backend::Postgres(pg) = config.unwrap().backend else {
            panic!("postgres")
        };
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(pg.url.expose(), SECRET_URL);
        assert_eq!(pg.pool_size, 3);
        assert_eq!(pg.tls, Some(TlsMode::Require));

        let text = "[store]\nbackend = \"postgres\"\nurl = \"${DATABASE_URL}\"\n";
        let Backend::Postgres(pg) = read(text, SECRET_URL).0.unwrap().backend else {
            panic!("postgres")
        };
        assert_eq!(pg.pool_size, DEFAULT_POOL_SIZE);
        assert_eq!(pg.tls, None, "the URL's sslmode decides");
    }

    /// Each mistake is refused at its line with the fix, and never quotes the URL (it may
    /// hold a password).
    #[test]
    fn postgres_mistakes_are_refused_at_their_line_with_the_fix() {
        let cases: &[(&str, usize, &str, &str)] = &[
            (
                "[store]\nbackend = \"postgres\"\n",
                1,
                "store.url",
                "missing; add url = ",
            ),
            (
                "[store]\nbackend = \"postgress\"\n",
                2,
                "store.backend",
                "unknown backend \"postgress\"; write backend = \"sled\"",
            ),
            (
                "[store]\nbackend = \"postgres\"\n\nurl = \"mysql://desk:hunter2@db/x\"\n",
                4,
                "store.url",
                "is not a postgres:// URL; write url = \"postgres://USER:PASSWORD@HOST:5432/DATABASE\"",
            ),
            (
                "[store]\nbackend = \"postgres\"\nurl = \"postgres://desk:hunter2@db/x?sslmode=sometimes\"\n",
                3,
                "store.url",
                "cannot be read as a PostgreSQL URL",
            ),
            (
                "[store]\nbackend = \"postgres\"\nurl = \"${DATABASE_URL}\"\ntls = \"maybe\"\n",
                4,
                "store.tls",
                "unknown TLS mode \"maybe\"; write tls = \"disable\", \"prefer\" or \"require\"",
            ),
            (
                "[store]\nbackend = \"postgres\"\nurl = \"${DATABASE_URL}\"\npool_size = 0\n",
                4,
                "store.pool_size",
                "must be a positive whole number",
            ),
        ];
        for (text, line, key, message) in cases {
            let problems = read(text, SECRET_URL).0.unwrap_err();
            assert_eq!(problems.len(), 1, "{text}: {problems:?}");
            let p = &problems[0];
            assert_eq!((p.line, p.key.as_str()), (*line, *key), "{text}: {p:?}");
            assert!(p.message.contains(message), "{text}: {p:?}");
            assert!(!p.message.contains("hunter2"), "{p:?}");
        }
        // An unset variable is refused as for any other key.
        let text = "[store]\nbackend = \"postgres\"\nurl = \"${NOT_SET}\"\n";
        let problems = read(text, SECRET_URL).0.unwrap_err();
        assert_eq!(problems[0].key, "store.url", "{problems:?}");
    }

    #[test]
    fn postgres_keys_without_the_postgres_backend_are_a_warning() {
        let (config, warnings) = read("[store]\nurl = \"${DATABASE_URL}\"\n", SECRET_URL);
        assert_eq!(config.unwrap().backend, Backend::Sled);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(
            (warnings[0].line, warnings[0].key.as_str()),
            (2, "store.url")
        );
        assert!(warnings[0].message.contains("add backend = \"postgres\""));
    }

    #[test]
    fn libpq_certificate_modes_name_the_setting_to_use_instead() {
        for (url, shown) in [
            (
                "postgres://u@db/x?sslmode=verify-full",
                "sslmode=verify-full",
            ),
            (
                "postgres://u@db/x?sslrootcert=/etc/ca.pem",
                "sslrootcert=/etc/ca.pem",
            ),
        ] {
            let text = format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n");
            let problems = read(&text, SECRET_URL).0.unwrap_err();
            let p = &problems[0];
            assert_eq!((p.line, p.key.as_str()), (3, "store.url"), "{p:?}");
            assert!(p.message.contains(shown), "{p:?}");
            assert!(p.message.contains("tls = \"require\""), "{p:?}");
        }
    }

    #[test]
    fn the_url_prints_without_its_password() {
        let url = PgUrl::new(SECRET_URL);
        for shown in [
            url.to_string(),
            format!("{url:?}"),
            format!("{:?}", PgConfig::new(SECRET_URL)),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(
                shown.contains("desk:***@db.internal:5432/mentiondesk"),
                "{shown}"
            );
        }
        assert_eq!(
            url.scrub("password authentication failed: hunter2"),
            "password authentication failed: ***"
        );
        // Escaped in the URL, shown by a server decoded: both are scrubbed.
        let escaped = PgUrl::new("postgres://u:p%40ss@h/d");
        assert_eq!(escaped.scrub("p@ss and p%40ss"), "*** and ***");
        assert_eq!(
            PgUrl::new("postgres://u@h/d").redacted(),
            "postgres://u@h/d"
        );
        assert!(!PgUrl::new("not a url hunter2")
            .to_string()
            .contains("hunter2"));
        // libpq and the driver also take the password as a query parameter.
        let query = PgUrl::new("postgres://desk@db/md?sslmode=require&password=hunter%212");
        for shown in [query.to_string(), format!("{query:?}")] {
            assert!(!shown.contains("hunter"), "{shown}");
            assert!(shown.contains("sslmode=require"), "{shown}");
            assert!(shown.contains("password=***"), "{shown}");
        }
        assert_eq!(
            query.scrub("bad password hunter!2 (hunter%212)"),
            "bad password *** (***)"
        );
    }
}
