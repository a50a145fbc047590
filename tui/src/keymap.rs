//! Key bindings as data: `keymaps/*.toml` map mode → key sequence → command name.
//!
//! The files are parsed into one trie per [`Mode`]; [`Keymap::lookup`] is pure and says
//! whether the keys typed so far are a prefix ([`Lookup::Pending`]), a binding
//! ([`Lookup::Matched`]), nothing ([`Lookup::NotFound`]), or an abandoned sequence
//! ([`Lookup::Cancelled`]). The shipped files are embedded with `include_str!`; a user's
//! file is merged over them. A bad entry is an error naming the mode, the key and the
//! action, so a typo never silently loses a binding.
//!
//! Key notation (as in helix): `a`, `G`, `?`, `C-p` (Ctrl), `A-1` (Alt), `S-tab`
//! (Shift), `C-A-x`; named keys `enter`, `esc`, `tab`, `backspace`, `del`, `up`, `down`,
//! `left`, `right`, `home`, `end`, `pageup`, `pagedown`, `space`, `f1`…`f12`. A sequence
//! is keys separated by spaces: `g g`. The action `none` removes a default binding.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::command::Command;
use crate::error::{Error, Result};

/// The default bindings, compiled in.
pub const DEFAULT_KEYMAP: &str = include_str!("../../keymaps/default.toml");
/// Vim-style bindings, compiled in.
pub const VIM_KEYMAP: &str = include_str!("../../keymaps/vim.toml");

/// Where the keyboard goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// Moving between conversations and tabs, scrolling, acting on a conversation.
    Normal,
    /// Writing in the composer; keys not bound here are typed.
    Insert,
    /// The palette, help or a prompt is open; keys not bound here are typed into it.
    Overlay,
    /// The knowledge base's article editor is open; keys not bound here are typed into
    /// its focused field.
    Editor,
    /// The keyboard is in the supervisor pane: its tables and the actions on the selected
    /// agent or conversation. Keys not bound here do nothing.
    Supervisor,
}

impl Mode {
    /// Every mode, in the order help shows them.
    pub const ALL: [Mode; 5] = [Mode::Normal, Mode::Insert, Mode::Overlay, Mode::Editor, Mode::Supervisor];

    /// The table name in key files.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Insert => "insert",
            Mode::Overlay => "overlay",
            Mode::Editor => "editor",
            Mode::Supervisor => "supervisor",
        }
    }

    fn from_name(name: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// A key without its modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyCode {
    /// A printable character (its case carries Shift).
    Char(char),
    /// Enter / Return.
    Enter,
    /// Escape.
    Esc,
    /// Tab.
    Tab,
    /// Backspace.
    Backspace,
    /// Delete.
    Delete,
    /// Arrow up.
    Up,
    /// Arrow down.
    Down,
    /// Arrow left.
    Left,
    /// Arrow right.
    Right,
    /// Home.
    Home,
    /// End.
    End,
    /// Page up.
    PageUp,
    /// Page down.
    PageDown,
    /// A function key.
    F(u8),
}

/// One key press: a key and its modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyPress {
    /// The key.
    pub code: KeyCode,
    /// Ctrl was held.
    pub ctrl: bool,
    /// Alt (Meta) was held.
    pub alt: bool,
    /// Shift was held (only recorded for non-character keys).
    pub shift: bool,
}

impl KeyPress {
    /// A key with no modifiers.
    pub const fn plain(code: KeyCode) -> Self {
        KeyPress { code, ctrl: false, alt: false, shift: false }
    }

    /// A character key with no modifiers.
    pub const fn char(c: char) -> Self {
        Self::plain(KeyCode::Char(c))
    }

    /// Ctrl + a character.
    pub const fn ctrl(c: char) -> Self {
        KeyPress { code: KeyCode::Char(c), ctrl: true, alt: false, shift: false }
    }

    /// Parses one key in the notation of the module docs.
    pub fn parse(text: &str) -> Result<KeyPress, String> {
        let mut rest = text;
        let mut key = KeyPress::plain(KeyCode::Esc);
        loop {
            // A modifier is a single letter and a dash, followed by more.
            match rest.as_bytes() {
                [b'C', b'-', _, ..] => key.ctrl = true,
                [b'A', b'-', _, ..] => key.alt = true,
                [b'S', b'-', _, ..] => key.shift = true,
                _ => break,
            }
            rest = &rest[2..];
        }
        let mut chars = rest.chars();
        key.code = match (chars.next(), chars.next()) {
            (Some(c), None) if !c.is_control() && c != ' ' => KeyCode::Char(c),
            _ => match rest {
                "enter" | "ret" => KeyCode::Enter,
                "esc" => KeyCode::Esc,
                "tab" => KeyCode::Tab,
                "backspace" => KeyCode::Backspace,
                "del" => KeyCode::Delete,
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "pageup" => KeyCode::PageUp,
                "pagedown" => KeyCode::PageDown,
                "space" => KeyCode::Char(' '),
                f if f.len() >= 2 && f.starts_with('f') => match f[1..].parse::<u8>() {
                    Ok(n @ 1..=12) => KeyCode::F(n),
                    _ => return Err(format!("unknown key \"{text}\"")),
                },
                _ => return Err(format!("unknown key \"{text}\"")),
            },
        };
        if key.shift && matches!(key.code, KeyCode::Char(_)) {
            return Err(format!("\"{text}\": write the shifted character itself (e.g. \"G\"), not S-"));
        }
        Ok(key)
    }
}

impl fmt::Display for KeyPress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("C-")?;
        }
        if self.alt {
            f.write_str("A-")?;
        }
        if self.shift {
            f.write_str("S-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("enter"),
            KeyCode::Esc => f.write_str("esc"),
            KeyCode::Tab => f.write_str("tab"),
            KeyCode::Backspace => f.write_str("backspace"),
            KeyCode::Delete => f.write_str("del"),
            KeyCode::Up => f.write_str("up"),
            KeyCode::Down => f.write_str("down"),
            KeyCode::Left => f.write_str("left"),
            KeyCode::Right => f.write_str("right"),
            KeyCode::Home => f.write_str("home"),
            KeyCode::End => f.write_str("end"),
            KeyCode::PageUp => f.write_str("pageup"),
            KeyCode::PageDown => f.write_str("pagedown"),
            KeyCode::F(n) => write!(f, "f{n}"),
        }
    }
}

/// Parses a space-separated key sequence (`"g g"`).
pub fn parse_sequence(text: &str) -> Result<Vec<KeyPress>, String> {
    let keys: Vec<KeyPress> =
        text.split(' ').filter(|s| !s.is_empty()).map(KeyPress::parse).collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err("empty key".into());
    }
    Ok(keys)
}

/// Formats a key sequence in the file notation.
pub fn format_sequence(keys: &[KeyPress]) -> String {
    keys.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
}

/// What the keys typed so far mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A prefix of a longer binding: wait for the next key.
    Pending,
    /// A binding.
    Matched(Command),
    /// A single key bound to nothing.
    NotFound,
    /// A sequence was started and then left: these keys mean nothing together.
    Cancelled(Vec<KeyPress>),
}

/// One node of a mode's trie.
#[derive(Debug, Clone)]
enum Node {
    /// A complete binding.
    Leaf(Command),
    /// Keys that continue a sequence.
    Branch(HashMap<KeyPress, Node>),
}

/// The bindings of every mode.
#[derive(Debug, Clone)]
pub struct Keymap {
    /// One trie per mode; the root is always a branch.
    modes: HashMap<Mode, HashMap<KeyPress, Node>>,
}

impl Keymap {
    /// The shipped default bindings.
    pub fn default_bindings() -> Keymap {
        Keymap::empty().merged("default", DEFAULT_KEYMAP).expect("the shipped default keymap parses (tested)")
    }

    /// The base map by name: `default` or `vim` (vim is merged over default).
    pub fn shipped(name: &str) -> Result<Keymap> {
        match name {
            "default" => Ok(Keymap::default_bindings()),
            "vim" => Keymap::default_bindings().merged("vim", VIM_KEYMAP),
            other => Err(Error::Keymap {
                source_name: other.into(),
                message: format!("no shipped key map named \"{other}\" (expected default or vim)"),
            }),
        }
    }

    /// A map with no bindings.
    pub fn empty() -> Keymap {
        Keymap { modes: HashMap::new() }
    }

    /// This map with the bindings of `text` (TOML) merged over it: a key bound in the file
    /// replaces the same key here. `source_name` names the file in errors.
    pub fn merged(mut self, source_name: &str, text: &str) -> Result<Keymap> {
        let err = |message: String| Error::Keymap { source_name: source_name.into(), message };
        let file: BTreeMap<String, BTreeMap<String, String>> =
            toml::from_str(text).map_err(|e| err(format!("not a key map (mode → key → action): {e}")))?;
        for (mode_name, bindings) in &file {
            let mode = Mode::from_name(mode_name).ok_or_else(|| {
                err(format!("[{mode_name}]: unknown mode (expected normal, insert, overlay, editor or supervisor)"))
            })?;
            // Sequences bound in this file, to catch a key that is both bound and a prefix.
            let mut in_file: Vec<Vec<KeyPress>> = Vec::new();
            for (key_text, action) in bindings {
                let keys = parse_sequence(key_text).map_err(|e| err(format!("[{mode_name}] \"{key_text}\": {e}")))?;
                if let Some(other) = in_file.iter().find(|o| o.starts_with(&keys) || keys.starts_with(o)) {
                    return Err(err(format!(
                        "[{mode_name}] \"{key_text}\" conflicts with \"{}\": one is a prefix of the other",
                        format_sequence(other)
                    )));
                }
                in_file.push(keys.clone());
                let root = self.modes.entry(mode).or_default();
                if action == "none" {
                    remove(root, &keys);
                    continue;
                }
                let command = Command::from_name(action)
                    .ok_or_else(|| err(format!("[{mode_name}] \"{key_text}\" = \"{action}\": unknown action")))?;
                insert(root, &keys, command);
            }
        }
        Ok(self)
    }

    /// What `keys` (typed in `mode`, oldest first) mean.
    pub fn lookup(&self, mode: Mode, keys: &[KeyPress]) -> Lookup {
        let Some(mut branch) = self.modes.get(&mode) else {
            return if keys.len() > 1 { Lookup::Cancelled(keys.to_vec()) } else { Lookup::NotFound };
        };
        for (i, key) in keys.iter().enumerate() {
            match branch.get(key) {
                Some(Node::Leaf(command)) if i + 1 == keys.len() => return Lookup::Matched(*command),
                Some(Node::Branch(next)) => branch = next,
                _ => break,
            }
            if i + 1 == keys.len() {
                return Lookup::Pending;
            }
        }
        if keys.len() > 1 { Lookup::Cancelled(keys.to_vec()) } else { Lookup::NotFound }
    }

    /// Every binding of `mode` as (keys in file notation, command), sorted by keys.
    pub fn bindings(&self, mode: Mode) -> Vec<(String, Command)> {
        fn walk(branch: &HashMap<KeyPress, Node>, prefix: &mut Vec<KeyPress>, out: &mut Vec<(String, Command)>) {
            for (key, node) in branch {
                prefix.push(*key);
                match node {
                    Node::Leaf(command) => out.push((format_sequence(prefix), *command)),
                    Node::Branch(next) => walk(next, prefix, out),
                }
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        if let Some(root) = self.modes.get(&mode) {
            walk(root, &mut Vec::new(), &mut out);
        }
        out.sort();
        out
    }

    /// The keys bound to `command` in `mode`, for hints in the palette and status bar.
    pub fn keys_for(&self, mode: Mode, command: Command) -> Vec<String> {
        self.bindings(mode).into_iter().filter(|(_, c)| *c == command).map(|(k, _)| k).collect()
    }
}

fn insert(branch: &mut HashMap<KeyPress, Node>, keys: &[KeyPress], command: Command) {
    let (first, rest) = keys.split_first().expect("sequences are never empty");
    if rest.is_empty() {
        branch.insert(*first, Node::Leaf(command));
        return;
    }
    let node = branch.entry(*first).or_insert_with(|| Node::Branch(HashMap::new()));
    if let Node::Leaf(_) = node {
        // A longer binding replaces a shorter one it extends (a user file overriding).
        *node = Node::Branch(HashMap::new());
    }
    if let Node::Branch(next) = node {
        insert(next, rest, command);
    }
}

fn remove(branch: &mut HashMap<KeyPress, Node>, keys: &[KeyPress]) {
    let Some((first, rest)) = keys.split_first() else { return };
    if rest.is_empty() {
        branch.remove(first);
    } else if let Some(Node::Branch(next)) = branch.get_mut(first) {
        remove(next, rest);
        if next.is_empty() {
            branch.remove(first);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<KeyPress> {
        parse_sequence(text).unwrap()
    }

    #[test]
    fn every_shipped_keymap_parses_and_binds_the_essentials() {
        for name in ["default", "vim"] {
            let map = Keymap::shipped(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            for essential in [Command::Quit, Command::Help, Command::Palette, Command::Send, Command::Compose] {
                let bound = Mode::ALL.iter().any(|&m| !map.keys_for(m, essential).is_empty());
                assert!(bound, "{name} binds nothing to {}", essential.name());
            }
            assert!(!map.keys_for(Mode::Overlay, Command::Cancel).is_empty(), "{name}: overlays must close");
            assert!(!map.keys_for(Mode::Editor, Command::Cancel).is_empty(), "{name}: the editor must close");
            // Writing the knowledge base, supervising, the report, revealing masked data and
            // the audit log are reachable by key in every shipped map.
            for (mode, command) in [
                (Mode::Normal, Command::Supervisor),
                (Mode::Normal, Command::Report),
                (Mode::Normal, Command::RevealMaskedData),
                (Mode::Normal, Command::AuditLog),
                (Mode::Overlay, Command::AuditRefresh),
                (Mode::Supervisor, Command::SupervisorFocus),
                (Mode::Supervisor, Command::Supervisor),
                (Mode::Supervisor, Command::SelectNext),
                (Mode::Supervisor, Command::MonitorNextSection),
                (Mode::Supervisor, Command::Observe),
                (Mode::Supervisor, Command::TakeOver),
                (Mode::Supervisor, Command::Transfer),
                (Mode::Supervisor, Command::AgentCapacity),
                (Mode::Supervisor, Command::AgentPresence),
                (Mode::Overlay, Command::ReportNextRange),
                (Mode::Overlay, Command::ReportExport),
                (Mode::Overlay, Command::KbNewArticle),
                (Mode::Overlay, Command::KbEditArticle),
                (Mode::Overlay, Command::KbDeleteArticle),
                (Mode::Editor, Command::KbSaveArticle),
                (Mode::Editor, Command::NextField),
                (Mode::Editor, Command::PrevField),
            ] {
                assert!(!map.keys_for(mode, command).is_empty(), "{name} binds nothing to {}", command.name());
            }
        }
        // The files on disk are the ones compiled in; check each parses on its own too.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../keymaps");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                Keymap::empty().merged(&path.display().to_string(), &text).unwrap();
                seen += 1;
            }
        }
        assert!(seen >= 2, "keymaps/ should hold default.toml and vim.toml");
    }

    #[test]
    fn key_notation_round_trips() {
        for text in ["a", "G", "?", ":", "C-p", "A-1", "S-tab", "C-A-x", "enter", "esc", "space", "f5", "pagedown"] {
            let key = KeyPress::parse(text).unwrap();
            assert_eq!(key.to_string(), text);
        }
        assert_eq!(KeyPress::parse("ret").unwrap(), KeyPress::plain(KeyCode::Enter));
    }

    #[test]
    fn malformed_keys_are_refused_by_name() {
        for text in ["", "ctrl-p", "C-", "f13", "S-g", "hello"] {
            assert!(parse_sequence(text).is_err(), "{text:?} should be refused");
        }
    }

    #[test]
    fn lookup_walks_the_trie() {
        let map = Keymap::empty()
            .merged("t", "[normal]\n\"g g\" = \"scroll_top\"\n\"G\" = \"scroll_bottom\"\n\"C-p\" = \"palette\"\n")
            .unwrap();
        let n = Mode::Normal;
        assert_eq!(map.lookup(n, &keys("g")), Lookup::Pending);
        assert_eq!(map.lookup(n, &keys("g g")), Lookup::Matched(Command::ScrollTop));
        assert_eq!(map.lookup(n, &keys("G")), Lookup::Matched(Command::ScrollBottom));
        assert_eq!(map.lookup(n, &keys("C-p")), Lookup::Matched(Command::Palette));
        assert_eq!(map.lookup(n, &keys("x")), Lookup::NotFound);
        assert_eq!(map.lookup(n, &keys("g x")), Lookup::Cancelled(keys("g x")));
        assert_eq!(map.lookup(Mode::Insert, &keys("g")), Lookup::NotFound);
    }

    #[test]
    fn a_user_file_merges_over_the_defaults() {
        let base = Keymap::default_bindings();
        let quit_keys = base.keys_for(Mode::Normal, Command::Quit);
        assert!(!quit_keys.is_empty());
        let user = format!("[normal]\n\"{}\" = \"none\"\n\"Q\" = \"quit\"\n", quit_keys[0]);
        let merged = base.clone().merged("user.toml", &user).unwrap();
        assert_eq!(merged.lookup(Mode::Normal, &keys("Q")), Lookup::Matched(Command::Quit));
        assert_ne!(merged.lookup(Mode::Normal, &keys(&quit_keys[0])), Lookup::Matched(Command::Quit));
        // Everything else is still there.
        assert_eq!(merged.keys_for(Mode::Normal, Command::Help), base.keys_for(Mode::Normal, Command::Help));
    }

    #[test]
    fn bad_entries_are_rejected_naming_the_entry() {
        let check = |text: &str, needles: &[&str]| {
            let err = Keymap::default_bindings().merged("user.toml", text).unwrap_err().to_string();
            for needle in needles {
                assert!(err.contains(needle), "{err:?} should mention {needle:?}");
            }
        };
        check("[normal]\n\"x\" = \"teleport\"\n", &["user.toml", "[normal]", "\"x\"", "teleport", "unknown action"]);
        check("[normal]\n\"ctrl-x\" = \"quit\"\n", &["user.toml", "ctrl-x", "unknown key"]);
        check("[sideways]\n\"x\" = \"quit\"\n", &["[sideways]", "unknown mode"]);
        check("[normal]\n\"g\" = \"quit\"\n\"g g\" = \"help\"\n", &["\"g g\"", "prefix"]);
        check("normal = 3\n", &["user.toml"]);
    }
}
