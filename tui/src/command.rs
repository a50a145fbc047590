//! The named commands a key can be bound to. Each carries its own doc string, so the key
//! files, the help overlay and the command palette share one vocabulary.

/// Defines [`Command`] with its wire name and doc string in one table.
macro_rules! commands {
    ($($variant:ident => $name:literal, $doc:literal;)+) => {
        /// Something the agent can ask for by key or from the palette.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Command {
            $(#[doc = $doc] $variant,)+
        }

        impl Command {
            /// Every command, in the order help lists them.
            pub const ALL: &'static [Command] = &[$(Command::$variant,)+];

            /// The name used in key files and the palette.
            pub fn name(self) -> &'static str {
                match self { $(Command::$variant => $name,)+ }
            }

            /// What the command does, for people (help and palette).
            pub fn doc(self) -> &'static str {
                match self { $(Command::$variant => $doc,)+ }
            }

            /// The command with this name.
            pub fn from_name(name: &str) -> Option<Command> {
                match name { $($name => Some(Command::$variant),)+ _ => None }
            }
        }
    };
}

commands! {
    Quit => "quit", "Quit kefu (drafts and unsent messages are lost)";
    Help => "help", "Show every key binding and what it does";
    Palette => "palette", "Open the command palette: find any action by name";
    Compose => "compose", "Write in the composer of the current conversation";
    NormalMode => "normal_mode", "Leave the composer (the draft is kept)";
    Send => "send", "Send the composer's text to the customer";
    Newline => "newline", "Start a new line in the composer";
    ToggleMarkdown => "toggle_markdown", "Send what you write as Markdown or as plain text";
    NextConversation => "next_conversation", "Select the next conversation in the list";
    PrevConversation => "prev_conversation", "Select the previous conversation in the list";
    OpenConversation => "open_conversation", "Open the selected conversation in a tab";
    NextTab => "next_tab", "Go to the next tab";
    PrevTab => "prev_tab", "Go to the previous tab";
    Tab1 => "tab_1", "Go to tab 1";
    Tab2 => "tab_2", "Go to tab 2";
    Tab3 => "tab_3", "Go to tab 3";
    Tab4 => "tab_4", "Go to tab 4";
    Tab5 => "tab_5", "Go to tab 5";
    Tab6 => "tab_6", "Go to tab 6";
    Tab7 => "tab_7", "Go to tab 7";
    Tab8 => "tab_8", "Go to tab 8";
    Tab9 => "tab_9", "Go to tab 9";
    CloseTab => "close_tab", "Close the current tab (the conversation stays in your list)";
    ScrollUp => "scroll_up", "Scroll the conversation up one line";
    ScrollDown => "scroll_down", "Scroll the conversation down one line";
    PageUp => "page_up", "Scroll the conversation up one page";
    PageDown => "page_down", "Scroll the conversation down one page";
    ScrollTop => "scroll_top", "Jump to the first message of the conversation";
    ScrollBottom => "scroll_bottom", "Jump to the latest message and follow new ones";
    TogglePresence => "toggle_presence", "Switch between online (take new conversations) and away";
    Resolve => "resolve", "Resolve the current conversation with a resolution code";
    CloseConversation => "close_conversation", "Close the current conversation for good, with a resolution code";
    Transfer => "transfer", "Transfer the current conversation (in the supervisor pane: the selected one) to an agent or a group, with a note for them";
    ToggleNote => "toggle_note", "Switch the composer between a reply to the customer and a private note for agents";
    QueueNext => "queue_next", "Select the next conversation waiting in the queue";
    QueuePrev => "queue_prev", "Select the previous conversation waiting in the queue";
    Pick => "pick", "Take the selected waiting conversation from the queue";
    Canned => "canned", "Find a canned reply (shared or yours) and insert it into the composer";
    ExpandCanned => "expand_canned", "Expand the /shortcut typed in the composer into its canned reply";
    NewCanned => "new_canned", "Save the composer's text as a personal canned reply";
    DeleteCanned => "delete_canned", "In the canned-reply picker: delete the selected reply of yours";
    CustomerPanel => "customer_panel", "Show or hide the customer panel: contact, earlier conversations, why routed here";
    LoadHistory => "load_history", "Fetch older messages of the current conversation";
    AttachFile => "attach_file", "Send a file into the current conversation: asks for its path, uploads and sends it";
    RevealMaskedData => "reveal_masked_data", "Show the personal data masked in the current conversation (phone, ID-card and bank-card numbers, e-mails), after a confirmation: the relay records the reveal in the audit log";
    Knowledge => "knowledge", "Search the knowledge base (Chinese or English) and insert an answer into the composer";
    KbInsertSnippet => "kb_insert_snippet", "In the knowledge base: insert the selected result's matching line into the composer";
    KbInsertArticle => "kb_insert_article", "In the knowledge base: insert the selected article's whole text (Markdown) into the composer";
    KbInsertLink => "kb_insert_link", "In the knowledge base: insert a short reference, \"title (kb:slug)\", into the composer";
    KbNewArticle => "kb_new_article", "In the knowledge base: write a new article (supervisors and admins)";
    KbEditArticle => "kb_edit_article", "In the knowledge base: change the selected article's title, tags, intents, language or text (supervisors and admins)";
    KbDeleteArticle => "kb_delete_article", "In the knowledge base: delete the selected article, after a confirmation naming it (supervisors and admins)";
    KbSaveArticle => "kb_save_article", "In the article editor: save the article to the knowledge base";
    NextField => "next_field", "In the article editor: go to the next field (title, tags, intents, language, text)";
    PrevField => "prev_field", "In the article editor: go to the previous field";
    Tickets => "tickets", "Show tickets (mine, or all open ones) with their notes and history";
    TicketScope => "ticket_scope", "In the tickets view: switch between my tickets and all open tickets";
    TicketStatus => "ticket_status", "In the tickets view: change the selected ticket's status (open, pending, solved, closed)";
    TicketNote => "ticket_note", "In the tickets view: add a note to the selected ticket";
    NewTicket => "new_ticket", "Make a ticket from the current conversation (the subject starts as the customer's last message)";
    Supervisor => "supervisor", "Open or close the supervisor pane beside your work: queues, agents and alerts, live (supervisors and admins)";
    SupervisorFocus => "supervisor_focus", "Move the keyboard between your own conversations and the supervisor pane";
    MonitorNextSection => "monitor_next_section", "In the supervisor pane: go to the next table (queues, agents, the agent's conversations, alerts)";
    MonitorPrevSection => "monitor_prev_section", "In the supervisor pane: go to the previous table";
    Observe => "observe", "In the supervisor pane: open the selected conversation read-only in a tab, where you can whisper private notes";
    TakeOver => "take_over", "Take over the conversation selected in the supervisor pane (or the one you observe): it becomes yours";
    AgentCapacity => "agent_capacity", "In the supervisor pane: change the selected agent's capacity (conversations at once)";
    AgentPresence => "agent_presence", "In the supervisor pane: set the selected agent away, or back online";
    Report => "report", "Show the service report of today, 7 or 30 days: figures, charts, agents, CSV export (supervisors and admins)";
    ReportNextRange => "report_next_range", "In the report: show the next range (today → 7 days → 30 days)";
    ReportPrevRange => "report_prev_range", "In the report: show the previous range";
    ReportExport => "report_export", "In the report: save it as CSV in the current directory (kefu-report-RANGE-DATE.csv)";
    AuditLog => "audit_log", "Show the audit log: the workspace's newest events, who did what and when; type a kind prefix (alert., pii.) to filter (admins)";
    AuditRefresh => "audit_refresh", "In the audit log: fetch the events that happened since";
    SelectNext => "select_next", "In a list or palette: select the next entry";
    SelectPrev => "select_prev", "In a list or palette: select the previous entry";
    Accept => "accept", "In the palette or a prompt: run or confirm the selection (knowledge base: insert the snippet; tickets: go to its conversation)";
    Cancel => "cancel", "Close the palette, help or prompt (the article editor asks first when there are unsaved changes)";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &command in Command::ALL {
            assert_eq!(Command::from_name(command.name()), Some(command));
            assert!(seen.insert(command.name()), "duplicate name {}", command.name());
            assert!(!command.doc().is_empty());
        }
        assert_eq!(Command::from_name("teleport"), None);
    }
}
