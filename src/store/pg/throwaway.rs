//! Throwaway PostgreSQL clusters for tests, benchmarks and scripts (not part of mentiondesk's
//! behaviour; hidden from its docs). One cluster per process, started on first use from the
//! server binaries installed on the machine (`initdb`, `postgres`), in a temporary folder, on
//! a free port of 127.0.0.1 only; each caller gets a fresh database in it.
//!
//! - **Skips**: without the binaries, [`database`] returns `None` and the first call prints
//!   one line naming what is missing and how to install it. With `CI` set to `true` it
//!   panics instead, so a CI run cannot pass by skipping.
//! - **Not as root**: PostgreSQL refuses to run as root; run as root, the cluster belongs to
//!   the `postgres` system user Debian's package creates (else `nobody`).
//! - **Never outlives the process**: the server runs under a small shell watchdog that reads
//!   a pipe from this process; when the process ends in any way (exit, panic, abort,
//!   SIGKILL) the pipe closes, and the watchdog stops the server and deletes the folder.
//! - **Test-only speed settings**: `fsync`, `synchronous_commit` and `full_page_writes` are
//!   off and `initdb` does not sync: a crash of the machine loses the cluster, which nobody
//!   needs. Never use these settings for a real database.

use crate::store::config::{PgConfig, TlsMode};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where Debian's packages put each major version's server binaries.
pub const DEBIAN_LIB_DIR: &str = "/usr/lib/postgresql";

/// The superuser `initdb` creates (whatever the OS user is).
const SUPERUSER: &str = "postgres";

/// How long a start may take (initdb plus the server's first start) on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The server binaries a cluster needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    pub initdb: PathBuf,
    pub postgres: PathBuf,
}

/// Finds `initdb` and `postgres`: in the folders of `path` (a `PATH` value) first, then in
/// `lib_dir/<version>/bin`, newest version first. The error names each missing binary and
/// how to install it.
pub fn find_binaries(path: Option<&OsStr>, lib_dir: &Path) -> Result<Binaries, String> {
    let mut dirs: Vec<PathBuf> = path
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(lib_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let major = name.split('.').next()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.0));
    dirs.extend(versions.into_iter().map(|(_, d)| d));
    // Both from one folder: an initdb of one major version cannot start the server of another.
    let both = dirs
        .iter()
        .find(|d| is_executable(&d.join("initdb")) && is_executable(&d.join("postgres")));
    let find = |name: &str| dirs.iter().map(|d| d.join(name)).find(|p| is_executable(p));
    if let Some(d) = both {
        return Ok(Binaries {
            initdb: d.join("initdb"),
            postgres: d.join("postgres"),
        });
    }
    match (find("initdb"), find("postgres")) {
        (Some(_), Some(_)) => Err(format!(
            "skipping the PostgreSQL tests: initdb and postgres were found, but not in one folder (in PATH or {}/*/bin); install the server with `apt-get install postgresql`",
            lib_dir.display()
        )),
        (initdb, postgres) => {
            let missing: Vec<&str> = [
                ("initdb", initdb.is_none()),
                ("postgres", postgres.is_none()),
            ]
            .into_iter()
            .filter_map(|(n, gone)| gone.then_some(n))
            .collect();
            Err(format!(
                "skipping the PostgreSQL tests: {} not found (in PATH or {}/*/bin); install the server with `apt-get install postgresql`",
                missing.join(" and "),
                lib_dir.display()
            ))
        }
    }
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A running cluster, shared by everything in this process.
pub struct Cluster {
    port: u16,
    dir: PathBuf,
    /// The watchdog; its stdin is the pipe that stops the server when this process ends.
    /// Never dropped (the cluster lives in a static): the pipe closes with the process.
    _watchdog: Mutex<Child>,
    next_db: AtomicU64,
}

/// Why there is no cluster.
#[derive(Debug)]
enum Unavailable {
    /// The binaries are not installed: the tests skip.
    Missing(String),
    /// They are, but the cluster did not start: the tests fail.
    Failed(String),
}

static CLUSTER: OnceLock<Result<Cluster, Unavailable>> = OnceLock::new();
static SKIP_LINE: std::sync::Once = std::sync::Once::new();

/// This process's cluster, started on first use; `None` (after one printed line) when the
/// server binaries are not installed. Panics when they are but the cluster cannot start, or
/// when `CI=true` and they are missing.
pub fn cluster() -> Option<&'static Cluster> {
    let found = CLUSTER.get_or_init(|| {
        let path = std::env::var_os("PATH");
        match find_binaries(path.as_deref(), Path::new(DEBIAN_LIB_DIR)) {
            Err(missing) => Err(Unavailable::Missing(missing)),
            Ok(bins) => Cluster::start(&bins).map_err(Unavailable::Failed),
        }
    });
    match found {
        Ok(c) => Some(c),
        Err(Unavailable::Missing(line)) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{line} (CI=true: PostgreSQL must be installed, see .ci/run)");
            }
            // Past the test harness's output capture, so it shows once even when every
            // test passes.
            SKIP_LINE.call_once(|| {
                let _ = writeln!(std::io::stderr(), "{line}");
            });
            None
        }
        Err(Unavailable::Failed(why)) => {
            panic!("the throwaway PostgreSQL cluster did not start: {why}")
        }
    }
}

/// A fresh, empty database in this process's cluster (`None`: skipped, see [`cluster`]).
pub async fn database() -> Option<TestDatabase> {
    Some(cluster()?.database().await)
}

/// One database of the throwaway cluster.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    pub name: String,
    pub port: u16,
}

impl TestDatabase {
    /// `postgres://postgres@127.0.0.1:PORT/NAME` (the cluster trusts local connections).
    pub fn url(&self) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{}",
            self.port, self.name
        )
    }

    /// `[store]` for this database: no TLS (the throwaway server has no certificate), a
    /// small pool.
    pub fn config(&self) -> PgConfig {
        let mut c = PgConfig::new(self.url());
        c.tls = Some(TlsMode::Disable);
        c.pool_size = 4;
        c
    }
}

impl Cluster {
    /// The port the server listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder holding the data directory, the socket and `postgres.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates a database no one else in this process has used.
    pub async fn database(&self) -> TestDatabase {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        let admin = format!(
            "host=127.0.0.1 port={} user={SUPERUSER} dbname=postgres",
            self.port
        );
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to the throwaway cluster: {e}"));
        let conn = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e:?}"));
        drop(client);
        let _ = conn.await;
        TestDatabase {
            name,
            port: self.port,
        }
    }

    /// Starts a cluster; a port found free can be taken before the server binds it, so a
    /// failed start is tried again from scratch (its folder is gone by then) a few times.
    fn start(bins: &Binaries) -> Result<Cluster, String> {
        let user = run_as()?;
        let mut last = String::new();
        for attempt in 0..3 {
            match Cluster::start_once(bins, user, attempt) {
                Ok(c) => return Ok(c),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn start_once(
        bins: &Binaries,
        user: Option<(u32, u32)>,
        attempt: u32,
    ) -> Result<Cluster, String> {
        // A name nobody can guess, made with `create_dir` (which fails on anything already
        // there, a planted symlink included) in the sticky temp folder.
        let random = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(attempt);
            h.finish()
        };
        let dir = std::env::temp_dir().join(format!(
            "mentiondesk-pg-{}-{attempt}-{random:016x}",
            std::process::id()
        ));
        std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| format!("handing {} to uid {uid}: {e}", dir.display()))?;
        }
        let data = dir.join("data");
        let out = command(&bins.initdb, &dir, user)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", bins.initdb.display()));
        let out = match out {
            Ok(out) if out.status.success() => out,
            failed => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(match failed {
                    Ok(out) => format!(
                        "{} failed: {}{}",
                        bins.initdb.display(),
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ),
                    Err(e) => e,
                });
            }
        };
        drop(out);
        let port = free_port()?;
        // From here on the watchdog owns the folder: it deletes it when the server stops.
        let watchdog = start_server(bins, &dir, &data, port, user)?;
        Ok(Cluster {
            port,
            dir,
            _watchdog: Mutex::new(watchdog),
            next_db: AtomicU64::new(0),
        })
    }
}

/// The watchdog: starts the server in the background, prints its pid, then waits for its
/// stdin (a pipe from this process) to close; then stops the server (fast shutdown), waits
/// for it and deletes the cluster's folder. $1 postgres, $2 data dir, $3 port, $4 folder.
const WATCHDOG: &str = r#"
"$1" -D "$2" -p "$3" -k "$4" \
  -c listen_addresses=127.0.0.1 \
  -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
  -c max_connections=200 -c shared_buffers=32MB \
  -c log_min_messages=warning \
  >"$4/postgres.log" 2>&1 </dev/null &
pg=$!
echo "$pg"
cat >/dev/null
kill -INT "$pg" 2>/dev/null
wait "$pg"
rm -rf "$4"
"#;

/// Starts the server under its watchdog and waits until it accepts connections.
fn start_server(
    bins: &Binaries,
    dir: &Path,
    data: &Path,
    port: u16,
    user: Option<(u32, u32)>,
) -> Result<Child, String> {
    let mut watchdog = command(Path::new("sh"), dir, user)
        .arg("-c")
        .arg(WATCHDOG)
        .arg("sh")
        .arg(&bins.postgres)
        .arg(data)
        .arg(port.to_string())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // A group of its own: a terminal's hang-up or Ctrl-C reaches only the test process,
        // whose exit closes the pipe, and the watchdog still stops the server and cleans up
        // (postgres would take SIGHUP as "reload" and outlive it).
        .process_group(0)
        .spawn()
        .map_err(|e| {
            let _ = std::fs::remove_dir_all(dir);
            format!("starting the watchdog shell: {e}")
        })?;
    let mut line = String::new();
    let stdout = watchdog.stdout.take().expect("piped");
    let read = BufReader::new(stdout).read_line(&mut line);
    let Some(pid) = read.ok().and_then(|_| line.trim().parse::<u32>().ok()) else {
        drop(watchdog.stdin.take());
        let _ = watchdog.wait();
        return Err(format!(
            "the watchdog printed {line:?} instead of the server's pid"
        ));
    };
    let log = dir.join("postgres.log");
    let pidfile = data.join("postmaster.pid");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        // The server writes "ready" on the 8th line of postmaster.pid once it accepts
        // connections (PostgreSQL 10 and later).
        let ready = std::fs::read_to_string(&pidfile)
            .is_ok_and(|s| s.lines().nth(7).is_some_and(|l| l.trim() == "ready"));
        if ready {
            return Ok(watchdog);
        }
        // An exited server stays a zombie until the watchdog reaps it (after the pipe closes).
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        });
        if !alive || Instant::now() > deadline {
            // Closing the pipe makes the watchdog stop the server (if running) and clean up;
            // keep the log's text first.
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
            return Err(format!(
                "postgres on port {port} {}: {}",
                if alive {
                    "did not become ready in time"
                } else {
                    "exited"
                },
                text.trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `program` run from `dir`, as `user` (uid, gid) when given.
fn command(program: &Path, dir: &Path, user: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(program);
    c.current_dir(dir);
    for var in [
        "PGDATA",
        "PGPORT",
        "PGHOST",
        "PGUSER",
        "PGDATABASE",
        "PGPASSWORD",
    ] {
        c.env_remove(var);
    }
    if let Some((uid, gid)) = user {
        // std drops root's supplementary groups when it changes the uid.
        c.uid(uid).gid(gid);
    }
    c
}

/// The (uid, gid) to run the cluster as: none when this process is not root; as root, the
/// `postgres` system user, else `nobody` (PostgreSQL refuses to run as root).
fn run_as() -> Result<Option<(u32, u32)>, String> {
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    if me != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for name in ["postgres", "nobody"] {
        let found = passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        });
        if let Some(Some(ids)) = found {
            return Ok(Some(ids));
        }
    }
    Err("running as root, and there is neither a `postgres` nor a `nobody` user to run the server as (PostgreSQL refuses root); add one with `useradd postgres`".into())
}

/// A port of 127.0.0.1 nothing listens on right now.
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the binaries, the lookup fails naming each one and the package to install
    /// (what the tests print when they skip).
    #[test]
    fn missing_binaries_are_named_with_the_install_command() {
        let empty =
            std::env::temp_dir().join(format!("mentiondesk-pg-empty-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let e = find_binaries(Some(empty.as_os_str()), &empty.join("no-lib")).unwrap_err();
        assert!(e.contains("initdb and postgres not found"), "{e}");
        assert!(e.contains("apt-get install postgresql"), "{e}");
        assert_eq!(e.lines().count(), 1, "one line: {e}");

        // Only initdb there: postgres is the one named.
        let lib = empty.join("lib");
        let bin = lib.join("15").join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let exe = |p: &Path| {
            std::fs::write(p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        exe(&bin.join("initdb"));
        let e = find_binaries(None, &lib).unwrap_err();
        assert!(e.contains(": postgres not found"), "{e}");

        // Both in the newest version's folder of the lib dir: found there (PATH empty).
        exe(&bin.join("postgres"));
        std::fs::create_dir_all(lib.join("9.6").join("bin")).unwrap();
        let found = find_binaries(Some(OsStr::new("")), &lib).unwrap();
        assert_eq!(found.initdb, bin.join("initdb"));
        assert_eq!(found.postgres, bin.join("postgres"));
        std::fs::remove_dir_all(&empty).unwrap();
    }

    /// A server that exits at start is reported with its log (not waited for until the
    /// start timeout), and its folder is gone afterwards.
    #[test]
    fn a_server_that_cannot_start_is_reported_with_its_log_and_cleaned_up() {
        let bin = std::env::temp_dir().join(format!("mentiondesk-pg-fake-{}", std::process::id()));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let script = |name: &str, body: &str| {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let bins = Binaries {
            // Called as `initdb -D DATA …`.
            initdb: script("initdb", "mkdir -p \"$2\""),
            postgres: script(
                "postgres",
                "echo 'FATAL: this fake server cannot start' >&2; exit 1",
            ),
        };
        let e = Cluster::start_once(&bins, run_as().unwrap(), 99)
            .err()
            .expect("refused");
        assert!(e.contains("exited"), "not a timeout: {e}");
        assert!(e.contains("FATAL: this fake server cannot start"), "{e}");
        let dir = std::env::temp_dir().join(format!("mentiondesk-pg-{}-99", std::process::id()));
        assert!(!dir.exists(), "{} left behind", dir.display());
        std::fs::remove_dir_all(&bin).unwrap();
    }
}
