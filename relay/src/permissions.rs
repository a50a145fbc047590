//! Who may do what: the one table of what each staff role may do, and the one check every
//! HTTP handler and WebSocket frame goes through. `docs/security.md` prints the same table;
//! a test keeps the two equal, and an end-to-end test walks it against the real relay.
//!
//! What every signed-in agent may do (serve the conversations routed to them, read the
//! knowledge base, tickets, their own canned replies, …) needs no entry: an entry is a
//! permission some role lacks. Customers never hold a staff token; their side of the
//! protocol is separate (`/ws/customer`, customer tokens).

use kefu_proto::frame::Role;
use kefu_proto::{ErrorCode, ProtocolError};

/// Something only some roles may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Add, edit or remove shared canned replies.
    ManageSharedCanned,
    /// Write knowledge-base articles.
    WriteKnowledgeBase,
    /// Read the reports.
    ReadReports,
    /// Change an agent's capacity or presence.
    ChangeAgentLoad,
    /// Change an agent's skills.
    ChangeAgentSkills,
    /// Create or remove skill groups.
    ManageGroups,
    /// Mark contacts VIP.
    MarkVip,
    /// Merge contacts.
    MergeContacts,
    /// List and read channels, their deliveries and dead letters; retry deliveries.
    ReadChannels,
    /// Add and change channels (secrets, webhooks).
    ManageChannels,
    /// Read the event log.
    ReadEventLog,
    /// The live monitor, observing and whispering, taking over, reassigning conversations
    /// one does not hold.
    Supervise,
}

/// Every permission: what it is called in errors, and the roles that have it.
pub const MATRIX: &[(Permission, &str, &[Role])] = &[
    (Permission::ManageSharedCanned, "managing shared canned replies", &[Role::Supervisor, Role::Admin]),
    (Permission::WriteKnowledgeBase, "writing the knowledge base", &[Role::Supervisor, Role::Admin]),
    (Permission::ReadReports, "reading reports", &[Role::Supervisor, Role::Admin]),
    (Permission::ChangeAgentLoad, "changing an agent's capacity or presence", &[Role::Supervisor, Role::Admin]),
    (Permission::ChangeAgentSkills, "changing skills", &[Role::Admin]),
    (Permission::ManageGroups, "managing groups", &[Role::Admin]),
    (Permission::MarkVip, "marking VIPs", &[Role::Supervisor, Role::Admin]),
    (Permission::MergeContacts, "merging contacts", &[Role::Supervisor, Role::Admin]),
    (Permission::ReadChannels, "reading channels", &[Role::Supervisor, Role::Admin]),
    (Permission::ManageChannels, "managing channels", &[Role::Admin]),
    (Permission::ReadEventLog, "reading the event log", &[Role::Admin]),
    (Permission::Supervise, "supervising", &[Role::Supervisor, Role::Admin]),
];

fn entry(permission: Permission) -> &'static (Permission, &'static str, &'static [Role]) {
    MATRIX.iter().find(|(p, _, _)| *p == permission).expect("every permission is in the matrix")
}

/// Whether `role` has `permission`.
pub fn allows(role: Role, permission: Permission) -> bool {
    entry(permission).2.contains(&role)
}

/// `Ok` when `role` has `permission`; else `forbidden`, naming what and who may.
pub fn check(role: Role, permission: Permission) -> Result<(), ProtocolError> {
    let (_, what, roles) = entry(permission);
    if roles.contains(&role) {
        return Ok(());
    }
    let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    Err(ProtocolError::new(ErrorCode::Forbidden, format!("{what} needs the role {}", allowed.join(" or "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table in `docs/security.md` §2, as (what, agent, supervisor, admin) rows.
    fn documented() -> Vec<(String, [bool; 3])> {
        let doc = include_str!("../../docs/security.md");
        let section = doc.split("<!-- matrix -->").nth(1).expect("docs/security.md marks its matrix");
        section
            .lines()
            .filter(|l| l.starts_with('|') && !l.contains("---") && !l.contains("Permission"))
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                let yes = |cell: &str| cell == "yes";
                (cells[0].trim_matches('`').to_string(), [yes(cells[2]), yes(cells[3]), yes(cells[4])])
            })
            .collect()
    }

    #[test]
    fn the_documented_matrix_is_the_enforced_one() {
        let enforced: Vec<(String, [bool; 3])> = MATRIX
            .iter()
            .map(|(p, _, _)| {
                let roles = [Role::Agent, Role::Supervisor, Role::Admin].map(|r| allows(r, *p));
                (format!("{p:?}"), roles)
            })
            .collect();
        assert_eq!(documented(), enforced);
    }

    #[test]
    fn refusals_say_who_may() {
        assert!(check(Role::Admin, Permission::ReadEventLog).is_ok());
        let refused = check(Role::Supervisor, Permission::ReadEventLog).unwrap_err();
        assert_eq!(refused.code, ErrorCode::Forbidden);
        assert_eq!(refused.message, "reading the event log needs the role admin");
        let refused = check(Role::Agent, Permission::Supervise).unwrap_err();
        assert_eq!(refused.message, "supervising needs the role supervisor or admin");
    }
}
