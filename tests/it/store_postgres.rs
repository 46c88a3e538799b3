//! The PostgreSQL backend as a user meets it today (issue 17): `mentiondesk check --online`
//! connects to the database named by `[store] url` and reports the connection and the schema
//! version, or the problem with its fix, never printing the URL's password. Runs against the
//! throwaway cluster (skipped, with one printed line, without the PostgreSQL server binaries).

use mentiondesk::store::pg::throwaway;
use mentiondesk::store::pg::{PgStore, SCHEMA_VERSION};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `mentiondesk check --online` with `[store]` pointing at `url` (given through
/// `DATABASE_URL`, as the README shows) and no chat platform.
async fn check_online(url: String) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mentiondesk.toml");
    let text = format!(
        "[store]\npath = \"{}\"\nbackend = \"postgres\"\nurl = \"${{DATABASE_URL}}\"\n",
        dir.path().join("store").display()
    );
    std::fs::write(&path, text).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        crate::common::mentiondesk()
            .args(["check", "--online", "--config"])
            .arg(&path)
            .env_remove("MENTIONDESK_CONFIG")
            .env_remove("MENTIONDESK_STORE")
            .env("DATABASE_URL", url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn check_online_reports_the_database_and_its_schema_version() {
    let Some(db) = throwaway::database().await else {
        return;
    };
    // Before the first `run`: an empty database, and the check creates nothing.
    let run = check_online(db.url()).await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("store (PostgreSQL): "))
        .unwrap_or_else(|| panic!("no store line in:\n{}", run.stdout));
    assert!(line.contains(&db.url()), "{line}");
    assert!(line.contains("empty database"), "{line}");
    assert!(!run.stdout.contains("warning"), "{}", run.stdout);

    drop(PgStore::connect(&db.config()).await.unwrap());
    let run = check_online(db.url()).await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("schema version {SCHEMA_VERSION} (current)")),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn check_online_names_a_database_problem_without_the_password() {
    let Some(db) = throwaway::database().await else {
        return;
    };
    let password = "c0rrect-h0rse";
    let url = format!(
        "postgres://postgres:{password}@127.0.0.1:{}/{}_gone",
        db.port, db.name
    );
    let run = check_online(url).await;
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("store (PostgreSQL): problem: "))
        .unwrap_or_else(|| panic!("no store problem in:\n{}", run.stdout));
    assert!(line.contains("cannot connect to PostgreSQL"), "{line}");
    assert!(line.contains("does not exist"), "{line}");
    assert!(line.contains("check [store] url"), "{line}");
    assert!(
        !run.stdout.contains(password) && !run.stderr.contains(password),
        "the password was printed:\n{}{}",
        run.stdout,
        run.stderr
    );
}
