//! Routing decisions in words: one sentence a supervisor can read, and the details behind
//! it, as recorded in the event log and returned by `GET /api/v1/conversations/{id}/routing`.
//! Pure: names are looked up through the closures the hub passes in.

use kefu_proto::{AgentId, UnixMillis};
use serde_json::{Value, json};

use crate::routing::{Candidate, Decision, GroupId, Refusal, Returned, Rule, Waiting, Why};

/// Names the explanations need, looked up by the hub.
pub struct Names<'a> {
    /// An agent's display name.
    pub agent: &'a dyn Fn(AgentId) -> String,
    /// A group's slug; `None` reads as "any agent".
    pub group: &'a dyn Fn(Option<GroupId>) -> String,
}

/// Who had a conversation before it was assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    /// Nobody: it was waiting.
    Queue,
    /// The bot was answering it (a supervisor took it over from the bot).
    Bot,
    /// This agent held it.
    Agent(AgentId),
}

/// An assignment: why this agent.
pub fn assigned(
    names: &Names,
    agent: AgentId,
    before: Before,
    group: Option<GroupId>,
    why: &Why,
    reroute_after_ms: Option<i64>,
) -> (String, Value) {
    let from = match before {
        Before::Agent(from) => Some(from),
        Before::Queue | Before::Bot => None,
    };
    let name = (names.agent)(agent);
    let winner = why.ranked[0];
    let load = winner.map(|c| format!("{}/{}", c.load, c.capacity)).unwrap_or_default();
    let runner_up = why.ranked[1];
    let sentence = match why.rule {
        Rule::Sticky => format!("returned to {name}, who served this customer last and has room ({load})"),
        Rule::SeniorForVip => {
            format!("VIP customer: {name} is the least loaded senior agent ({load}) of {} eligible", why.eligible)
        }
        Rule::LeastLoaded => {
            let mut s =
                format!("{name} had the fewest open conversations ({load}) of {} eligible agents", why.eligible);
            if let (Some(w), Some(r)) = (winner, runner_up)
                && w.load == r.load
            {
                s.push_str(&format!("; tied with {} and idle longer", (names.agent)(r.agent)));
            }
            s
        }
        Rule::Drained => format!("{name} gained room ({load}) and this was the first conversation in line"),
        Rule::Transferred => match from {
            Some(from) => format!("transferred by {} to {name}", (names.agent)(from)),
            None => format!("transferred to {name}"),
        },
        Rule::Picked => format!("{name} took it from the queue"),
        Rule::TakenOver => match before {
            Before::Agent(from) => format!("{name} took it over from {}", (names.agent)(from)),
            Before::Bot => format!("{name} took it over from the bot"),
            Before::Queue => format!("{name} took it over from the queue"),
        },
        Rule::Rerouted => {
            let secs = reroute_after_ms.unwrap_or(0) / 1000;
            match from {
                Some(from) => format!("{} did not reply within {secs}s; moved to {name} ({load})", (names.agent)(from)),
                None => format!("no reply within {secs}s; moved to {name} ({load})"),
            }
        }
    };
    let details = json!({
        "rule": rule_name(why.rule),
        "agent_id": agent,
        "from_agent_id": from,
        "group": (names.group)(group),
        "eligible": why.eligible,
        "candidates": why.ranked.iter().flatten().map(|c| candidate(names, c)).collect::<Vec<_>>(),
    });
    (sentence, details)
}

fn agents(n: u32) -> &'static str {
    if n == 1 { "agent" } else { "agents" }
}

/// A conversation left waiting: why nobody took it.
pub fn queued(names: &Names, group: Option<GroupId>, why: Waiting) -> (String, Value) {
    let g = (names.group)(group);
    let (sentence, reason) = match why {
        Waiting::NobodyOnline => (format!("waiting in {g}: nobody who serves it is online"), "nobody_online"),
        Waiting::AllBusy { online } => {
            (format!("waiting in {g}: all {online} online {} who serve it are at capacity", agents(online)), "all_busy")
        }
    };
    let online = match why {
        Waiting::AllBusy { online } => online,
        Waiting::NobodyOnline => 0,
    };
    (sentence, json!({"reason": reason, "group": g, "agents_online": online}))
}

/// A conversation taken from its agent back to a queue.
pub fn returned(names: &Names, from: AgentId, group: Option<GroupId>, why: Returned, grace_ms: i64) -> (String, Value) {
    let agent = (names.agent)(from);
    let g = (names.group)(group);
    let (sentence, reason) = match why {
        Returned::AgentGone => (
            format!("{agent} disconnected and was not back within {}s; back to the front of {g}", grace_ms / 1000),
            "agent_gone",
        ),
        Returned::Transferred => (format!("{agent} transferred it to {g}"), "transferred"),
    };
    (sentence, json!({"reason": reason, "from_agent_id": from, "group": g}))
}

/// A conversation that waited too long and moved on.
pub fn escalated(
    names: &Names,
    from: Option<GroupId>,
    to: Option<GroupId>,
    waited_since: UnixMillis,
    now: UnixMillis,
) -> (String, Value) {
    let (f, t) = ((names.group)(from), (names.group)(to));
    let waited = (now - waited_since).max(0) / 1000;
    (
        format!("waited {waited}s in {f}, past its limit; moved to {t}"),
        json!({"from": f, "to": t, "waited_secs": waited}),
    )
}

/// A refused transfer or pick, as a message for the agent who asked.
pub fn refusal(names: &Names, to: Option<AgentId>, why: Refusal) -> String {
    let who = to.map(|a| (names.agent)(a)).unwrap_or_else(|| "the agent".into());
    match why {
        Refusal::NotRoutable => {
            "the conversation is not where that needs it to be (not assigned, or not queued)".into()
        }
        Refusal::UnknownAgent => "no such agent in this workspace".into(),
        Refusal::NotAvailable => format!("{who} is not online"),
        Refusal::AtCapacity => format!("{who} has no room (at capacity)"),
        Refusal::AlreadyHolds => format!("{who} already holds it"),
    }
}

fn candidate(names: &Names, c: &Candidate) -> Value {
    json!({
        "agent_id": c.agent,
        "name": (names.agent)(c.agent),
        "load": c.load,
        "capacity": c.capacity,
        "idle_since": c.idle_since,
        "senior": c.senior,
    })
}

/// A decision's outcome and rule (or reason), as metrics label them.
pub fn outcome_and_rule(decision: &Decision) -> (&'static str, &'static str) {
    match decision {
        Decision::Assigned { why, .. } => ("assigned", rule_name(why.rule)),
        Decision::Queued { why: Waiting::NobodyOnline, .. } => ("queued", "nobody_online"),
        Decision::Queued { why: Waiting::AllBusy { .. }, .. } => ("queued", "all_busy"),
        Decision::Returned { why: Returned::AgentGone, .. } => ("returned", "agent_gone"),
        Decision::Returned { why: Returned::Transferred, .. } => ("returned", "transferred"),
        Decision::Escalated { .. } => ("escalated", "deadline"),
        Decision::Refused { .. } => ("refused", "refused"),
    }
}

fn rule_name(rule: Rule) -> &'static str {
    match rule {
        Rule::Sticky => "sticky",
        Rule::LeastLoaded => "least_loaded",
        Rule::SeniorForVip => "senior_for_vip",
        Rule::Drained => "drained",
        Rule::Transferred => "transferred",
        Rule::Picked => "picked",
        Rule::TakenOver => "taken_over",
        Rule::Rerouted => "rerouted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> (impl Fn(AgentId) -> String, impl Fn(Option<GroupId>) -> String) {
        (|a: AgentId| format!("agent{a}"), |g: Option<GroupId>| g.map_or("any agent".into(), |g| format!("g{g}")))
    }

    fn c(agent: i64, load: u32) -> Option<Candidate> {
        Some(Candidate { agent: AgentId(agent), load, capacity: 5, idle_since: 0, senior: false })
    }

    #[test]
    fn sentences_name_the_rule_and_the_numbers() {
        let (agent, group) = names();
        let names = Names { agent: &agent, group: &group };
        let why = Why { rule: Rule::LeastLoaded, eligible: 3, ranked: [c(2, 1), c(3, 1), c(1, 4)] };
        let (s, details) = assigned(&names, AgentId(2), Before::Queue, Some(7), &why, None);
        assert_eq!(
            s,
            "agent2 had the fewest open conversations (1/5) of 3 eligible agents; tied with agent3 and idle longer"
        );
        assert_eq!(details["candidates"].as_array().map(Vec::len), Some(3));
        assert_eq!(details["group"], "g7");
        let taken = Why { rule: Rule::TakenOver, eligible: 1, ranked: [c(9, 0), None, None] };
        let over = |before| assigned(&names, AgentId(9), before, None, &taken, None).0;
        assert_eq!(over(Before::Agent(AgentId(2))), "agent9 took it over from agent2");
        assert_eq!(over(Before::Bot), "agent9 took it over from the bot");
        assert_eq!(over(Before::Queue), "agent9 took it over from the queue");
        let (s, _) = queued(&names, None, Waiting::AllBusy { online: 2 });
        assert_eq!(s, "waiting in any agent: all 2 online agents who serve it are at capacity");
        let (s, _) = returned(&names, AgentId(4), Some(1), Returned::AgentGone, 60_000);
        assert_eq!(s, "agent4 disconnected and was not back within 60s; back to the front of g1");
        let (s, _) = escalated(&names, Some(1), Some(2), 0, 121_000);
        assert_eq!(s, "waited 121s in g1, past its limit; moved to g2");
        assert_eq!(refusal(&names, Some(AgentId(9)), Refusal::AtCapacity), "agent9 has no room (at capacity)");
    }
}
