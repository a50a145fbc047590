//! The relay's HTTP API as the workstation uses it: the directory for transfers, canned
//! replies, the customer panel, history pages, file uploads, knowledge-base search and
//! articles (read by everyone, written by supervisors and admins), tickets, revealing the
//! personal data masked in a conversation (audited), for supervisors and admins agents'
//! capacity and presence and the service report (JSON, or CSV written to a file), and for
//! admins the audit log.
//!
//! The app asks with [`crate::app::Effect::Api`] carrying an [`ApiRequest`]; the shell
//! hands it to [`ApiClient::perform`], which runs it on its own task and answers with
//! [`crate::app::Action::Api`] carrying the request and its [`ApiAnswer`] or
//! [`ApiFailure`]. The app never waits: it shows "loading" until the answer comes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kefu_proto::api::{
    AgentPatch, ApiErrorBody, Article, CannedReply, ContactDetails, EventView, GroupView, MessagesPage, NewArticle,
    NewCannedReply, NewTicket, NewTicketNote, RevealedMessages, RoutingHistory, SearchHit, TicketDetails, TicketPatch,
};
use kefu_proto::frame::{AgentView, AttachmentRef, TicketView};
use kefu_proto::limits::MAX_ATTACHMENT_BYTES;
use kefu_proto::report::Report;
use kefu_proto::{AgentId, ContactId, ConversationId, ErrorCode, Seq};
use tokio::sync::mpsc;

use crate::app::Action;
use crate::error::Result;
use crate::reports::ReportWindow;

/// Messages asked for per history page.
pub const HISTORY_PAGE: u32 = 50;
/// Knowledge-base results asked for per search.
pub const KB_RESULTS: u32 = 10;
/// How long an ordinary request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an upload may take.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Something the app wants from the relay's HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiRequest {
    /// `GET /api/v1/agents`: transfer targets.
    Agents,
    /// `GET /api/v1/groups`: transfer targets.
    Groups,
    /// `GET /api/v1/canned`: shared replies and mine.
    Canned,
    /// `POST /api/v1/canned`.
    CreateCanned(NewCannedReply),
    /// `DELETE /api/v1/canned/{id}`.
    DeleteCanned(i64),
    /// `GET /api/v1/contacts/{id}`: the customer panel.
    Contact(ContactId),
    /// `GET /api/v1/conversations/{id}/routing`: why it came here.
    Routing(ConversationId),
    /// `GET /api/v1/conversations/{id}/messages?before=SEQ&limit=50`.
    History {
        /// The conversation.
        conversation: ConversationId,
        /// The first `seq` held: the page ends just before it.
        before: Seq,
    },
    /// `POST /api/v1/conversations/{id}/attachments?name=FILE` with the file's bytes.
    Upload {
        /// The conversation the file goes into.
        conversation: ConversationId,
        /// The file, as the agent typed it (`~/` is the home directory).
        path: String,
    },
    /// `POST /api/v1/conversations/{id}/reveal`: the conversation's masked messages as
    /// written (the relay records the reveal in the audit log).
    Reveal(ConversationId),
    /// `GET /api/v1/events?after=ID&kind=KIND&limit=N`: the audit log (admins), oldest
    /// first after `after`.
    Events {
        /// Events after this id.
        after: i64,
        /// One kind, or a prefix ending in `.` (`alert.`); `None`: every kind.
        kind: Option<String>,
        /// At most this many (1 to 1000).
        limit: u32,
    },
    /// `GET /api/v1/kb/search?q=QUERY&limit=10`.
    KbSearch {
        /// What was searched for, as typed (trimmed).
        query: String,
    },
    /// `GET /api/v1/kb/articles/{id}`: the preview.
    KbArticle(i64),
    /// `POST /api/v1/kb/articles`: a new article (supervisors and admins).
    KbCreateArticle(NewArticle),
    /// `PUT /api/v1/kb/articles/{id}`: an article changed (supervisors and admins).
    KbReplaceArticle {
        /// The article.
        id: i64,
        /// What it becomes (with its slug, so links to it keep working).
        article: NewArticle,
    },
    /// `DELETE /api/v1/kb/articles/{id}` (supervisors and admins).
    KbDeleteArticle(i64),
    /// `GET /api/v1/tickets?assignee=me` or `?status=open`.
    Tickets(TicketScope),
    /// `GET /api/v1/tickets/{id}`: with notes and history.
    Ticket(i64),
    /// `PATCH /api/v1/tickets/{id}`.
    PatchTicket {
        /// The ticket.
        id: i64,
        /// What changes.
        patch: TicketPatch,
    },
    /// `POST /api/v1/tickets/{id}/notes`.
    AddTicketNote {
        /// The ticket.
        id: i64,
        /// The note.
        body: String,
    },
    /// `POST /api/v1/tickets`.
    CreateTicket(NewTicket),
    /// `PATCH /api/v1/agents/{id}`: an agent's capacity or presence (supervisors and
    /// admins).
    PatchAgent {
        /// The agent.
        id: AgentId,
        /// What changes.
        patch: AgentPatch,
    },
    /// `GET /api/v1/reports/summary?from=…&to=…&tz_offset_minutes=…` (supervisors and
    /// admins).
    Report(ReportWindow),
    /// The same report as CSV (`format=csv`, `Accept: text/csv`), written to `file` in the
    /// current directory (a name already taken gets `-2`, `-3`, … before `.csv`).
    ExportReport {
        /// The window.
        window: ReportWindow,
        /// The file's name.
        file: String,
    },
}

/// Which tickets a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketScope {
    /// Assigned to me, whatever their status (`?assignee=me`).
    Mine,
    /// Everyone's open tickets (`?status=open`).
    Open,
}

impl TicketScope {
    /// The list's query string.
    pub fn query(self) -> &'static str {
        match self {
            TicketScope::Mine => "assignee=me",
            TicketScope::Open => "status=open",
        }
    }
}

/// What the relay answered.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiAnswer {
    /// The workspace's agents.
    Agents(Vec<AgentView>),
    /// The workspace's groups.
    Groups(Vec<GroupView>),
    /// Canned replies I may use.
    Canned(Vec<CannedReply>),
    /// The canned reply as stored.
    CannedCreated(CannedReply),
    /// The canned reply is gone.
    CannedDeleted,
    /// The customer.
    Contact(ContactDetails),
    /// The routing decisions.
    Routing(RoutingHistory),
    /// A page of older messages.
    History(MessagesPage),
    /// The uploaded file.
    Uploaded(AttachmentRef),
    /// A conversation's masked messages as written.
    Revealed(RevealedMessages),
    /// A page of the audit log, oldest first.
    Events(Vec<EventView>),
    /// Knowledge-base results, best first.
    KbHits(Vec<SearchHit>),
    /// A knowledge-base article.
    KbArticle(Article),
    /// The article as saved (made or changed).
    KbArticleSaved(Article),
    /// The article is gone.
    KbArticleDeleted,
    /// A list of tickets.
    Tickets(Vec<TicketView>),
    /// A ticket with its notes and history.
    Ticket(TicketDetails),
    /// The ticket as it stands after a change or as made.
    TicketSaved(TicketView),
    /// The note was added.
    TicketNoted,
    /// The agent as they stand after a change.
    AgentSaved(AgentView),
    /// The report.
    Report(Box<Report>),
    /// The report's CSV was written.
    ReportExported {
        /// Where, in full.
        path: String,
        /// How many bytes.
        bytes: usize,
    },
}

/// A request that failed: refused by the relay, or never answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    /// The HTTP status, when the relay answered.
    pub status: Option<u16>,
    /// The API's error code, when the answer had one.
    pub code: Option<ErrorCode>,
    /// What went wrong, for the status line.
    pub message: String,
}

impl ApiFailure {
    /// A failure before any answer (a file not readable, the relay not reachable).
    pub fn local(message: impl Into<String>) -> ApiFailure {
        ApiFailure { status: None, code: None, message: message.into() }
    }
}

/// Performs API requests for the app, each on its own task.
#[derive(Debug, Clone)]
pub struct ApiClient {
    /// The relay's base URL (`http://host:port`).
    relay: String,
    /// The bearer token.
    token: String,
    /// Shared connection pool.
    http: reqwest::Client,
    /// Where answers go.
    actions: mpsc::UnboundedSender<Action>,
}

impl ApiClient {
    /// A client for `relay` (its certificate checked against `trust`) with `token`,
    /// answering on `actions`.
    pub fn new(
        relay: &str,
        trust: &crate::tls::Trust,
        token: &str,
        actions: mpsc::UnboundedSender<Action>,
    ) -> Result<ApiClient> {
        Ok(ApiClient {
            relay: relay.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http: trust.http_client(relay)?,
            actions,
        })
    }

    /// Runs `request` in the background; the answer arrives as [`Action::Api`].
    pub fn perform(&self, request: ApiRequest) {
        let client = self.clone();
        tokio::spawn(async move {
            let result = client.call(&request).await;
            if let Err(failure) = &result {
                tracing::info!(?request, ?failure, "API request failed");
            }
            let _ = client.actions.send(Action::Api { request, result });
        });
    }

    /// Runs `request` and waits for the answer.
    pub async fn call(&self, request: &ApiRequest) -> Result<ApiAnswer, ApiFailure> {
        let url = |path: String| format!("{}{path}", self.relay);
        match request {
            ApiRequest::Agents => self.get(url("/api/v1/agents".into())).await.map(ApiAnswer::Agents),
            ApiRequest::Groups => self.get(url("/api/v1/groups".into())).await.map(ApiAnswer::Groups),
            ApiRequest::Canned => self.get(url("/api/v1/canned".into())).await.map(ApiAnswer::Canned),
            ApiRequest::Contact(id) => self.get(url(format!("/api/v1/contacts/{id}"))).await.map(ApiAnswer::Contact),
            ApiRequest::Routing(id) => {
                self.get(url(format!("/api/v1/conversations/{id}/routing"))).await.map(ApiAnswer::Routing)
            }
            ApiRequest::History { conversation, before } => self
                .get(url(format!("/api/v1/conversations/{conversation}/messages?before={before}&limit={HISTORY_PAGE}")))
                .await
                .map(ApiAnswer::History),
            ApiRequest::Reveal(id) => {
                let request = self.http.post(url(format!("/api/v1/conversations/{id}/reveal")));
                self.send(request, REQUEST_TIMEOUT).await?.json().await.map(ApiAnswer::Revealed).map_err(decode)
            }
            ApiRequest::Events { after, kind, limit } => {
                let kind = kind.as_deref().map(|k| format!("&kind={}", encode(k))).unwrap_or_default();
                self.get(url(format!("/api/v1/events?after={after}{kind}&limit={limit}"))).await.map(ApiAnswer::Events)
            }
            ApiRequest::KbSearch { query } => self
                .get(url(format!("/api/v1/kb/search?q={}&limit={KB_RESULTS}", encode(query))))
                .await
                .map(ApiAnswer::KbHits),
            ApiRequest::KbArticle(id) => {
                self.get(url(format!("/api/v1/kb/articles/{id}"))).await.map(ApiAnswer::KbArticle)
            }
            ApiRequest::KbCreateArticle(article) => {
                let request = self.http.post(url("/api/v1/kb/articles".into())).json(article);
                self.send(request, REQUEST_TIMEOUT).await?.json().await.map(ApiAnswer::KbArticleSaved).map_err(decode)
            }
            ApiRequest::KbReplaceArticle { id, article } => {
                let request = self.http.put(url(format!("/api/v1/kb/articles/{id}"))).json(article);
                self.send(request, REQUEST_TIMEOUT).await?.json().await.map(ApiAnswer::KbArticleSaved).map_err(decode)
            }
            ApiRequest::KbDeleteArticle(id) => {
                let request = self.http.delete(url(format!("/api/v1/kb/articles/{id}")));
                self.send(request, REQUEST_TIMEOUT).await.map(|_| ApiAnswer::KbArticleDeleted)
            }
            ApiRequest::Tickets(scope) => {
                self.get(url(format!("/api/v1/tickets?{}", scope.query()))).await.map(ApiAnswer::Tickets)
            }
            ApiRequest::Ticket(id) => self.get(url(format!("/api/v1/tickets/{id}"))).await.map(ApiAnswer::Ticket),
            ApiRequest::PatchTicket { id, patch } => {
                let request = self.http.patch(url(format!("/api/v1/tickets/{id}"))).json(patch);
                self.send(request, REQUEST_TIMEOUT).await?.json().await.map(ApiAnswer::TicketSaved).map_err(decode)
            }
            ApiRequest::AddTicketNote { id, body } => {
                let note = NewTicketNote { body: body.clone() };
                let request = self.http.post(url(format!("/api/v1/tickets/{id}/notes"))).json(&note);
                self.send(request, REQUEST_TIMEOUT).await.map(|_| ApiAnswer::TicketNoted)
            }
            ApiRequest::CreateTicket(new) => {
                let request = self.http.post(url("/api/v1/tickets".into())).json(new);
                self.send(request, REQUEST_TIMEOUT).await?.json().await.map(ApiAnswer::TicketSaved).map_err(decode)
            }
            ApiRequest::CreateCanned(new) => {
                let request = self.http.post(url("/api/v1/canned".into())).json(new);
                self.send(request, REQUEST_TIMEOUT).await?.json().await.map(ApiAnswer::CannedCreated).map_err(decode)
            }
            ApiRequest::DeleteCanned(id) => {
                let request = self.http.delete(url(format!("/api/v1/canned/{id}")));
                self.send(request, REQUEST_TIMEOUT).await.map(|_| ApiAnswer::CannedDeleted)
            }
            ApiRequest::PatchAgent { id, patch } => {
                let request = self.http.patch(url(format!("/api/v1/agents/{id}"))).json(patch);
                self.send(request, REQUEST_TIMEOUT).await?.json().await.map(ApiAnswer::AgentSaved).map_err(decode)
            }
            ApiRequest::Report(window) => self
                .get(url(format!("/api/v1/reports/summary?{}", window.query())))
                .await
                .map(|report| ApiAnswer::Report(Box::new(report))),
            ApiRequest::ExportReport { window, file } => {
                // Both ways of asking for CSV, so either the parameter or the header does.
                let request = self
                    .http
                    .get(url(format!("/api/v1/reports/summary?{}&format=csv", window.query())))
                    .header(reqwest::header::ACCEPT, "text/csv");
                let csv = self.send(request, REQUEST_TIMEOUT).await?.bytes().await.map_err(decode)?;
                let path = write_new_file(file, &csv).await?;
                Ok(ApiAnswer::ReportExported { path: path.display().to_string(), bytes: csv.len() })
            }
            ApiRequest::Upload { conversation, path } => {
                let path = expand_home(path);
                let (name, bytes) = read_upload(&path).await?;
                let request = self
                    .http
                    .post(url(format!("/api/v1/conversations/{conversation}/attachments?name={}", encode(&name))))
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(bytes);
                self.send(request, UPLOAD_TIMEOUT).await?.json().await.map(ApiAnswer::Uploaded).map_err(decode)
            }
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: String) -> Result<T, ApiFailure> {
        self.send(self.http.get(url), REQUEST_TIMEOUT).await?.json().await.map_err(decode)
    }

    /// Sends with the token; a non-success status becomes an [`ApiFailure`].
    async fn send(&self, request: reqwest::RequestBuilder, timeout: Duration) -> Result<reqwest::Response, ApiFailure> {
        let response = request
            .bearer_auth(&self.token)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| ApiFailure::local(format!("cannot reach the relay: {e}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let (code, message) = match response.json::<ApiErrorBody>().await {
            Ok(body) => (Some(body.error.code), body.error.message),
            Err(_) if status == reqwest::StatusCode::PAYLOAD_TOO_LARGE => {
                (Some(ErrorCode::TooLarge), format!("the file is larger than the relay accepts ({})", mib_limit()))
            }
            Err(_) => (None, status.to_string()),
        };
        Err(ApiFailure { status: Some(status.as_u16()), code, message })
    }
}

fn decode(e: reqwest::Error) -> ApiFailure {
    ApiFailure::local(format!("the relay's answer is not understood: {e}"))
}

fn mib_limit() -> String {
    format!("{} MiB", MAX_ATTACHMENT_BYTES / (1024 * 1024))
}

/// `~/x` as a path under the home directory; anything else as typed.
fn expand_home(path: &str) -> PathBuf {
    let path = path.trim();
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// The file's name and bytes, refusing what the relay would refuse for its size before
/// reading it.
async fn read_upload(path: &Path) -> Result<(String, Vec<u8>), ApiFailure> {
    let shown = path.display();
    let metadata =
        tokio::fs::metadata(path).await.map_err(|e| ApiFailure::local(format!("cannot read {shown}: {e}")))?;
    if !metadata.is_file() {
        return Err(ApiFailure::local(format!("{shown} is not a file")));
    }
    if metadata.len() > MAX_ATTACHMENT_BYTES as u64 {
        return Err(ApiFailure {
            status: None,
            code: Some(ErrorCode::TooLarge),
            message: format!("{shown} is {}; the limit is {}", format_size(metadata.len()), mib_limit()),
        });
    }
    let bytes = tokio::fs::read(path).await.map_err(|e| ApiFailure::local(format!("cannot read {shown}: {e}")))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
    Ok((name, bytes))
}

/// Writes `bytes` to a new file named `name` in the current directory, never over an
/// existing one: `report.csv` taken, it tries `report-2.csv`, `report-3.csv`, … Returns
/// the full path written.
async fn write_new_file(name: &str, bytes: &[u8]) -> Result<PathBuf, ApiFailure> {
    let dir = std::env::current_dir().map_err(|e| ApiFailure::local(format!("no current directory: {e}")))?;
    write_new_file_in(&dir, name, bytes).await
}

async fn write_new_file_in(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, ApiFailure> {
    use tokio::io::AsyncWriteExt;
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, extension)) => (stem, format!(".{extension}")),
        None => (name, String::new()),
    };
    for attempt in 1..=100 {
        let candidate = if attempt == 1 { name.to_string() } else { format!("{stem}-{attempt}{extension}") };
        let path = dir.join(candidate);
        let mut file = match tokio::fs::OpenOptions::new().write(true).create_new(true).open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(ApiFailure::local(format!("cannot write {}: {e}", path.display()))),
        };
        let written = async {
            file.write_all(bytes).await?;
            file.sync_all().await
        };
        written.await.map_err(|e| ApiFailure::local(format!("cannot write {}: {e}", path.display())))?;
        return Ok(path);
    }
    Err(ApiFailure::local(format!("{name} and its numbered copies exist already in {}", dir.display())))
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// "812 B", "12.3 KB", "4.0 MB".
pub fn format_size(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MB", bytes as f64 / 1_048_576.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_for_the_query() {
        assert_eq!(encode("发票 2025.pdf"), "%E5%8F%91%E7%A5%A8%202025.pdf");
        assert_eq!(encode("a&b=c"), "a%26b%3Dc");
    }

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(format_size(812), "812 B");
        assert_eq!(format_size(12_600), "12.3 KB");
        assert_eq!(format_size(4 * 1_048_576), "4.0 MB");
    }

    #[tokio::test]
    async fn an_export_never_overwrites_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_new_file_in(dir.path(), "kefu-report-7d-2025-11-21.csv", b"a").await.unwrap();
        let second = write_new_file_in(dir.path(), "kefu-report-7d-2025-11-21.csv", b"b").await.unwrap();
        assert_eq!(first, dir.path().join("kefu-report-7d-2025-11-21.csv"));
        assert_eq!(second, dir.path().join("kefu-report-7d-2025-11-21-2.csv"));
        assert_eq!(std::fs::read(&first).unwrap(), b"a");
        assert_eq!(std::fs::read(&second).unwrap(), b"b");
    }

    #[tokio::test]
    async fn a_file_over_the_limit_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_ATTACHMENT_BYTES as u64 + 1).unwrap();
        let failure = read_upload(&path).await.unwrap_err();
        assert_eq!(failure.code, Some(ErrorCode::TooLarge));
        assert!(failure.message.contains("10 MiB"), "{}", failure.message);
        let missing = read_upload(&dir.path().join("nope.pdf")).await.unwrap_err();
        assert!(missing.message.contains("cannot read"));
    }
}
