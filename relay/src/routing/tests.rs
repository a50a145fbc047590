//! Table-driven tests of each routing rule, and property tests of the invariants under
//! random event sequences.

use super::*;
use proptest::prelude::*;

const G1: GroupId = 1;
const G2: GroupId = 2;
const G3: GroupId = 3;

fn agent(id: i64, capacity: u32, skills: &[(GroupId, Level)]) -> Event {
    Event::Agent { agent: AgentId(id), capacity, skills: skills.to_vec() }
}
fn online(id: i64) -> Event {
    Event::Presence { agent: AgentId(id), availability: Availability::Online }
}
fn away(id: i64) -> Event {
    Event::Presence { agent: AgentId(id), availability: Availability::Away }
}
fn gone(id: i64) -> Event {
    Event::Presence { agent: AgentId(id), availability: Availability::Gone }
}
/// A conversation of `group` queued at `at` with priority 200 (an ordinary web customer).
fn conv(id: i64, group: Option<GroupId>, at: i64) -> Event {
    Event::Enqueue(Routable {
        conversation: ConversationId(id),
        group,
        priority: 200,
        vip: false,
        queued_at: at,
        preferred: None,
    })
}
fn vip(id: i64, group: Option<GroupId>, at: i64) -> Event {
    Event::Enqueue(Routable {
        conversation: ConversationId(id),
        group,
        priority: 100,
        vip: true,
        queued_at: at,
        preferred: None,
    })
}
fn returning(id: i64, preferred: i64, at: i64) -> Event {
    Event::Enqueue(Routable {
        conversation: ConversationId(id),
        group: None,
        priority: 200,
        vip: false,
        queued_at: at,
        preferred: Some(AgentId(preferred)),
    })
}
fn release(id: i64) -> Event {
    Event::Released { conversation: ConversationId(id) }
}
fn group(id: GroupId, escalate_after_ms: Option<i64>, fallback: Option<GroupId>, widen: bool) -> Event {
    Event::Group { group: id, rules: GroupRules { escalate_after_ms, fallback, widen } }
}

/// One line per decision, so that a table row reads like the rule it tests.
fn describe(d: &Decision) -> String {
    let g = |g: &Option<GroupId>| g.map_or("any".to_string(), |g| format!("g{g}"));
    match d {
        Decision::Assigned { conversation, agent, from, why } => {
            let from = from.map(|a| format!(" from a{a}")).unwrap_or_default();
            format!("c{conversation} -> a{agent}{from} ({:?})", why.rule)
        }
        Decision::Queued { conversation, group, why } => format!("c{conversation} waits in {} ({why:?})", g(group)),
        Decision::Returned { conversation, from, group, why } => {
            format!("c{conversation} leaves a{from} for {} ({why:?})", g(group))
        }
        Decision::Escalated { conversation, from, to } => format!("c{conversation} escalates {} -> {}", g(from), g(to)),
        Decision::Refused { conversation, why } => format!("c{conversation} refused ({why:?})"),
    }
}

/// Feeds `(time, event)` pairs to a router with `timing`; returns every decision described.
fn check_timed(timing: Timing, events: &[(i64, Event)]) -> Vec<String> {
    let mut router = Router::new(timing);
    let mut out = Vec::new();
    for (now, event) in events {
        router.handle(event.clone(), *now, &mut out);
    }
    out.iter().map(describe).collect()
}

/// Feeds events at times 1, 2, 3, … with default timing.
fn check(events: &[Event]) -> Vec<String> {
    let timed: Vec<(i64, Event)> = events.iter().cloned().enumerate().map(|(t, e)| (t as i64 + 1, e)).collect();
    check_timed(Timing::default(), &timed)
}

fn lines(expected: &[&str]) -> Vec<String> {
    expected.iter().map(|s| s.to_string()).collect()
}

#[test]
fn assignment_rules() {
    use Level::*;
    let table: Vec<(&str, Vec<Event>, Vec<&str>)> = vec![
        ("nobody online: waits", vec![agent(1, 5, &[]), conv(10, None, 1)], vec!["c10 waits in any (NobodyOnline)"]),
        (
            "agent coming online drains the queue",
            vec![agent(1, 5, &[]), conv(10, None, 1), online(1)],
            vec!["c10 waits in any (NobodyOnline)", "c10 -> a1 (Drained)"],
        ),
        (
            "fewest open conversations first",
            vec![
                agent(1, 5, &[]),
                agent(2, 5, &[]),
                online(1),
                online(2),
                conv(10, None, 1),
                conv(11, None, 2),
                conv(12, None, 3),
            ],
            vec!["c10 -> a1 (LeastLoaded)", "c11 -> a2 (LeastLoaded)", "c12 -> a1 (LeastLoaded)"],
        ),
        (
            "ties go to the agent idle longest",
            vec![agent(1, 5, &[]), agent(2, 5, &[]), online(2), online(1), conv(10, None, 1)],
            vec!["c10 -> a2 (LeastLoaded)"],
        ),
        (
            "skill match: only agents with the group's skill",
            vec![agent(1, 5, &[]), agent(2, 5, &[(G1, Junior)]), online(1), online(2), conv(10, Some(G1), 1)],
            vec!["c10 -> a2 (LeastLoaded)"],
        ),
        (
            "a group with nobody skilled online waits even if others are free",
            vec![agent(1, 5, &[(G2, Junior)]), online(1), conv(10, Some(G1), 1)],
            vec!["c10 waits in g1 (NobodyOnline)"],
        ),
        (
            "VIP prefers a senior agent",
            vec![
                agent(1, 5, &[(G1, Junior)]),
                agent(2, 5, &[(G1, Senior)]),
                online(1),
                online(2),
                conv(9, Some(G1), 1),
                vip(10, Some(G1), 1),
            ],
            vec!["c9 -> a1 (LeastLoaded)", "c10 -> a2 (SeniorForVip)"],
        ),
        (
            "VIP takes a junior when no senior has room",
            vec![
                agent(1, 5, &[(G1, Junior)]),
                agent(2, 0, &[(G1, Senior)]),
                online(1),
                online(2),
                vip(10, Some(G1), 1),
            ],
            vec!["c10 -> a1 (LeastLoaded)"],
        ),
        (
            "sticky: back to the previous agent when they have room",
            vec![agent(1, 5, &[]), agent(2, 5, &[]), online(1), online(2), conv(9, None, 1), returning(10, 1, 2)],
            vec!["c9 -> a1 (LeastLoaded)", "c10 -> a1 (Sticky)"],
        ),
        (
            "sticky falls back to normal routing when the previous agent is away",
            vec![agent(1, 5, &[]), agent(2, 5, &[]), online(2), returning(10, 1, 2)],
            vec!["c10 -> a2 (LeastLoaded)"],
        ),
        (
            "away agents get nothing new",
            vec![agent(1, 5, &[]), online(1), away(1), conv(10, None, 1)],
            vec!["c10 waits in any (NobodyOnline)"],
        ),
        (
            "capacity holds; a release lets the next in line in",
            vec![agent(1, 1, &[]), online(1), conv(10, None, 1), conv(11, None, 2), release(10)],
            vec!["c10 -> a1 (LeastLoaded)", "c11 waits in any (AllBusy { online: 1 })", "c11 -> a1 (Drained)"],
        ),
        (
            "capacity raised drains at once",
            vec![agent(1, 1, &[]), online(1), conv(10, None, 1), conv(11, None, 2), agent(1, 2, &[])],
            vec!["c10 -> a1 (LeastLoaded)", "c11 waits in any (AllBusy { online: 1 })", "c11 -> a1 (Drained)"],
        ),
        (
            "a skill added drains that group's queue",
            vec![agent(1, 5, &[]), online(1), conv(10, Some(G1), 1), agent(1, 5, &[(G1, Junior)])],
            vec!["c10 waits in g1 (NobodyOnline)", "c10 -> a1 (Drained)"],
        ),
        (
            "queue order: priority first, then age",
            vec![agent(1, 0, &[]), online(1), conv(10, None, 5), conv(11, None, 3), vip(12, None, 9), agent(1, 3, &[])],
            vec![
                "c10 waits in any (AllBusy { online: 1 })",
                "c11 waits in any (AllBusy { online: 1 })",
                "c12 waits in any (AllBusy { online: 1 })",
                "c12 -> a1 (Drained)",
                "c11 -> a1 (Drained)",
                "c10 -> a1 (Drained)",
            ],
        ),
        (
            "an agent with several skills takes the best head among their queues",
            vec![
                agent(1, 0, &[(G1, Junior), (G2, Junior)]),
                online(1),
                conv(10, Some(G1), 5),
                conv(11, Some(G2), 3),
                agent(1, 1, &[(G1, Junior), (G2, Junior)]),
            ],
            vec![
                "c10 waits in g1 (AllBusy { online: 1 })",
                "c11 waits in g2 (AllBusy { online: 1 })",
                "c11 -> a1 (Drained)",
            ],
        ),
        (
            "released while waiting: never assigned",
            vec![conv(10, None, 1), release(10), agent(1, 5, &[]), online(1)],
            vec!["c10 waits in any (NobodyOnline)"],
        ),
    ];
    for (name, events, expected) in table {
        assert_eq!(check(&events), lines(&expected), "{name}");
    }
}

#[test]
fn transfers_and_picks() {
    let take = |c: i64, a: i64| Event::TakeOver { conversation: ConversationId(c), agent: AgentId(a), arriving: None };
    // A conversation the bot was answering: the router first hears of it as it is taken over.
    let from_bot = |c: i64, a: i64| Event::TakeOver {
        conversation: ConversationId(c),
        agent: AgentId(a),
        arriving: Some(Routable {
            conversation: ConversationId(c),
            group: Some(G1),
            priority: 200,
            vip: false,
            queued_at: 7,
            preferred: Some(AgentId(1)),
        }),
    };
    let table: Vec<(&str, Vec<Event>, Vec<&str>)> = vec![
        (
            "a supervisor sends a waiting conversation straight to an agent with room; a full one refuses",
            vec![
                agent(1, 1, &[]),
                agent(2, 5, &[(G1, Level::Junior)]),
                online(1),
                conv(10, None, 1),
                conv(11, Some(G1), 2),
                online(2),
                conv(12, Some(G2), 3),
                Event::TransferToAgent { conversation: ConversationId(12), to: AgentId(2) },
                Event::TransferToAgent { conversation: ConversationId(12), to: AgentId(1) },
            ],
            vec![
                "c10 -> a1 (LeastLoaded)",
                "c11 waits in g1 (NobodyOnline)",
                "c11 -> a2 (Drained)",
                "c12 waits in g2 (NobodyOnline)",
                "c12 -> a2 (Transferred)",
                "c12 refused (AtCapacity)",
            ],
        ),
        (
            "take over from an agent, beyond the supervisor's capacity; the agent refills",
            vec![
                agent(1, 1, &[]),
                agent(9, 0, &[]),
                online(1),
                conv(10, None, 1),
                conv(11, None, 2),
                take(10, 9),
                take(10, 9),
            ],
            vec![
                "c10 -> a1 (LeastLoaded)",
                "c11 waits in any (AllBusy { online: 1 })",
                "c10 -> a9 from a1 (TakenOver)",
                "c11 -> a1 (Drained)",
                "c10 refused (AlreadyHolds)",
            ],
        ),
        (
            "take over from the bot: straight to the supervisor, though an agent of its group has room \
             and was the contact's last; then held like any other",
            vec![
                agent(1, 5, &[(G1, Level::Junior)]),
                agent(9, 1, &[]),
                online(1),
                from_bot(12, 9),
                from_bot(12, 9),
                take(12, 1),
            ],
            vec!["c12 -> a9 (TakenOver)", "c12 refused (AlreadyHolds)", "c12 -> a1 from a9 (TakenOver)"],
        ),
        (
            "taken from the bot for someone the router does not know: refused, and routed like any other",
            vec![agent(1, 5, &[(G1, Level::Junior)]), online(1), from_bot(13, 5)],
            vec!["c13 refused (UnknownAgent)", "c13 -> a1 (Sticky)"],
        ),
        (
            "take over from the queue, even while away; unknown conversations are refused",
            vec![agent(9, 1, &[]), away(9), conv(10, Some(G1), 1), take(10, 9), take(77, 9), take(10, 5)],
            vec![
                "c10 waits in g1 (NobodyOnline)",
                "c10 -> a9 (TakenOver)",
                "c77 refused (NotRoutable)",
                "c10 refused (UnknownAgent)",
            ],
        ),
        (
            "to an agent with room",
            vec![
                agent(1, 5, &[]),
                agent(2, 5, &[]),
                online(1),
                conv(10, None, 1),
                online(2),
                Event::TransferToAgent { conversation: ConversationId(10), to: AgentId(2) },
            ],
            vec!["c10 -> a1 (LeastLoaded)", "c10 -> a2 from a1 (Transferred)"],
        ),
        (
            "to a full agent: refused, nothing moves",
            vec![
                agent(1, 5, &[]),
                agent(2, 0, &[]),
                online(1),
                online(2),
                conv(10, None, 1),
                Event::TransferToAgent { conversation: ConversationId(10), to: AgentId(2) },
            ],
            vec!["c10 -> a1 (LeastLoaded)", "c10 refused (AtCapacity)"],
        ),
        (
            "to an away agent: refused",
            vec![
                agent(1, 5, &[]),
                agent(2, 5, &[]),
                online(1),
                conv(10, None, 1),
                Event::TransferToAgent { conversation: ConversationId(10), to: AgentId(2) },
            ],
            vec!["c10 -> a1 (LeastLoaded)", "c10 refused (NotAvailable)"],
        ),
        (
            "to a group: the sender does not get it back",
            vec![
                agent(1, 5, &[(G1, Level::Junior)]),
                online(1),
                conv(10, None, 1),
                Event::TransferToGroup { conversation: ConversationId(10), group: Some(G1) },
                agent(2, 5, &[(G1, Level::Junior)]),
                online(2),
            ],
            vec![
                "c10 -> a1 (LeastLoaded)",
                "c10 leaves a1 for g1 (Transferred)",
                "c10 waits in g1 (AllBusy { online: 1 })",
                "c10 -> a2 (Drained)",
            ],
        ),
        (
            "a transferred conversation goes before those already waiting",
            vec![
                agent(1, 1, &[]),
                agent(2, 1, &[]),
                online(1),
                online(2),
                conv(10, None, 1),
                conv(11, None, 2),
                conv(12, None, 3),
                Event::TransferToGroup { conversation: ConversationId(10), group: None },
                release(11),
            ],
            vec![
                "c10 -> a1 (LeastLoaded)",
                "c11 -> a2 (LeastLoaded)",
                "c12 waits in any (AllBusy { online: 2 })",
                "c10 leaves a1 for any (Transferred)",
                "c10 waits in any (AllBusy { online: 2 })",
                "c12 -> a1 (Drained)",
                "c10 -> a2 (Drained)",
            ],
        ),
        (
            "pick: a queued conversation by hand, capacity holding",
            vec![
                agent(1, 1, &[]),
                conv(10, Some(G1), 1),
                online(1),
                Event::Pick { conversation: ConversationId(10), agent: AgentId(1) },
                conv(11, Some(G1), 2),
                Event::Pick { conversation: ConversationId(11), agent: AgentId(1) },
            ],
            vec![
                "c10 waits in g1 (NobodyOnline)",
                "c10 -> a1 (Picked)",
                "c11 waits in g1 (NobodyOnline)",
                "c11 refused (AtCapacity)",
            ],
        ),
    ];
    for (name, events, expected) in table {
        assert_eq!(check(&events), lines(&expected), "{name}");
    }
}

#[test]
fn timed_rules() {
    let grace = Timing { grace_ms: 60_000, reroute_unanswered_ms: None };
    let reroute = Timing { grace_ms: 60_000, reroute_unanswered_ms: Some(30_000) };
    /// A rule's name, the timing, the timed events fed, and the decisions expected.
    type Case = (&'static str, Timing, Vec<(i64, Event)>, Vec<&'static str>);
    let table: Vec<Case> = vec![
        (
            "grace: a gone agent's conversations return after the grace period",
            grace,
            vec![
                (0, agent(1, 5, &[])),
                (0, agent(2, 5, &[])),
                (0, online(1)),
                (1, conv(10, None, 1)),
                (2, online(2)),
                (3, gone(1)),
                (59_000, Event::Tick),
                (60_003, Event::Tick),
            ],
            vec!["c10 -> a1 (LeastLoaded)", "c10 leaves a1 for any (AgentGone)", "c10 -> a2 (LeastLoaded)"],
        ),
        (
            "grace: back in time keeps everything",
            grace,
            vec![
                (0, agent(1, 5, &[])),
                (0, online(1)),
                (1, conv(10, None, 1)),
                (3, gone(1)),
                (30_000, online(1)),
                (100_000, Event::Tick),
            ],
            vec!["c10 -> a1 (LeastLoaded)"],
        ),
        (
            "escalation to the fallback group after the timeout",
            grace,
            vec![
                (0, group(G1, Some(120_000), Some(G2), false)),
                (0, agent(2, 5, &[(G2, Level::Junior)])),
                (0, online(2)),
                (0, conv(10, Some(G1), 0)),
                (119_999, Event::Tick),
                (120_000, Event::Tick),
            ],
            vec!["c10 waits in g1 (NobodyOnline)", "c10 escalates g1 -> g2", "c10 -> a2 (LeastLoaded)"],
        ),
        (
            "escalation chains through fallbacks, then widens",
            grace,
            vec![
                (0, group(G1, Some(10), Some(G2), false)),
                (0, group(G2, Some(10), Some(G3), false)),
                (0, group(G3, Some(10), None, true)),
                (0, conv(10, Some(G1), 0)),
                (10, Event::Tick),
                (20, Event::Tick),
                (30, Event::Tick),
                (31, agent(1, 5, &[])),
                (31, online(1)),
            ],
            vec![
                "c10 waits in g1 (NobodyOnline)",
                "c10 escalates g1 -> g2",
                "c10 waits in g2 (NobodyOnline)",
                "c10 escalates g2 -> g3",
                "c10 waits in g3 (NobodyOnline)",
                "c10 escalates g3 -> any",
                "c10 waits in any (NobodyOnline)",
                "c10 -> a1 (Drained)",
            ],
        ),
        (
            "no fallback and no widening: it keeps waiting",
            grace,
            vec![(0, group(G1, Some(10), None, false)), (0, conv(10, Some(G1), 0)), (50, Event::Tick)],
            vec!["c10 waits in g1 (NobodyOnline)"],
        ),
        (
            "unanswered: re-routed to another agent",
            reroute,
            vec![
                (0, agent(1, 5, &[])),
                (0, agent(2, 5, &[])),
                (0, online(1)),
                (1, conv(10, None, 1)),
                (2, online(2)),
                (30_001, Event::Tick),
            ],
            vec!["c10 -> a1 (LeastLoaded)", "c10 -> a2 from a1 (Rerouted)"],
        ),
        (
            "answered: stays",
            reroute,
            vec![
                (0, agent(1, 5, &[])),
                (0, agent(2, 5, &[])),
                (0, online(1)),
                (1, conv(10, None, 1)),
                (2, online(2)),
                (5, Event::Replied { conversation: ConversationId(10) }),
                (90_000, Event::Tick),
            ],
            vec!["c10 -> a1 (LeastLoaded)"],
        ),
        (
            "unanswered with nobody else: stays, retried later",
            reroute,
            vec![
                (0, agent(1, 5, &[])),
                (0, agent(2, 5, &[])),
                (0, online(1)),
                (1, conv(10, None, 1)),
                (30_001, Event::Tick),
                (40_000, online(2)),
                (60_001, Event::Tick),
            ],
            vec!["c10 -> a1 (LeastLoaded)", "c10 -> a2 from a1 (Rerouted)"],
        ),
    ];
    for (name, timing, events, expected) in table {
        assert_eq!(check_timed(timing, &events), lines(&expected), "{name}");
    }
}

#[test]
fn the_winner_and_runners_up_are_explained() {
    let mut router = Router::new(Timing::default());
    let mut out = Vec::new();
    for e in [agent(1, 5, &[]), agent(2, 5, &[]), agent(3, 5, &[]), online(1), online(2), online(3), conv(9, None, 1)] {
        router.handle(e, 10, &mut out);
    }
    out.clear();
    router.handle(conv(10, None, 20), 20, &mut out);
    let Decision::Assigned { agent, why, .. } = out[0] else { panic!("{out:?}") };
    assert_eq!(agent, AgentId(2));
    assert_eq!(why.rule, Rule::LeastLoaded);
    assert_eq!(why.eligible, 3);
    let ranked: Vec<(AgentId, u32)> = why.ranked.iter().flatten().map(|c| (c.agent, c.load)).collect();
    assert_eq!(ranked, vec![(AgentId(2), 0), (AgentId(3), 0), (AgentId(1), 1)]);
}

// ---- properties ---------------------------------------------------------------------------

fn arb_event() -> impl Strategy<Value = (i64, Event)> {
    let agents = 1i64..5;
    let convs = 1i64..25;
    let groups = prop_oneof![Just(None), Just(Some(G1)), Just(Some(G2))];
    let skills = proptest::collection::vec((1i64..3, any::<bool>()), 0..3).prop_map(|v| {
        let mut v: Vec<(GroupId, Level)> =
            v.into_iter().map(|(g, s)| (g, if s { Level::Senior } else { Level::Junior })).collect();
        v.sort_by_key(|s| s.0);
        v.dedup_by_key(|s| s.0);
        v
    });
    let event = prop_oneof![
        (agents.clone(), 0u32..4, skills).prop_map(|(a, c, s)| Event::Agent {
            agent: AgentId(a),
            capacity: c,
            skills: s
        }),
        (agents.clone(), 0u8..3).prop_map(|(a, p)| Event::Presence {
            agent: AgentId(a),
            availability: [Availability::Online, Availability::Away, Availability::Gone][p as usize],
        }),
        (convs.clone(), groups.clone(), 0u16..3, any::<bool>(), 0i64..1000, proptest::option::of(agents.clone()))
            .prop_map(|(c, g, p, v, at, pref)| Event::Enqueue(Routable {
                conversation: ConversationId(c),
                group: g,
                priority: p,
                vip: v,
                queued_at: at,
                preferred: pref.map(AgentId),
            })),
        convs.clone().prop_map(|c| Event::Released { conversation: ConversationId(c) }),
        convs.clone().prop_map(|c| Event::Replied { conversation: ConversationId(c) }),
        (convs.clone(), agents.clone())
            .prop_map(|(c, a)| Event::TransferToAgent { conversation: ConversationId(c), to: AgentId(a) }),
        (convs.clone(), groups.clone())
            .prop_map(|(c, g)| Event::TransferToGroup { conversation: ConversationId(c), group: g }),
        (convs, agents).prop_map(|(c, a)| Event::Pick { conversation: ConversationId(c), agent: AgentId(a) }),
        Just(Event::Tick),
    ];
    (0i64..20_000, event)
}

/// Everything that must hold after every event.
fn check_invariants(
    router: &Router,
    made: &[Decision],
    before: &HashMap<ConversationId, Waiter>,
) -> Result<(), TestCaseError> {
    // Capacity: an agent who received a conversation in this step is within capacity.
    for d in made {
        if let Decision::Assigned { agent, .. } = d {
            let a = &router.agents[agent];
            prop_assert!(a.load() <= a.capacity, "capacity exceeded: {agent} {} > {}", a.load(), a.capacity);
        }
    }
    // Held once: holdings and agents' held sets agree; nothing both held and waiting.
    let mut held = 0;
    for (id, a) in &router.agents {
        for c in &a.held {
            prop_assert_eq!(router.holdings.get(c).map(|h| h.agent), Some(*id));
            held += 1;
        }
    }
    prop_assert_eq!(held, router.holdings.len());
    for c in router.waiting.keys() {
        prop_assert!(!router.holdings.contains_key(c), "c{} held and waiting", c);
    }
    // The pools are exactly the available agents with room, per queue they serve.
    for (group, pool) in &router.pools {
        let expected: BTreeSet<AgentKey> = router
            .agents
            .iter()
            .filter(|(_, a)| a.has_room() && groups_of(a).any(|g| g == *group))
            .map(|(id, a)| a.key(*id))
            .collect();
        prop_assert_eq!(&pool.all, &expected, "pool of {:?}", group);
        let online = router
            .agents
            .values()
            .filter(|a| a.availability == Availability::Online && groups_of(a).any(|g| g == *group))
            .count();
        prop_assert_eq!(pool.online as usize, online);
    }
    // Nobody waits while an eligible agent (other than one it is moving away from) has room.
    for (c, w) in &router.waiting {
        let eligible = router
            .agents
            .iter()
            .any(|(id, a)| a.has_room() && Some(*id) != w.excluded && groups_of(a).any(|g| g == w.routable.group));
        prop_assert!(!eligible, "c{} waits in {:?} while an eligible agent has room", c, w.routable.group);
    }
    // FIFO within priority: a conversation drained from a queue had nobody ahead of it in
    // that queue whom the same agent could have taken.
    for d in made {
        // (A conversation that escalated in this same step was drained from its new
        // queue, not the one it was in before.)
        let escalated = |c: &ConversationId| {
            made.iter().any(|m| matches!(m, Decision::Escalated { conversation, .. } if conversation == c))
        };
        if let Decision::Assigned { conversation, agent, why, .. } = d
            && why.rule == Rule::Drained
            && !escalated(conversation)
            && let Some(w) = before.get(conversation)
        {
            let key = (w.routable.priority, w.routable.queued_at, *conversation);
            for other in router.waiting.values() {
                let other_key = (other.routable.priority, other.routable.queued_at, other.routable.conversation);
                let same_queue = other.routable.group == w.routable.group;
                prop_assert!(
                    !(same_queue
                        && other_key < key
                        && other.excluded != Some(*agent)
                        && before.contains_key(&other.routable.conversation)),
                    "c{} was drained before c{} which was ahead of it",
                    conversation,
                    other.routable.conversation
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_under_any_event_sequence(mut events in proptest::collection::vec(arb_event(), 0..120)) {
        events.sort_by_key(|(t, _)| *t);
        let mut router = Router::new(Timing { grace_ms: 3_000, reroute_unanswered_ms: Some(2_000) });
        router.handle(group(G1, Some(1_000), Some(G2), false), 0, &mut Vec::new());
        router.handle(group(G2, Some(1_500), None, true), 0, &mut Vec::new());
        let mut out = Vec::new();
        for (now, event) in events {
            let before = router.waiting.clone();
            out.clear();
            router.handle(event, now, &mut out);
            check_invariants(&router, &out, &before)?;
        }
    }
}
