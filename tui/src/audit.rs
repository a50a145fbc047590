//! The audit log view (admins): the workspace's newest events from `GET /api/v1/events`,
//! newest first, narrowed by a kind prefix as the admin types (`alert.`, `pii.revealed`).
//!
//! The relay pages the log forward only (`after` an event id, oldest first), and a
//! workspace's log grows for years, so reading it from the start on every look would not
//! do. A load therefore goes like this:
//!
//! 1. one page after the newest event held (after 0 the first time): when it is not full,
//!    that was all, and a refresh costs one request;
//! 2. otherwise the newest id is found with one-event probes, doubling the stride, then
//!    halving it (a few dozen tiny requests, however long the log);
//! 3. then the window before that id is widened (doubling) until it holds [`KEEP`]
//!    events, or reaches what is held already.
//!
//! Only the newest [`KEEP`] events are held. The relay filters by kind exactly or by a
//! prefix ending in `.`, so it is asked for the filter up to its last dot (`alert.` for
//! `alert.fi`), and the rest is narrowed here as the admin types: a new request only when
//! a dot is typed or erased.
//!
//! Pure: the app feeds it answers and performs the requests it returns.

use kefu_proto::UnixMillis;
use kefu_proto::api::EventView;

use crate::api::ApiRequest;

/// The most events the relay gives in one page.
pub const PAGE: u32 = 1000;
/// The newest events held and shown.
pub const KEEP: usize = 500;

/// The audit log as the view shows it; it survives closing the view (the next look only
/// asks for what is new).
#[derive(Debug, Default)]
pub struct AuditLog {
    /// The newest events of `kind` held, oldest first (at most [`KEEP`]).
    events: Vec<EventView>,
    /// What the relay was asked for when `events` were fetched (`None`: every kind).
    kind: Option<String>,
    /// `events` were loaded at least once for `kind` (else: nothing to show yet).
    loaded: bool,
    /// What was typed: a kind prefix.
    pub filter: String,
    /// The highlighted event, by id (`None`: the newest), so it stays put as new ones
    /// come in above it.
    pub selected: Option<i64>,
    /// The load under way, if any.
    load: Option<Load>,
    /// The last load failed: why (what is held stays shown).
    pub error: Option<String>,
    /// When the last load finished.
    pub refreshed_at: Option<UnixMillis>,
}

/// A load under way: its step, the request waiting for its answer, and what it read.
#[derive(Debug)]
struct Load {
    /// The kind asked for.
    kind: Option<String>,
    /// The events it read that will be kept (merged into, or replacing, the held ones).
    incoming: Vec<EventView>,
    /// Replace the held events (the kind changed) rather than add to them.
    replace: bool,
    /// Where the search stands.
    step: Step,
    /// The request sent; an answer to any other is stale.
    waiting: ApiRequest,
}

/// The steps of a load (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A full page after the newest event held (after 0 when none is).
    Catchup,
    /// Looking for the newest id: an event `lo` exists; none after `hi` once known.
    Seek {
        /// An event with this id exists.
        lo: i64,
        /// No event has a greater id (once a probe found none).
        hi: Option<i64>,
        /// The next stride while `hi` is unknown.
        stride: i64,
        /// What the first page read up to.
        floor: i64,
    },
    /// The events after `newest - width` (never before `floor`).
    Window {
        /// The newest id.
        newest: i64,
        /// How far back the window reaches.
        width: i64,
        /// What the first page read up to.
        floor: i64,
    },
    /// Paging forward from a full window page to the end.
    Forward,
}

impl AuditLog {
    /// What the relay is asked for, given the filter: up to and including its last dot.
    fn wanted_kind(&self) -> Option<String> {
        let filter = self.prefix();
        filter.rfind('.').map(|dot| filter[..=dot].to_string())
    }

    /// The kind prefix typed, as kinds are written (trimmed, lower case).
    pub fn prefix(&self) -> String {
        self.filter.trim().to_lowercase()
    }

    /// The events shown: newest first, those whose kind starts with the filter.
    pub fn shown(&self) -> Vec<&EventView> {
        let prefix = self.prefix();
        self.events.iter().rev().filter(|e| e.kind.starts_with(&prefix)).collect()
    }

    /// Whether a load is under way.
    pub fn loading(&self) -> bool {
        self.load.is_some()
    }

    /// Whether events were loaded for the filter's kind (else the list waits for them).
    pub fn loaded(&self) -> bool {
        self.loaded && self.kind == self.wanted_kind()
    }

    /// Where the highlighted event is among those shown (the newest when it is not shown).
    pub fn selected_index(&self) -> usize {
        let shown = self.shown();
        self.selected.and_then(|id| shown.iter().position(|e| e.id == id)).unwrap_or(0)
    }

    /// The highlighted event.
    pub fn selected_event(&self) -> Option<&EventView> {
        self.shown().get(self.selected_index()).copied()
    }

    /// Moves the highlight by `delta` rows (down is older), stopping at either end.
    pub fn select(&mut self, delta: isize) {
        let shown: Vec<i64> = self.shown().iter().map(|e| e.id).collect();
        if shown.is_empty() {
            return;
        }
        let next = (self.selected_index() as isize + delta).clamp(0, shown.len() as isize - 1) as usize;
        // The newest is held as `None`, so new events arriving keep the highlight on top.
        self.selected = (next > 0).then(|| shown[next]);
    }

    /// The filter changed: the highlight goes to the newest match, and when the part the
    /// relay filters by changed, the load for it to start.
    pub fn filtered(&mut self) -> Option<ApiRequest> {
        self.selected = None;
        let wanted = self.wanted_kind();
        let asked = self.load.as_ref().map_or(&self.kind, |l| &l.kind);
        if *asked == wanted {
            return None;
        }
        Some(self.start(wanted))
    }

    /// The view opens or the admin asks again: what is new since the last look (nothing
    /// while a load is under way).
    pub fn refresh(&mut self) -> Option<ApiRequest> {
        if self.load.is_some() {
            return None;
        }
        Some(self.start(self.wanted_kind()))
    }

    /// Starts a load of `kind`: from the newest event held when it is the kind held,
    /// else from the start (its events then replace those held).
    fn start(&mut self, kind: Option<String>) -> ApiRequest {
        let replace = kind != self.kind || !self.loaded;
        let floor = if replace { 0 } else { self.events.last().map_or(0, |e| e.id) };
        self.error = None;
        let step = Step::Catchup;
        let waiting = events_request(&kind, floor, PAGE);
        self.load = Some(Load { kind, incoming: Vec::new(), replace, step, waiting: waiting.clone() });
        waiting
    }

    /// The relay answered `request` (at `now`): the next request of the load, if any.
    /// Answers to requests no longer waited for (the filter changed since) are dropped.
    pub fn on_page(
        &mut self,
        request: &ApiRequest,
        result: Result<Vec<EventView>, String>,
        now: UnixMillis,
    ) -> Option<ApiRequest> {
        let load = self.load.as_mut().filter(|l| l.waiting == *request)?;
        let page = match result {
            Ok(page) => page,
            Err(why) => {
                self.load = None;
                self.error = Some(why);
                return None;
            }
        };
        let ApiRequest::Events { after, limit, .. } = *request else { return None };
        let full = page.len() >= limit as usize;
        let first_after = page.first().map(|e| e.id);
        let last = page.last().map(|e| e.id);
        let next = match load.step {
            Step::Catchup => {
                keep_newest(&mut load.incoming, page);
                match last {
                    // A full page: the newest is further on; find it.
                    Some(lo) if full => {
                        let stride = KEEP as i64;
                        load.step = Step::Seek { lo, hi: None, stride, floor: lo };
                        Some((lo.saturating_add(stride), 1))
                    }
                    _ => None,
                }
            }
            Step::Seek { lo, hi, stride, floor } => {
                // One-event probes: the first event after `after`, if any.
                let (lo, hi, stride) = match (first_after, hi) {
                    (Some(found), hi) => (found, hi, stride.saturating_mul(2)),
                    (None, _) => (lo, Some(after), stride),
                };
                match hi {
                    Some(hi) if lo >= hi => open_window(load, lo, KEEP as i64, floor),
                    Some(hi) => {
                        load.step = Step::Seek { lo, hi: Some(hi), stride, floor };
                        Some((lo + (hi - lo) / 2, 1))
                    }
                    None => {
                        load.step = Step::Seek { lo, hi: None, stride, floor };
                        Some((lo.saturating_add(stride), 1))
                    }
                }
            }
            Step::Window { newest, width, floor } => {
                let count = page.len();
                keep_newest(&mut load.incoming, page);
                match last {
                    // More than a page in the window: read on to the end.
                    Some(last) if full => {
                        load.step = Step::Forward;
                        Some((last, PAGE))
                    }
                    _ if count >= KEEP || after <= floor => None,
                    _ => open_window(load, newest, width.saturating_mul(2), floor),
                }
            }
            Step::Forward => {
                keep_newest(&mut load.incoming, page);
                match last {
                    Some(last) if full => Some((last, PAGE)),
                    _ => None,
                }
            }
        };
        match next {
            Some((after, limit)) => {
                let next = events_request(&load.kind, after, limit);
                load.waiting = next.clone();
                Some(next)
            }
            None => {
                self.finish(now);
                None
            }
        }
    }

    /// The load is done: what it read becomes what is held.
    fn finish(&mut self, now: UnixMillis) {
        let Some(load) = self.load.take() else { return };
        if load.replace {
            self.events = load.incoming;
            self.selected = None;
        } else {
            keep_newest(&mut self.events, load.incoming);
        }
        self.kind = load.kind;
        self.loaded = true;
        self.refreshed_at = Some(now);
    }
}

/// Moves the load to reading the window of `width` ids before `newest` (from `floor` at
/// the widest); the request for it.
fn open_window(load: &mut Load, newest: i64, width: i64, floor: i64) -> Option<(i64, u32)> {
    load.step = Step::Window { newest, width, floor };
    Some((newest.saturating_sub(width).max(floor), PAGE))
}

/// `GET /api/v1/events?after=…&kind=…&limit=…`.
fn events_request(kind: &Option<String>, after: i64, limit: u32) -> ApiRequest {
    ApiRequest::Events { after, kind: kind.clone(), limit }
}

/// Adds `page` to `held` (by id, once each) and keeps the newest [`KEEP`].
fn keep_newest(held: &mut Vec<EventView>, page: Vec<EventView>) {
    held.extend(page);
    held.sort_by_key(|e| e.id);
    held.dedup_by_key(|e| e.id);
    let extra = held.len().saturating_sub(KEEP);
    held.drain(..extra);
}

/// An event's data in one line: `seqs=[3,5], reason=no_reply` (strings unquoted, nulls
/// left out).
pub fn summary(data: &serde_json::Value) -> String {
    match data {
        serde_json::Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={}", one_line(s)),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => one_line(s),
        other => other.to_string(),
    }
}

/// `s` with its line breaks as spaces.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Who did it, in words: the agent's name when `name_of` knows it, else `kind#id`, or
/// the kind alone (`system`).
pub fn actor(event: &EventView, name_of: impl Fn(i64) -> Option<String>) -> String {
    match event.actor_id {
        Some(id) if event.actor_kind == "agent" => name_of(id).unwrap_or_else(|| format!("agent#{id}")),
        Some(id) => format!("{}#{id}", event.actor_kind),
        None => event.actor_kind.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(id: i64, kind: &str) -> EventView {
        serde_json::from_value(json!({
            "id": id, "at": 1_763_712_000_000i64 + id, "kind": kind, "actor_kind": "system", "data": {},
        }))
        .unwrap()
    }

    /// A relay's log: the events with these ids, of kinds cycling through `kinds`.
    struct Relay {
        events: Vec<EventView>,
        asked: usize,
    }

    impl Relay {
        fn new(ids: impl IntoIterator<Item = i64>, kinds: &[&str]) -> Relay {
            let events = ids.into_iter().enumerate().map(|(i, id)| event(id, kinds[i % kinds.len()])).collect();
            Relay { events, asked: 0 }
        }

        /// Answers as `GET /api/v1/events` does.
        fn answer(&mut self, request: &ApiRequest) -> Vec<EventView> {
            self.asked += 1;
            let ApiRequest::Events { after, kind, limit } = request else { panic!("not an events request") };
            assert!((1..=PAGE).contains(limit), "limit {limit}");
            self.events
                .iter()
                .filter(|e| e.id > *after)
                .filter(|e| match kind {
                    Some(k) if k.ends_with('.') => e.kind.starts_with(k.as_str()),
                    Some(k) => e.kind == *k,
                    None => true,
                })
                .take(*limit as usize)
                .cloned()
                .collect()
        }

        /// Refreshes `log` and runs the load to its end; how many requests it took.
        fn serve_anew(&mut self, log: &mut AuditLog) -> usize {
            let first = log.refresh();
            self.serve(log, first)
        }

        /// Runs a load to its end; how many requests it took.
        fn serve(&mut self, log: &mut AuditLog, first: Option<ApiRequest>) -> usize {
            let before = self.asked;
            let mut next = first;
            while let Some(request) = next {
                let page = self.answer(&request);
                next = log.on_page(&request, Ok(page), 0);
                assert!(self.asked - before < 200, "the load does not end");
            }
            self.asked - before
        }
    }

    fn ids(log: &AuditLog) -> Vec<i64> {
        log.shown().iter().map(|e| e.id).collect()
    }

    #[test]
    fn a_short_log_is_read_in_one_request_newest_first() {
        let mut relay = Relay::new(1..=30, &["routing.assigned", "alert.fired"]);
        let mut log = AuditLog::default();
        let first = log.refresh();
        assert_eq!(relay.serve(&mut log, first), 1);
        assert_eq!(ids(&log).first(), Some(&30));
        assert_eq!(ids(&log).len(), 30);
        assert!(log.loaded() && !log.loading());
    }

    #[test]
    fn a_long_log_shows_its_newest_events_after_a_few_requests_not_all_of_it() {
        // 200 000 events, ids shared with other workspaces (every third id is ours).
        let mut relay = Relay::new((1..=200_000).map(|i| i * 3), &["routing.assigned", "pii.revealed"]);
        let mut log = AuditLog::default();
        let asked = relay.serve_anew(&mut log);
        assert!(asked < 60, "{asked} requests; reading the whole log takes 200");
        let shown = ids(&log);
        assert_eq!(shown.len(), KEEP);
        let newest: Vec<i64> = (0..KEEP as i64).map(|i| 600_000 - 3 * i).collect();
        assert_eq!(shown, newest, "exactly the newest, newest first");
        // New events since: one request brings them.
        relay.events.extend((1..=3).map(|i| event(600_000 + i * 3, "alert.fired")));
        assert_eq!(relay.serve_anew(&mut log), 1);
        assert_eq!(ids(&log)[..4], [600_009, 600_006, 600_003, 600_000]);
        assert_eq!(log.shown().len(), KEEP, "still only the newest held");
    }

    #[test]
    fn a_burst_of_events_before_the_newest_is_read_forward() {
        // Sparse ids, a burst of 2 000 in a row, then 80 sparse ones again.
        let ids_: Vec<i64> =
            (1..=1_500).map(|i| i * 10).chain(100_001..=102_000).chain((1..=80).map(|i| 102_000 + i * 100)).collect();
        let mut relay = Relay::new(ids_, &["routing.queued"]);
        let mut log = AuditLog::default();
        relay.serve_anew(&mut log);
        let shown = ids(&log);
        assert_eq!(shown.len(), KEEP);
        assert_eq!((shown[0], shown[79], shown[80]), (110_000, 102_100, 102_000));
        assert_eq!(shown[KEEP - 1], 102_000 - (KEEP as i64 - 80) + 1, "the burst's newest, none missing");
    }

    #[test]
    fn typing_narrows_at_once_and_asks_the_relay_only_when_a_dot_changes() {
        let mut relay = Relay::new(1..=40, &["routing.assigned", "alert.fired", "alert.resolved", "pii.revealed"]);
        let mut log = AuditLog::default();
        relay.serve_anew(&mut log);
        let mut typed = String::new();
        let mut asked = Vec::new();
        for c in "alert.f".chars() {
            typed.push(c);
            log.filter = typed.clone();
            if let Some(request) = log.filtered() {
                asked.push(request.clone());
                relay.serve(&mut log, Some(request));
            }
        }
        assert_eq!(asked, vec![ApiRequest::Events { after: 0, kind: Some("alert.".into()), limit: PAGE }]);
        assert!(log.shown().iter().all(|e| e.kind == "alert.fired"));
        assert_eq!(log.shown().len(), 10);
        // Back to no dot: every kind again.
        log.filter = "alert".into();
        let request = log.filtered().expect("every kind is asked for again");
        assert_eq!(request, ApiRequest::Events { after: 0, kind: None, limit: PAGE });
        // A late answer for the old filter is dropped.
        let stale = ApiRequest::Events { after: 0, kind: Some("alert.".into()), limit: PAGE };
        assert_eq!(log.on_page(&stale, Ok(vec![event(99, "alert.fired")]), 0), None);
        assert!(log.loading());
        relay.serve(&mut log, Some(request));
        assert_eq!(log.shown().len(), 20, "alert.fired and alert.resolved");
    }

    #[test]
    fn the_highlight_stays_on_its_event_and_the_newest_stays_on_top() {
        let mut relay = Relay::new(1..=10, &["routing.assigned"]);
        let mut log = AuditLog::default();
        relay.serve_anew(&mut log);
        log.select(2);
        assert_eq!(log.selected_event().map(|e| e.id), Some(8));
        log.select(100);
        assert_eq!(log.selected_event().map(|e| e.id), Some(1), "stops at the oldest");
        log.select(-3);
        relay.events.push(event(11, "alert.fired"));
        relay.serve_anew(&mut log);
        assert_eq!(log.selected_event().map(|e| e.id), Some(4), "kept on its event");
        log.select(-100);
        relay.events.push(event(12, "alert.fired"));
        relay.serve_anew(&mut log);
        assert_eq!(log.selected_event().map(|e| e.id), Some(12), "the newest, as it comes");
    }

    #[test]
    fn a_failure_keeps_what_is_held_and_says_why() {
        let mut relay = Relay::new(1..=5, &["alert.fired"]);
        let mut log = AuditLog::default();
        relay.serve_anew(&mut log);
        let request = log.refresh().unwrap();
        assert_eq!(request, ApiRequest::Events { after: 5, kind: None, limit: PAGE });
        assert_eq!(log.refresh(), None, "one load at a time");
        assert_eq!(log.on_page(&request, Err("cannot reach the relay".into()), 0), None);
        assert_eq!(log.error.as_deref(), Some("cannot reach the relay"));
        assert_eq!(log.shown().len(), 5);
        assert!(!log.loading());
    }

    #[test]
    fn data_and_actors_read_in_one_line() {
        assert_eq!(
            summary(&json!({"gone": null, "reason": "no\nreply", "seqs": [3, 5]})),
            "reason=no reply, seqs=[3,5]"
        );
        assert_eq!(summary(&json!(null)), "");
        let mut e = event(1, "pii.revealed");
        e.actor_kind = "agent".into();
        e.actor_id = Some(7);
        assert_eq!(actor(&e, |id| (id == 7).then(|| "小王".to_string())), "小王");
        assert_eq!(actor(&e, |_| None), "agent#7");
        e.actor_kind = "customer".into();
        assert_eq!(actor(&e, |_| None), "customer#7");
        e.actor_id = None;
        e.actor_kind = "system".into();
        assert_eq!(actor(&e, |_| None), "system");
    }
}
