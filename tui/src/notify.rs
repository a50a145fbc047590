//! Notifications: a desktop notification through a [`Notifier`] (notify-rust over
//! D-Bus), switched off after its first failure, with the terminal bell as the fallback.
//! The status line always shows the notice too (the app sets it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::app::Notice;
use crate::config::NotificationSettings;

/// Something that can show a notification.
pub trait Notifier: Send + 'static {
    /// Shows `notice`; an error disables desktop notifications for the session.
    fn notify(&mut self, notice: &Notice) -> Result<(), String>;
}

/// Desktop notifications through D-Bus (notify-rust).
pub struct Desktop;

impl Notifier for Desktop {
    fn notify(&mut self, notice: &Notice) -> Result<(), String> {
        notify_rust::Notification::new()
            .appname("kefu")
            .summary(&notice.title)
            .body(&notice.body)
            .show()
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// How a notice reached the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alert {
    /// Handed to the desktop notifier.
    Desktop,
    /// Ring the terminal bell.
    Bell,
    /// Only the status line (both are switched off).
    StatusLine,
}

/// Routes notices to the desktop or the bell.
pub struct Notifications {
    /// To the notifier's thread (D-Bus calls block), while desktop notifications work.
    desktop: Option<std::sync::mpsc::Sender<Notice>>,
    /// Set by the notifier's thread at its first failure.
    failed: Arc<AtomicBool>,
    /// Whether the bell may ring.
    bell: bool,
}

impl Notifications {
    /// Notifications as `settings` ask, using `notifier` for the desktop.
    pub fn new(settings: NotificationSettings, notifier: impl Notifier) -> Notifications {
        let failed = Arc::new(AtomicBool::new(false));
        let desktop = settings.desktop.then(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Notice>();
            let failed = failed.clone();
            let mut notifier = notifier;
            std::thread::spawn(move || {
                for notice in rx {
                    if let Err(e) = notifier.notify(&notice) {
                        tracing::warn!(error = %e, "desktop notifications failed; using the bell from now on");
                        failed.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            });
            tx
        });
        Notifications { desktop, failed, bell: settings.bell }
    }

    /// Whether desktop notifications are still in use.
    pub fn desktop_works(&self) -> bool {
        self.desktop.is_some() && !self.failed.load(Ordering::SeqCst)
    }

    /// Delivers `notice`; says how, so the caller rings the bell when asked.
    pub fn notify(&self, notice: &Notice) -> Alert {
        if self.desktop_works()
            && let Some(tx) = &self.desktop
            && tx.send(notice.clone()).is_ok()
        {
            return Alert::Desktop;
        }
        if self.bell { Alert::Bell } else { Alert::StatusLine }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing;
    impl Notifier for Failing {
        fn notify(&mut self, _: &Notice) -> Result<(), String> {
            Err("org.freedesktop.DBus.Error.ServiceUnknown".into())
        }
    }

    fn notice() -> Notice {
        Notice { title: "新会话".into(), body: "李女士 (web)".into() }
    }

    #[test]
    fn the_first_failure_switches_to_the_bell() {
        let notifications = Notifications::new(NotificationSettings { desktop: true, bell: true }, Failing);
        assert_eq!(notifications.notify(&notice()), Alert::Desktop);
        // The notifier's thread reports the failure; wait for it (bounded, not timed).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while notifications.desktop_works() && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(!notifications.desktop_works());
        assert_eq!(notifications.notify(&notice()), Alert::Bell);
    }

    #[test]
    fn settings_choose_the_fallback() {
        let quiet = Notifications::new(NotificationSettings { desktop: false, bell: false }, Failing);
        assert_eq!(quiet.notify(&notice()), Alert::StatusLine);
        let bell = Notifications::new(NotificationSettings { desktop: false, bell: true }, Failing);
        assert_eq!(bell.notify(&notice()), Alert::Bell);
    }
}
