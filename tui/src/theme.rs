//! Colours, chosen by `theme` in `config.toml`.

use ratatui::style::{Color, Modifier, Style};

use crate::config::ThemeName;
use crate::text::MarkdownStyles;

/// Every style the views use.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    /// Ordinary text.
    pub body: Style,
    /// Hints, timestamps, borders of inactive panes.
    pub dim: Style,
    /// Borders and titles of the focused pane.
    pub focus: Style,
    /// The selected row of a list.
    pub selected: Style,
    /// Customer names.
    pub customer: Style,
    /// My name.
    pub me: Style,
    /// The VIP mark and waiting times that need attention.
    pub alert: Style,
    /// Good news: acked, online, connected.
    pub ok: Style,
    /// Something in progress: sending, connecting, away.
    pub pending: Style,
    /// The status bar.
    pub status_bar: Style,
    /// Private notes: their label, gutter and the composer while writing one.
    pub note: Style,
    /// Attachment names.
    pub link: Style,
    /// The bot: its name, the gutter of its messages, the intents it found.
    pub bot: Style,
    /// Markdown.
    pub markdown: MarkdownStyles,
}

impl Theme {
    /// The theme called `name`.
    pub fn named(name: ThemeName) -> Theme {
        match name {
            ThemeName::Dark => Theme::dark(),
            ThemeName::Light => Theme::light(),
            ThemeName::Mono => Theme::mono(),
        }
    }

    fn dark() -> Theme {
        Theme {
            body: Style::default(),
            dim: Style::default().fg(Color::DarkGray),
            focus: Style::default().fg(Color::Cyan),
            selected: Style::default().add_modifier(Modifier::REVERSED),
            customer: Style::default().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            me: Style::default().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            alert: Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            ok: Style::default().fg(Color::Green),
            pending: Style::default().fg(Color::Yellow),
            status_bar: Style::default().bg(Color::DarkGray).fg(Color::White),
            note: Style::default().fg(Color::LightMagenta).add_modifier(Modifier::BOLD),
            link: Style::default().fg(Color::Blue).add_modifier(Modifier::UNDERLINED),
            bot: Style::default().fg(Color::LightBlue),
            markdown: MarkdownStyles {
                code: Style::default().fg(Color::Magenta),
                dim: Style::default().fg(Color::DarkGray),
                heading: Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            },
        }
    }

    fn light() -> Theme {
        Theme {
            dim: Style::default().fg(Color::Gray),
            focus: Style::default().fg(Color::Blue),
            customer: Style::default().fg(Color::Magenta).add_modifier(Modifier::BOLD),
            me: Style::default().fg(Color::Blue).add_modifier(Modifier::BOLD),
            status_bar: Style::default().bg(Color::Gray).fg(Color::Black),
            note: Style::default().fg(Color::Magenta).add_modifier(Modifier::BOLD),
            bot: Style::default().fg(Color::Blue),
            ..Theme::dark()
        }
    }

    fn mono() -> Theme {
        let plain = Style::default();
        let bold = plain.add_modifier(Modifier::BOLD);
        Theme {
            body: plain,
            dim: plain,
            focus: bold,
            selected: plain.add_modifier(Modifier::REVERSED),
            customer: bold,
            me: bold,
            alert: bold,
            ok: plain,
            pending: plain,
            status_bar: plain.add_modifier(Modifier::REVERSED),
            note: bold,
            link: plain.add_modifier(Modifier::UNDERLINED),
            bot: plain.add_modifier(Modifier::ITALIC),
            markdown: MarkdownStyles { code: plain, dim: plain, heading: bold },
        }
    }
}

impl Default for Theme {
    fn default() -> Self {
        Theme::dark()
    }
}
