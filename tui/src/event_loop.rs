//! The terminal loop: the only code that knows crossterm. It takes terminal events as a
//! stream (so tests and scripts can feed keys), turns them into [`Action`]s, runs
//! [`App::update`], performs the effects, and draws.

use std::io;
use std::time::Duration;

use crossterm::event::{Event, KeyCode as CtKey, KeyEvent, KeyEventKind, KeyModifiers};
use futures_util::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::mpsc;

use crate::api::ApiClient;
use crate::app::{Action, App, Effect};
use crate::keymap::{KeyCode, KeyPress};
use crate::notify::{Alert, Notifications};
use crate::view;
use crate::worker::{WorkerHandle, now_ms};

/// Most actions from the worker handled between two drawings (catch-up of a long
/// history draws once, not once per message).
const ACTIONS_PER_FRAME: usize = 2_000;

/// A key from crossterm in the keymap's terms; `None` for keys kefu does not use.
pub fn key_press(event: KeyEvent) -> Option<KeyPress> {
    let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
    let alt = event.modifiers.contains(KeyModifiers::ALT);
    let mut shift = event.modifiers.contains(KeyModifiers::SHIFT);
    let code = match event.code {
        CtKey::Char(c) => {
            // The character already carries Shift ("G", "?").
            shift = false;
            KeyCode::Char(c)
        }
        CtKey::Enter => KeyCode::Enter,
        CtKey::Esc => KeyCode::Esc,
        CtKey::Tab => KeyCode::Tab,
        CtKey::BackTab => {
            shift = true;
            KeyCode::Tab
        }
        CtKey::Backspace => KeyCode::Backspace,
        CtKey::Delete => KeyCode::Delete,
        CtKey::Up => KeyCode::Up,
        CtKey::Down => KeyCode::Down,
        CtKey::Left => KeyCode::Left,
        CtKey::Right => KeyCode::Right,
        CtKey::Home => KeyCode::Home,
        CtKey::End => KeyCode::End,
        CtKey::PageUp => KeyCode::PageUp,
        CtKey::PageDown => KeyCode::PageDown,
        CtKey::F(n) => KeyCode::F(n),
        _ => return None,
    };
    Some(KeyPress { code, ctrl, alt, shift })
}

/// A terminal event as an action; `None` for events that only need a redraw.
pub fn translate(event: Event) -> Option<Action> {
    match event {
        Event::Key(key) if key.kind != KeyEventKind::Release => key_press(key).map(Action::Key),
        Event::Paste(text) => Some(Action::Paste(text)),
        _ => None,
    }
}

/// What the loop needs besides the app.
pub struct Shell<'a> {
    /// Reaches the network worker.
    pub worker: &'a WorkerHandle,
    /// Runs HTTP requests; answers arrive on `actions`.
    pub api: &'a ApiClient,
    /// Actions from the worker.
    pub actions: mpsc::UnboundedReceiver<Action>,
    /// Desktop notifications and the bell.
    pub notifications: &'a Notifications,
    /// Rings the terminal bell.
    pub bell: Box<dyn FnMut() + 'a>,
}

/// Runs until the agent quits or the event stream ends.
pub async fn run<B, S>(terminal: &mut Terminal<B>, app: &mut App, mut events: S, mut shell: Shell<'_>) -> io::Result<()>
where
    B: Backend,
    B::Error: Into<io::Error>,
    S: Stream<Item = io::Result<Event>> + Unpin,
{
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        terminal.draw(|frame| view::draw(frame, app)).map_err(Into::into)?;
        // The app may want time to pass sooner (a search waiting for the query to rest):
        // a tick then, carrying the time, and the app decides.
        let wake_in = app.wake_at().map(|at| Duration::from_millis((at - now_ms()).max(0) as u64));
        let action = tokio::select! {
            event = events.next() => match event {
                None => return Ok(()),
                Some(Err(e)) => return Err(e),
                Some(Ok(event)) => match translate(event) {
                    Some(action) => action,
                    None => continue,
                },
            },
            Some(action) = shell.actions.recv() => action,
            _ = tick.tick() => Action::Tick(now_ms()),
            _ = tokio::time::sleep(wake_in.unwrap_or_default()), if wake_in.is_some() => Action::Tick(now_ms()),
        };
        if perform(app, action, &mut shell) {
            return Ok(());
        }
        // Take what else the worker has ready before drawing again.
        for _ in 0..ACTIONS_PER_FRAME {
            let Ok(action) = shell.actions.try_recv() else { break };
            if perform(app, action, &mut shell) {
                return Ok(());
            }
        }
    }
}

/// Updates the app and performs its effects; true to quit.
fn perform(app: &mut App, action: Action, shell: &mut Shell<'_>) -> bool {
    for effect in app.update(action) {
        match effect {
            Effect::Hello(resume) => shell.worker.hello(resume),
            Effect::Frame(frame) => shell.worker.send(frame),
            Effect::Api(request) => shell.api.perform(request),
            Effect::Notify(notice) => {
                if shell.notifications.notify(&notice) == Alert::Bell {
                    (shell.bell)();
                }
            }
            Effect::Quit => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEventState;

    fn key(code: CtKey, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent { code, modifiers, kind: KeyEventKind::Press, state: KeyEventState::NONE }
    }

    #[test]
    fn crossterm_keys_become_keymap_keys() {
        let check = |event, text: &str| assert_eq!(key_press(event).unwrap().to_string(), text);
        check(key(CtKey::Char('G'), KeyModifiers::SHIFT), "G");
        check(key(CtKey::Char('p'), KeyModifiers::CONTROL), "C-p");
        check(key(CtKey::BackTab, KeyModifiers::SHIFT), "S-tab");
        check(key(CtKey::Enter, KeyModifiers::ALT), "A-enter");
        check(key(CtKey::Char('你'), KeyModifiers::NONE), "你");
        let release = KeyEvent { kind: KeyEventKind::Release, ..key(CtKey::Char('a'), KeyModifiers::NONE) };
        assert_eq!(translate(Event::Key(release)), None);
    }
}
