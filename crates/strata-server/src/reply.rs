//! Answers to queued writes, from the engine's committer thread to the
//! request tasks waiting for them, with one wake-up of a serving thread per
//! group of answers instead of one per answer.
//!
//! A task on a current-thread runtime woken from another thread costs that
//! thread a write to the runtime's eventfd, and the serving thread a pass
//! through its event loop, per wake. The committer answers a whole commit
//! group at once: each answer's waker goes to the serving thread's [`Hub`],
//! and only the first of a run wakes the hub's dispatcher task, which then
//! wakes the request tasks from their own thread (no system call). They run
//! in one pass, so their responses also leave in one write to the socket.
//! Outside a current-thread runtime (a multi-threaded one, no runtime) an
//! answer wakes its task directly, as a oneshot channel would.

use parking_lot::Mutex;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// A serving thread's wakers waiting to be woken on that thread.
struct Hub {
    /// Wakers to wake; `None` once the dispatcher is gone (its runtime
    /// stopped): then answers wake their tasks directly.
    pending: Mutex<Option<Vec<Waker>>>,
    /// Wakes the dispatcher; once per run of answers.
    notify: tokio::sync::Notify,
}

impl Hub {
    /// Wakes `w` on the hub's thread, soon.
    fn wake(&self, w: Waker) {
        let mut pending = self.pending.lock();
        let Some(list) = pending.as_mut() else {
            drop(pending);
            return w.wake();
        };
        let first = list.is_empty();
        list.push(w);
        drop(pending);
        if first {
            // A permit is kept if the dispatcher is not waiting yet: it
            // finds the list on its next pass.
            self.notify.notify_one();
        }
    }

    /// The dispatcher: on each notification, wakes every pending waker.
    async fn dispatch(self: Arc<Hub>) {
        let _closed = Closed(self.clone());
        let mut batch = Vec::new();
        loop {
            self.notify.notified().await;
            if let Some(list) = self.pending.lock().as_mut() {
                std::mem::swap(list, &mut batch);
            }
            for w in batch.drain(..) {
                w.wake();
            }
        }
    }
}

/// Closes a hub when its dispatcher is dropped (the runtime stopped):
/// wakers pending and to come are woken directly.
struct Closed(Arc<Hub>);

impl Drop for Closed {
    fn drop(&mut self) {
        let pending = self.0.pending.lock().take();
        for w in pending.into_iter().flatten() {
            w.wake();
        }
    }
}

thread_local! {
    /// This thread's hub, if it runs a current-thread runtime that has
    /// asked for one.
    static HUB: RefCell<Option<Arc<Hub>>> = const { RefCell::new(None) };
}

/// The hub of the current-thread runtime this thread runs, started on
/// first use; None on any other thread.
fn current_hub() -> Option<Arc<Hub>> {
    HUB.with(|cell| {
        let mut cell = cell.borrow_mut();
        if let Some(hub) = cell.as_ref() {
            if hub.pending.lock().is_some() {
                return Some(hub.clone());
            }
        }
        let handle = tokio::runtime::Handle::try_current().ok()?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread {
            return None;
        }
        let hub = Arc::new(Hub {
            pending: Mutex::new(Some(Vec::new())),
            notify: tokio::sync::Notify::new(),
        });
        handle.spawn(hub.clone().dispatch());
        *cell = Some(hub.clone());
        Some(hub)
    })
}

/// What an [`Answer`] and its [`Answerer`] share.
struct Slot<T> {
    value: Option<T>,
    /// The answerer is gone (answered or dropped).
    closed: bool,
    waker: Option<Waker>,
}

/// The sending half: answers once, from any thread.
pub(crate) struct Answerer<T> {
    slot: Arc<Mutex<Slot<T>>>,
    hub: Option<Arc<Hub>>,
}

/// The receiving half: a future of the answer, or of `Dropped` if the
/// answerer was dropped unanswered.
pub(crate) struct Answer<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

/// The answerer was dropped without answering.
#[derive(Debug)]
pub(crate) struct Dropped;

/// A one-shot answer to be given on another thread; see the module doc.
/// Call from the thread whose task will await the answer.
pub(crate) fn channel<T>() -> (Answerer<T>, Answer<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        closed: false,
        waker: None,
    }));
    let answerer = Answerer {
        slot: slot.clone(),
        hub: current_hub(),
    };
    (answerer, Answer { slot })
}

impl<T> Answerer<T> {
    /// Gives the answer and wakes the task awaiting it.
    pub(crate) fn send(self, value: T) {
        self.slot.lock().value = Some(value);
        // Drop closes and wakes.
    }
}

impl<T> Drop for Answerer<T> {
    fn drop(&mut self) {
        let waker = {
            let mut s = self.slot.lock();
            s.closed = true;
            s.waker.take()
        };
        match (waker, &self.hub) {
            (Some(w), Some(hub)) => hub.wake(w),
            (Some(w), None) => w.wake(),
            (None, _) => {}
        }
    }
}

impl<T> Future for Answer<T> {
    type Output = Result<T, Dropped>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.slot.lock();
        if let Some(v) = s.value.take() {
            return Poll::Ready(Ok(v));
        }
        if s.closed {
            return Poll::Ready(Err(Dropped));
        }
        match &mut s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn answers_from_another_thread_reach_every_waiting_task() {
        let rt = current_thread();
        rt.block_on(async {
            let mut answers = Vec::new();
            let mut answerers = Vec::new();
            for _ in 0..100 {
                let (tx, rx) = channel::<u32>();
                assert!(tx.hub.is_some(), "a current-thread runtime has a hub");
                answerers.push(tx);
                answers.push(tokio::spawn(rx));
            }
            // Let every task register its waker first.
            tokio::time::sleep(Duration::from_millis(20)).await;
            std::thread::spawn(move || {
                for (i, tx) in answerers.into_iter().enumerate() {
                    if i % 10 == 9 {
                        drop(tx);
                    } else {
                        tx.send(i as u32);
                    }
                }
            });
            for (i, a) in answers.into_iter().enumerate() {
                let got = tokio::time::timeout(Duration::from_secs(10), a)
                    .await
                    .expect("answered in time")
                    .expect("task");
                match got {
                    Ok(v) => assert_eq!(v, i as u32),
                    Err(Dropped) => assert_eq!(i % 10, 9, "answer {i} dropped"),
                }
            }
        });
    }

    #[test]
    fn an_answer_given_before_it_is_awaited_is_ready() {
        let rt = current_thread();
        rt.block_on(async {
            let (tx, rx) = channel();
            tx.send("yes");
            assert_eq!(rx.await.expect("answered"), "yes");
        });
    }

    #[test]
    fn a_new_runtime_on_the_thread_gets_a_new_hub() {
        // The first runtime's dispatcher dies with it; answers made
        // under the second must still arrive.
        for _ in 0..3 {
            let rt = current_thread();
            rt.block_on(async {
                let (tx, rx) = channel();
                let waiting = tokio::spawn(rx);
                tokio::task::yield_now().await;
                std::thread::spawn(move || tx.send(7u8));
                let got = tokio::time::timeout(Duration::from_secs(10), waiting)
                    .await
                    .expect("answered in time")
                    .expect("task");
                assert_eq!(got.expect("answered"), 7);
            });
        }
    }

    #[test]
    fn a_multi_thread_runtime_wakes_directly() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (tx, rx) = channel();
            assert!(tx.hub.is_none());
            std::thread::spawn(move || tx.send(1u8));
            assert_eq!(rx.await.expect("answered"), 1);
        });
    }
}
