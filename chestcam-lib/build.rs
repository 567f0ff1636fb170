//! Link-time set-up: see build_link.rs.
include!("build_link.rs");

fn main() {
    chestcam_link_args();
}
