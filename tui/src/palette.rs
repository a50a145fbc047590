//! The command palette's matching: every command, fuzzy-found by name or description
//! with helix's matcher (nucleo), best first. [`rank`] does the same for any list (canned
//! replies, transfer targets).

use nucleo_matcher::pattern::{CaseMatching, Normalization, Pattern};
use nucleo_matcher::{Config, Matcher, Utf32Str};

use crate::command::Command;
use crate::keymap::{Keymap, Mode};

/// One line of the palette.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaletteEntry {
    /// The command.
    pub command: Command,
    /// Its keys in normal mode (or insert mode if none), for learning them. Keys of the
    /// supervisor pane are not shown: there they mean something else than in normal mode.
    pub keys: Vec<String>,
}

/// The commands matching `query`, best first; all of them (in help order) when empty.
pub fn matches(keymap: &Keymap, query: &str) -> Vec<PaletteEntry> {
    let entry = |command: Command| {
        let mut keys = keymap.keys_for(Mode::Normal, command);
        if keys.is_empty() {
            keys = keymap.keys_for(Mode::Insert, command);
        }
        PaletteEntry { command, keys }
    };
    // Overlay-, editor- and pane-navigation commands make no sense from the palette
    // itself.
    let runnable = Command::ALL.iter().copied().filter(|c| {
        !matches!(
            c,
            Command::SelectNext
                | Command::SelectPrev
                | Command::Accept
                | Command::Cancel
                | Command::Palette
                | Command::DeleteCanned
                | Command::KbSaveArticle
                | Command::NextField
                | Command::PrevField
                | Command::MonitorNextSection
                | Command::MonitorPrevSection
                | Command::ReportNextRange
                | Command::ReportPrevRange
                | Command::ReportExport
                | Command::AuditRefresh
        )
    });
    if query.trim().is_empty() {
        return runnable.map(entry).collect();
    }
    let mut matcher = Matcher::new(Config::DEFAULT);
    let pattern = Pattern::parse(query, CaseMatching::Ignore, Normalization::Smart);
    let mut buf = Vec::new();
    let mut scored: Vec<(u32, Command)> = runnable
        .filter_map(|command| {
            let haystack = format!("{} {}", command.name().replace('_', " "), command.doc());
            pattern.score(Utf32Str::new(&haystack, &mut buf), &mut matcher).map(|score| (score, command))
        })
        .collect();
    // Best score first; ties keep help order (a stable sort).
    scored.sort_by_key(|(score, _)| std::cmp::Reverse(*score));
    scored.into_iter().map(|(_, c)| entry(c)).collect()
}

/// Indices of the `haystacks` matching `query` (nucleo, case-insensitive), best first;
/// ties keep the given order. All of them, in order, when the query is empty.
pub fn rank(query: &str, haystacks: impl IntoIterator<Item = String>) -> Vec<usize> {
    let haystacks: Vec<String> = haystacks.into_iter().collect();
    if query.trim().is_empty() {
        return (0..haystacks.len()).collect();
    }
    let mut matcher = Matcher::new(Config::DEFAULT);
    let pattern = Pattern::parse(query, CaseMatching::Ignore, Normalization::Smart);
    let mut buf = Vec::new();
    let mut scored: Vec<(u32, usize)> = haystacks
        .iter()
        .enumerate()
        .filter_map(|(i, h)| pattern.score(Utf32Str::new(h, &mut buf), &mut matcher).map(|score| (score, i)))
        .collect();
    scored.sort_by_key(|(score, _)| std::cmp::Reverse(*score));
    scored.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(query: &str) -> Option<Command> {
        matches(&Keymap::default_bindings(), query).first().map(|e| e.command)
    }

    #[test]
    fn finds_actions_by_fuzzy_name_or_description() {
        assert_eq!(first("resolve"), Some(Command::Resolve));
        assert_eq!(first("presnce"), Some(Command::TogglePresence));
        assert_eq!(first("away"), Some(Command::TogglePresence));
        assert_eq!(first("zzzzqqq"), None);
        let all = matches(&Keymap::default_bindings(), "");
        assert!(all.len() > 20 && !all.iter().any(|e| e.command == Command::Palette));
        assert!(all.iter().find(|e| e.command == Command::Help).unwrap().keys.contains(&"?".to_string()));
    }
}
