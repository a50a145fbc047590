//! The library's one error type. The binary wraps it in `anyhow` with context.

use std::path::PathBuf;

/// Everything that can go wrong in the workstation's library part.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key binding file has a bad entry; the message names the mode, key and action.
    #[error("key bindings {source_name}: {message}")]
    Keymap {
        /// Which file (or "default", "vim" for the shipped ones).
        source_name: String,
        /// What is wrong, naming the entry.
        message: String,
    },
    /// The settings file has a bad entry; the message names it.
    #[error("settings {}: {message}", path.display())]
    Settings {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the entry.
        message: String,
    },
    /// No credentials yet (`kefu login` was not run) or they cannot be read.
    #[error("{0}")]
    Credentials(String),
    /// The relay refused or could not be reached over HTTP.
    #[error("{0}")]
    Relay(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
