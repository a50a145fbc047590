//! Reports over HTTP, for supervisors and admins: the metrics of a range as JSON, or as
//! CSV with `Accept: text/csv` or `format=csv`. Definitions in `docs/metrics.md`.
//!
//! `GET /api/v1/reports/summary`, `/agents` and `/arrivals` take the same parameters:
//! `from`, `to` (Unix ms; conversations opened in `[from, to)`; default the last 7 days),
//! `group` (slug), `agent` (id), `channel` (`web|app|social`), `tz_offset_minutes`
//! (arrivals in the shop's time), `format` (`json|csv`).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kefu_proto::frame::ChannelKind;
use kefu_proto::{AgentId, ErrorCode};
use serde::Deserialize;

use super::AuthedAgent;
use crate::RelayState;
use crate::error::{Error, Result};
use crate::metrics::{AgentsReport, ArrivalsReport, Report, ReportQuery, report};
use crate::permissions::Permission;

/// A range spans at most this many days.
pub const MAX_RANGE_DAYS: i64 = 366;
/// The range when `from` is not given: this many days before `to`.
pub const DEFAULT_RANGE_DAYS: i64 = 7;
/// Offsets from UTC span −14 h to +14 h.
const MAX_TZ_OFFSET_MINUTES: i32 = 14 * 60;
const DAY_MS: i64 = 86_400_000;

/// The query string, as text: each value is checked here, so that every mistake gets the
/// API's error shape and a message naming the parameter.
#[derive(Debug, Default, Deserialize)]
pub struct ReportParams {
    from: Option<String>,
    to: Option<String>,
    group: Option<String>,
    agent: Option<String>,
    channel: Option<String>,
    tz_offset_minutes: Option<String>,
    format: Option<String>,
}

/// JSON or CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

fn bad(message: String) -> Error {
    Error::refused(ErrorCode::BadRequest, message)
}

fn number<T: std::str::FromStr>(name: &str, value: Option<&str>) -> Result<Option<T>> {
    value.map(|v| v.trim().parse::<T>().map_err(|_| bad(format!("{name} must be an integer, not '{v}'")))).transpose()
}

impl ReportParams {
    /// The report's query and format; `now` is the default end.
    fn check(&self, now: i64, headers: &HeaderMap) -> Result<(ReportQuery, Format)> {
        let to = number::<i64>("to", self.to.as_deref())?.unwrap_or(now);
        let from = number::<i64>("from", self.from.as_deref())?.unwrap_or(to - DEFAULT_RANGE_DAYS * DAY_MS);
        if from >= to {
            return Err(bad(format!("from ({from}) must be before to ({to})")));
        }
        if to - from > MAX_RANGE_DAYS * DAY_MS {
            return Err(bad(format!("the range spans at most {MAX_RANGE_DAYS} days")));
        }
        let tz_offset_minutes = number::<i32>("tz_offset_minutes", self.tz_offset_minutes.as_deref())?.unwrap_or(0);
        if tz_offset_minutes.abs() > MAX_TZ_OFFSET_MINUTES {
            return Err(bad(format!(
                "tz_offset_minutes must be between -{MAX_TZ_OFFSET_MINUTES} and {MAX_TZ_OFFSET_MINUTES}"
            )));
        }
        let channel = self.channel.as_deref().map(str::parse::<ChannelKind>).transpose().map_err(bad)?;
        let agent = number::<i64>("agent", self.agent.as_deref())?.map(AgentId);
        let group = self.group.clone();
        let accepts_csv = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("text/csv"));
        let format = match self.format.as_deref() {
            None if accepts_csv => Format::Csv,
            None | Some("json") => Format::Json,
            Some("csv") => Format::Csv,
            Some(other) => return Err(bad(format!("format must be json or csv, not '{other}'"))),
        };
        Ok((ReportQuery { from, to, tz_offset_minutes, group, agent, channel }, format))
    }
}

/// Checks the caller and the parameters, gathers the facts and computes the report.
async fn build(
    relay: &RelayState,
    authed: &AuthedAgent,
    params: Result<Query<ReportParams>, QueryRejection>,
    headers: &HeaderMap,
) -> Result<(Report, Format)> {
    authed.require(Permission::ReadReports)?;
    let Query(params) = params.map_err(|e| bad(e.body_text()))?;
    let (query, format) = params.check(relay.clock.now_ms(), headers)?;
    let workspace = authed.agent.workspace_id;
    if let Some(slug) = &query.group
        && !relay.store.groups(workspace).await?.iter().any(|g| g.slug == *slug)
    {
        return Err(Error::refused(ErrorCode::NotFound, format!("no group '{slug}'")));
    }
    let names = relay.store.agent_names(workspace).await?;
    if let Some(agent) = query.agent
        && !names.contains_key(&agent)
    {
        return Err(Error::refused(ErrorCode::NotFound, format!("no agent {agent}")));
    }
    let facts = relay.store.conversation_facts(workspace, query.from, query.to).await?;
    Ok((report(&facts, &names, &query), format))
}

fn csv(what: &str, query: &ReportQuery, body: String) -> Response {
    let disposition = format!("attachment; filename=\"kefu-{what}-{}-{}.csv\"", query.from, query.to);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, disposition)],
        body,
    )
        .into_response()
}

/// `GET /api/v1/reports/summary`: every figure, overall and per group, agent and channel.
pub async fn summary(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    headers: HeaderMap,
    params: Result<Query<ReportParams>, QueryRejection>,
) -> Result<Response> {
    let (report, format) = build(&relay, &authed, params, &headers).await?;
    Ok(match format {
        Format::Json => Json(report).into_response(),
        Format::Csv => csv("summary", &report.query, report.to_csv()),
    })
}

/// `GET /api/v1/reports/agents`: one row per agent.
pub async fn agents(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    headers: HeaderMap,
    params: Result<Query<ReportParams>, QueryRejection>,
) -> Result<Response> {
    let (report, format) = build(&relay, &authed, params, &headers).await?;
    Ok(match format {
        Format::Json => Json(AgentsReport::from(report)).into_response(),
        Format::Csv => csv("agents", &report.query, report.agents_csv()),
    })
}

/// `GET /api/v1/reports/arrivals`: conversations opened per weekday × hour.
pub async fn arrivals(
    State(relay): State<Arc<RelayState>>,
    authed: AuthedAgent,
    headers: HeaderMap,
    params: Result<Query<ReportParams>, QueryRejection>,
) -> Result<Response> {
    let (report, format) = build(&relay, &authed, params, &headers).await?;
    Ok(match format {
        Format::Json => Json(ArrivalsReport::from(report)).into_response(),
        Format::Csv => csv("arrivals", &report.query, report.arrivals.to_csv()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn check(query: &str, accept: Option<&str>) -> std::result::Result<(ReportQuery, Format), String> {
        let params: ReportParams = serde_urlencoded_like(query);
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(header::ACCEPT, accept.parse().unwrap());
        }
        params.check(NOW, &headers).map_err(|e| e.to_client().message)
    }

    /// Parses `a=1&b=2` into the parameters, as axum's `Query` does.
    fn serde_urlencoded_like(query: &str) -> ReportParams {
        let uri: axum::http::Uri = format!("/?{query}").parse().unwrap();
        Query::<ReportParams>::try_from_uri(&uri).unwrap().0
    }

    #[test]
    fn parameters_and_their_defaults() {
        let (q, f) = check("", None).unwrap();
        assert_eq!((q.from, q.to, q.tz_offset_minutes, f), (NOW - 7 * DAY_MS, NOW, 0, Format::Json));
        let (q, f) = check("from=10&to=20&channel=app&agent=3&group=vip&tz_offset_minutes=-300", None).unwrap();
        assert_eq!(
            (q.from, q.to, q.channel, q.agent, q.group.as_deref()),
            (10, 20, Some(ChannelKind::App), Some(AgentId(3)), Some("vip"))
        );
        assert_eq!((q.tz_offset_minutes, f), (-300, Format::Json));
        assert_eq!(check("", Some("text/csv")).unwrap().1, Format::Csv);
        assert_eq!(check("format=csv", None).unwrap().1, Format::Csv);
        assert_eq!(check("format=json", Some("text/csv")).unwrap().1, Format::Json);
        assert!(check(&format!("from={}", NOW - 366 * DAY_MS), None).is_ok());
    }

    #[test]
    fn bad_parameters_are_named() {
        let table = [
            ("from=yesterday", "from must be an integer"),
            ("from=20&to=10", "must be before"),
            ("from=10&to=10", "must be before"),
            (&format!("from={}", NOW - 367 * DAY_MS) as &str, "at most 366 days"),
            ("channel=fax", "unknown channel kind 'fax'"),
            ("agent=me", "agent must be an integer"),
            ("tz_offset_minutes=900", "tz_offset_minutes must be between"),
            ("format=xml", "format must be json or csv"),
        ];
        for (query, message) in table {
            let error = check(query, None).unwrap_err();
            assert!(error.contains(message), "{query}: {error}");
        }
    }
}
