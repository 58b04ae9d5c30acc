//! Yield points for the interleavings explorer (tests only).
//!
//! The real resolution, evictor and webhook application await
//! [`point`] before each step that touches shared state. Normally a point
//! is ready at once; while an explorer drives the futures of this thread
//! ([`Driven`]), each point yields once, so that the explorer decides who
//! takes the next step. The label names the step about to run.

use std::{
    cell::Cell,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

thread_local! {
    static DRIVEN: Cell<bool> = const { Cell::new(false) };
    static REACHED: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// A point before the step `label`.
pub(crate) fn point(label: &'static str) -> Point {
    Point {
        label,
        passed: false,
    }
}

/// The future of [`point`]: pending once while driven, then ready.
pub(crate) struct Point {
    label: &'static str,
    passed: bool,
}

impl Future for Point {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.passed || !DRIVEN.with(Cell::get) {
            return Poll::Ready(());
        }
        self.passed = true;
        REACHED.with(|reached| reached.set(Some(self.label)));
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// While alive, the points of this thread yield.
pub(crate) struct Driven(());

impl Driven {
    pub(crate) fn start() -> Self {
        DRIVEN.with(|driven| driven.set(true));
        Self(())
    }

    /// The label of the point the last poll stopped at, if it stopped at one.
    pub(crate) fn reached(&self) -> Option<&'static str> {
        REACHED.with(Cell::take)
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        DRIVEN.with(|driven| driven.set(false));
        REACHED.with(Cell::take);
    }
}
