//! # kefu-tui — the agent workstation
//!
//! `kefu` is the terminal client agents work in: their conversations on the left, one tab
//! per open conversation in the centre, a composer, and a status bar with presence,
//! connection and load. It speaks the protocol of `kefu-proto` to a relay.
//!
//! The shape follows iamb and helix: keys become [`command::Command`]s through a
//! [`keymap::Keymap`]; [`app::App::update`] is the one place state changes and returns
//! [`app::Effect`]s; views draw from `&App`; a [`worker`] task owns the WebSocket and
//! turns frames into [`app::Action`]s; the [`api`] client runs HTTP requests the app asks
//! for and answers with actions too; only [`event_loop`] knows the terminal.
//!
//! ## Layout
//! - [`app`] — `App`, `Action`, `Effect`: the pure state and its `update` (conversations,
//!   queue, transfers, notes, canned replies, customer panel, history, attachments,
//!   masked personal data and its audited reveal, knowledge base, tickets, supervising:
//!   observe, whisper, take over, reassign, the audit log).
//! - [`api`] — the relay's HTTP API: directory, canned replies, customer panel, history
//!   pages, uploads, reveals of masked personal data, knowledge base (search, articles,
//!   writing them), tickets, agents' capacity and presence, reports (JSON, or CSV to a
//!   file), the audit log; each request on its own task, answered as an action.
//! - [`canned`] — canned replies: `/shortcut` detection, fuzzy matching, variables.
//! - [`knowledge`] — the knowledge-base pane: debounced search, results, previews, what
//!   goes into the composer.
//! - [`article_editor`] — writing and changing articles from the pane (supervisors and
//!   admins): the fields, the Markdown body in the composer's text area, the relay's
//!   checks made before sending, unsaved changes.
//! - [`tickets`] — the tickets view: mine or all open, details, my open count, what a
//!   ticket made from a conversation starts with.
//! - [`supervisor`] — the supervisor pane (supervisors and admins): the live monitor with
//!   ages counted from the relay's clock, SLA bands, the alerts feed, the selection.
//! - [`reports`] — the report view (supervisors and admins): today, 7 or 30 days in the
//!   local time zone, the report fetched, the CSV file's name.
//! - [`audit`] — the audit log (admins): the newest events found with few requests
//!   however long the log, filtered by kind prefix as the admin types.
//! - [`command`] — the named commands with their doc strings (help and palette use them).
//! - [`keymap`] — key notation, the per-mode trie, the shipped `keymaps/*.toml`.
//! - [`palette`] — fuzzy matching of commands (nucleo).
//! - [`scrollback`] — one conversation's messages (masked, revealed), wrap cache, scroll
//!   anchor.
//! - [`text`] — Markdown rendering and width-aware wrapping (Chinese included).
//! - [`theme`] — colours.
//! - [`view`] — drawing from `&App`, and the caret position for input methods.
//! - [`worker`] — the network task: connect, hello, reconnect with backoff, frames in/out.
//! - [`notify`] — desktop notifications behind a trait, falling back to the bell.
//! - [`event_loop`] — the terminal loop: events in as a stream, effects out.
//! - [`config`] — paths, credentials (0600), `config.toml` settings.
//! - [`login`] — `POST /api/v1/login` and `/healthz` over HTTP.
//! - [`tls`] — trusting an `https://` relay: the system's roots or a pinned CA file, one
//!   rustls configuration for the API and the WebSocket.
//! - [`demo`] (feature `demo`) — an in-process relay with simulated customers.
//! - [`error`] — the library's error type.

pub mod api;
pub mod app;
pub mod article_editor;
pub mod audit;
pub mod canned;
pub mod command;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
pub mod event_loop;
pub mod keymap;
pub mod knowledge;
pub mod login;
pub mod notify;
pub mod palette;
pub mod reports;
pub mod scrollback;
pub mod supervisor;
pub mod text;
pub mod theme;
pub mod tickets;
pub mod tls;
pub mod view;
pub mod worker;

pub use error::{Error, Result};
