//! Where a CAM call's time goes, for `chestcam bench`: while recording is
//! on (this thread only), each phase boundary of the engine waits for the
//! device and notes the time. Off, the default, a mark is one thread-local
//! read, so the engine keeps its marks in every call.
use crate::util::sync;
use std::cell::RefCell;
use std::time::Instant;
use tch::Device;

type Marks = Vec<(&'static str, Instant)>;

thread_local! {
    static MARKS: RefCell<Option<Marks>> = const { RefCell::new(None) };
}

/// Ends the phase `name` once `device` has finished its work (nothing
/// unless [`record`] is running).
pub(crate) fn mark(name: &'static str, device: Device) {
    MARKS.with(|m| {
        if let Some(v) = m.borrow_mut().as_mut() {
            sync(device);
            v.push((name, Instant::now()));
        }
    });
}

/// Runs `f` with recording on; returns its result and each phase's
/// seconds, in order. The waits make the sum a little larger than an
/// unrecorded call, where the host queues the next phase while the
/// device still runs the last.
pub fn record<T>(device: Device, f: impl FnOnce() -> T) -> (T, Vec<(&'static str, f64)>) {
    sync(device);
    MARKS.with(|m| *m.borrow_mut() = Some(vec![("start", Instant::now())]));
    let out = f();
    let marks = MARKS.with(|m| m.borrow_mut().take()).unwrap_or_default();
    let phases = marks
        .windows(2)
        .map(|w| (w[1].0, (w[1].1 - w[0].1).as_secs_f64()))
        .collect();
    (out, phases)
}
