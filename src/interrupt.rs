//! Ctrl-C handling. The first Ctrl-C cancels the running graph: nodes stop at their next
//! cancellation check (a progress tick or a node boundary), outputs already written stay, and the
//! command exits with code 130. A second Ctrl-C exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use omnigen_engine::CancelToken;
use tokio::sync::Notify;

use crate::outcome::EXIT_INTERRUPTED;

/// Shared interrupt state: whether Ctrl-C was pressed, and the token of the run to cancel.
#[derive(Clone, Default)]
pub struct Interrupt {
    pressed: Arc<AtomicBool>,
    current: Arc<Mutex<CancelToken>>,
    notify: Arc<Notify>,
}

impl Interrupt {
    /// Starts listening for Ctrl-C (SIGINT). Must be called inside the tokio runtime.
    pub fn install() -> Self {
        let interrupt = Interrupt::default();
        let listener = interrupt.clone();
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                if listener.pressed.swap(true, Ordering::SeqCst) {
                    eprintln!("interrupted again: exiting now");
                    std::process::exit(i32::from(EXIT_INTERRUPTED));
                }
                eprintln!(
                    "interrupting: stopping at the next node boundary (Ctrl-C again to quit now)"
                );
                listener.lock_current().cancel();
                listener.notify.notify_waiters();
            }
        });
        interrupt
    }

    fn lock_current(&self) -> std::sync::MutexGuard<'_, CancelToken> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh cancellation token for the next run (already cancelled if Ctrl-C was pressed).
    pub fn token_for_run(&self) -> CancelToken {
        let token = CancelToken::new();
        if self.is_pressed() {
            token.cancel();
        }
        *self.lock_current() = token.clone();
        token
    }

    /// Whether Ctrl-C was pressed.
    pub fn is_pressed(&self) -> bool {
        self.pressed.load(Ordering::SeqCst)
    }

    /// Waits until Ctrl-C is pressed (returns at once if it already was).
    pub async fn pressed(&self) {
        let notified = self.notify.notified();
        if self.is_pressed() {
            return;
        }
        notified.await;
    }
}
