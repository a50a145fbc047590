//! The conversation lifecycle as a pure state machine: which transitions are legal and
//! which timestamps each one sets. No I/O, no clock (the time is passed in).
//!
//! ```text
//!   open ──► bot ──handover──► queued ──assign──► assigned ──resolve──► resolved ──close──► closed
//!             │                  ▲  ▲                │  ▲ transfer          │
//!             │                  │  └───requeue──────┘  └──────┘            │
//!             │                  └──────────────reopen──────────────────────┘
//!             └── resolve / close (the bot settled it, or it was abandoned)
//! ```
//! Every non-closed state can be closed; bot and queued can also be resolved directly.

use kefu_proto::frame::ConversationState;
use kefu_proto::{AgentId, UnixMillis};

/// Where a conversation stands, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    /// The state.
    pub state: ConversationState,
    /// The agent holding it: set while assigned, and kept through resolved and closed as
    /// the agent who served it last (a reopened conversation can return to them).
    pub assignee: Option<AgentId>,
    /// When it was opened.
    pub created_at: UnixMillis,
    /// When it last entered the queue.
    pub queued_at: Option<UnixMillis>,
    /// When it was last assigned.
    pub assigned_at: Option<UnixMillis>,
    /// When it was last resolved.
    pub resolved_at: Option<UnixMillis>,
    /// When it was closed.
    pub closed_at: Option<UnixMillis>,
}

/// Something that moves a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The bot hands over to people.
    HandOver,
    /// An agent takes it from the queue.
    Assign(AgentId),
    /// It goes from one agent to another.
    Transfer(AgentId),
    /// It goes back to the queue (agent gone, transferred to a group).
    Requeue,
    /// The agent (or bot) settled it.
    Resolve,
    /// The customer wrote again after it was resolved.
    Reopen,
    /// Finished for good.
    Close,
}

/// A transition the current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {transition:?} a conversation that is {}", from.as_str())]
pub struct InvalidTransition {
    /// The state it was in.
    pub from: ConversationState,
    /// What was attempted.
    pub transition: Transition,
}

impl Lifecycle {
    /// A new conversation: with the bot first when one answers, else straight into the queue.
    pub fn open(now: UnixMillis, bot_first: bool) -> Lifecycle {
        let (state, queued_at) =
            if bot_first { (ConversationState::Bot, None) } else { (ConversationState::Queued, Some(now)) };
        Lifecycle {
            state,
            assignee: None,
            created_at: now,
            queued_at,
            assigned_at: None,
            resolved_at: None,
            closed_at: None,
        }
    }

    /// True while people or the bot are still working on it.
    pub fn is_open(&self) -> bool {
        matches!(self.state, ConversationState::Bot | ConversationState::Queued | ConversationState::Assigned)
    }

    /// The lifecycle after `transition` at `now`, or why it cannot happen.
    pub fn apply(&self, transition: Transition, now: UnixMillis) -> Result<Lifecycle, InvalidTransition> {
        use ConversationState::*;
        let mut next = self.clone();
        let refuse = || InvalidTransition { from: self.state, transition };
        match (self.state, transition) {
            (Bot, Transition::HandOver) | (Assigned, Transition::Requeue) | (Resolved, Transition::Reopen) => {
                next.state = Queued;
                next.assignee = None;
                next.queued_at = Some(now);
            }
            (Queued, Transition::Assign(agent)) => {
                next.state = Assigned;
                next.assignee = Some(agent);
                next.assigned_at = Some(now);
            }
            (Assigned, Transition::Transfer(agent)) if self.assignee != Some(agent) => {
                next.assignee = Some(agent);
                next.assigned_at = Some(now);
            }
            (Bot | Queued | Assigned, Transition::Resolve) => {
                next.state = Resolved;
                next.resolved_at = Some(now);
            }
            (Bot | Queued | Assigned | Resolved, Transition::Close) => {
                // The assignee stays: it is who served the contact last (sticky routing).
                next.state = Closed;
                next.closed_at = Some(now);
            }
            _ => return Err(refuse()),
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConversationState::*;

    const A: AgentId = AgentId(1);
    const B: AgentId = AgentId(2);

    /// Drives a lifecycle from `start` through `steps`; returns the final state and
    /// assignee, or the first refused transition.
    fn check(bot_first: bool, steps: &[Transition]) -> Result<(ConversationState, Option<AgentId>), InvalidTransition> {
        let mut life = Lifecycle::open(0, bot_first);
        for (i, step) in steps.iter().enumerate() {
            life = life.apply(*step, i as i64 + 1)?;
        }
        Ok((life.state, life.assignee))
    }

    #[test]
    fn legal_paths() {
        use Transition::*;
        let table: &[(bool, &[Transition], ConversationState, Option<AgentId>)] = &[
            (false, &[], Queued, None),
            (true, &[], Bot, None),
            (true, &[HandOver], Queued, None),
            (true, &[Resolve], Resolved, None),
            (false, &[Assign(A)], Assigned, Some(A)),
            (false, &[Assign(A), Transfer(B)], Assigned, Some(B)),
            (false, &[Assign(A), Requeue], Queued, None),
            (false, &[Assign(A), Requeue, Assign(B)], Assigned, Some(B)),
            (false, &[Assign(A), Resolve], Resolved, Some(A)),
            (false, &[Assign(A), Resolve, Reopen], Queued, None),
            (false, &[Assign(A), Resolve, Close], Closed, Some(A)),
            (false, &[Close], Closed, None),
            (true, &[Close], Closed, None),
        ];
        for (bot, steps, state, assignee) in table {
            assert_eq!(check(*bot, steps), Ok((*state, *assignee)), "{steps:?}");
        }
    }

    #[test]
    fn illegal_transitions_are_refused_with_the_state_they_met() {
        use Transition::*;
        let table: &[(bool, &[Transition], ConversationState)] = &[
            (true, &[Assign(A)], Bot),
            (false, &[HandOver], Queued),
            (false, &[Transfer(A)], Queued),
            (false, &[Requeue], Queued),
            (false, &[Reopen], Queued),
            (false, &[Assign(A), Assign(B)], Assigned),
            (false, &[Assign(A), Transfer(A)], Assigned),
            (false, &[Assign(A), Resolve, Resolve], Resolved),
            (false, &[Assign(A), Resolve, Assign(B)], Resolved),
            (false, &[Close, Reopen], Closed),
            (false, &[Close, Close], Closed),
        ];
        for (bot, steps, from) in table {
            let err = check(*bot, steps).unwrap_err();
            assert_eq!(err.from, *from, "{steps:?}");
            assert_eq!(Some(&err.transition), steps.last(), "{steps:?}");
        }
    }

    #[test]
    fn transitions_stamp_their_times() {
        let life = Lifecycle::open(10, false);
        assert_eq!(life.queued_at, Some(10));
        let life = life.apply(Transition::Assign(A), 20).unwrap();
        assert_eq!((life.assigned_at, life.queued_at), (Some(20), Some(10)));
        let life = life.apply(Transition::Resolve, 30).unwrap();
        assert_eq!(life.resolved_at, Some(30));
        let life = life.apply(Transition::Reopen, 40).unwrap();
        assert_eq!(life.queued_at, Some(40));
        let life = life.apply(Transition::Close, 50).unwrap();
        assert_eq!(life.closed_at, Some(50));
        assert!(!life.is_open());
    }
}
