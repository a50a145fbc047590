//! Backups: `kefu-relay backup FILE` while the relay serves, `kefu-relay restore FILE`
//! while it is stopped.
//!
//! The database is copied with SQLite's `VACUUM INTO` on a read-only connection: one read
//! transaction, so the copy is the database as of one commit, whatever the relay writes
//! meanwhile. Messages the relay acknowledged from its message log and had not folded yet
//! are added to the copy from the log, read just before it: every message acknowledged
//! before the backup started is in it. Attachments are files
//! that never change once stored (and are on disk before their row is committed), so the
//! ones the copy names are copied after it, into `FILE.attachments/`.
//!
//! A restore checks the copy (`PRAGMA integrity_check`, the migrations it carries) before
//! it replaces anything, writes the database beside the old one and renames it into place.

use std::path::{Path, PathBuf};

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use crate::attachments;
use crate::error::{Error, Result};

/// What a backup or restore holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Conversations.
    pub conversations: i64,
    /// Messages.
    pub messages: i64,
    /// Attachment files copied.
    pub attachments: usize,
    /// Size of the database copy in bytes.
    pub database_bytes: u64,
}

/// Where a backup's attachments go: beside it, `FILE.attachments/`.
pub fn attachments_dir(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".attachments");
    PathBuf::from(name)
}

/// Copies the database of `data_dir` (served or not) to `file`, then its attachments.
pub async fn backup(data_dir: &Path, file: &Path) -> Result<Summary> {
    let database = data_dir.join("kefu.db");
    if !database.exists() {
        return Err(Error::Config(format!("no database at {}", database.display())));
    }
    if file.exists() || attachments_dir(file).exists() {
        return Err(Error::Config(format!("{} already exists; choose a new name", file.display())));
    }
    let target = file.to_str().ok_or_else(|| Error::Config(format!("{} is not UTF-8", file.display())))?;
    // Messages a serving relay acknowledged from its message log may not be folded into
    // the tables yet. Read before the copy, the log holds every one the copy lacks (what
    // is folded meanwhile is in the copy); added to the copy, they make it whole.
    let logged = crate::msglog::read_log(&crate::store::message_log_dir(data_dir))?;
    let source = read_only(&database).await?;
    sqlx::query("VACUUM INTO ?").bind(target).execute(&source).await?;
    source.close().await;
    if !logged.is_empty() {
        crate::msglog::fold_file(file, &logged)?;
    }
    let summary = copy_attachments(file, data_dir, &attachments_dir(file)).await?;
    Ok(summary)
}

/// Puts the backup `file` in place as the database of `data_dir` (the relay must be
/// stopped). An existing database is replaced only with `replace`.
pub async fn restore(file: &Path, data_dir: &Path, replace: bool) -> Result<Summary> {
    let database = data_dir.join("kefu.db");
    if database.exists() && !replace {
        return Err(Error::Config(format!(
            "{} exists; stop the relay and pass --replace to overwrite it",
            database.display()
        )));
    }
    check(file).await?;
    std::fs::create_dir_all(data_dir)?;
    let staged = data_dir.join("kefu.db.restoring");
    std::fs::copy(file, &staged)?;
    std::fs::File::open(&staged)?.sync_all()?;
    // The old database's write-ahead log belongs to the old database, and so do the
    // messages its message log still held (a store opening would fold them into the
    // restored one, under sequence numbers that no longer follow on).
    for stale in ["kefu.db-wal", "kefu.db-shm"] {
        let path = data_dir.join(stale);
        if path.exists() {
            std::fs::remove_file(path)?;
        }
    }
    let message_log = crate::store::message_log_dir(data_dir);
    if message_log.exists() {
        crate::msglog::clear(&message_log)?;
    }
    std::fs::rename(&staged, &database)?;
    std::fs::File::open(data_dir)?.sync_all()?;
    copy_attachments(&database, &attachments_dir(file), &data_dir.join("attachments")).await
}

/// Refuses a file that is not a sound kefu database.
async fn check(file: &Path) -> Result<()> {
    if !file.exists() {
        return Err(Error::Config(format!("no backup at {}", file.display())));
    }
    let pool = read_only(file).await?;
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&pool).await?;
    let migrated: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap_or(None);
    pool.close().await;
    if verdict != "ok" {
        return Err(Error::Config(format!("{} is damaged: {verdict}", file.display())));
    }
    if migrated.is_none() {
        return Err(Error::Config(format!("{} is not a kefu database", file.display())));
    }
    Ok(())
}

/// Copies the attachment files the database `database` names from `from` to `to`, and
/// counts what it holds.
async fn copy_attachments(database: &Path, from: &Path, to: &Path) -> Result<Summary> {
    let pool = read_only(database).await?;
    let ids: Vec<String> =
        sqlx::query("SELECT id FROM attachments").fetch_all(&pool).await?.iter().map(|r| r.get(0)).collect();
    let conversations: i64 = sqlx::query_scalar("SELECT count(*) FROM conversations").fetch_one(&pool).await?;
    let messages: i64 = sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&pool).await?;
    pool.close().await;
    let mut copied = 0;
    for id in ids.iter().filter(|id| attachments::is_id(id)) {
        // `from` is either a data dir (its `attachments/`) or a backup's directory.
        let source = [from.join("attachments").join(id), from.join(id)].into_iter().find(|p| p.exists());
        let Some(source) = source else {
            tracing::warn!(attachment = %id, "attachment file missing; not copied");
            continue;
        };
        std::fs::create_dir_all(to)?;
        let target = to.join(id);
        std::fs::copy(&source, &target)?;
        std::fs::File::open(&target)?.sync_all()?;
        copied += 1;
    }
    let database_bytes = std::fs::metadata(database)?.len();
    Ok(Summary { conversations, messages, attachments: copied, database_bytes })
}

async fn read_only(database: &Path) -> Result<sqlx::SqlitePool> {
    let options = SqliteConnectOptions::new().filename(database).read_only(true);
    Ok(SqlitePoolOptions::new().max_connections(1).connect_with(options).await?)
}
