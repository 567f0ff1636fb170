//! Link-time set-up, shared with the library crate.
include!("../chestcam-lib/build_link.rs");

fn main() {
    chestcam_link_args();
}
