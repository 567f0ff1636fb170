//! The downloader against a real HTTP server on 127.0.0.1 that misbehaves
//! on purpose. No test contacts any other host.
use chestcam::data::download::{md5_bytes, Downloader};
use chestcam::progress::Silent;
use chestcam_tests::{bytes, Behaviour, TestServer};
use std::path::Path;
use std::time::Duration;

fn dl() -> Downloader {
    Downloader {
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(1),
        resume_attempts: 2,
        offline: false,
    }
}

/// Only the lock-free leftovers may remain, and never the final name.
fn assert_nothing_final(dest: &Path) {
    assert!(
        !dest.exists(),
        "{} must not exist after a failure",
        dest.display()
    );
}

#[test]
fn downloads_verifies_and_renames() {
    let body = bytes(300_000, 1);
    let srv = TestServer::start(body.clone(), Behaviour::Serve);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("chestmnist.npz");
    let got = dl()
        .fetch(
            &srv.url("chestmnist.npz?download=1"),
            &dest,
            &md5_bytes(&body),
            &mut Silent,
        )
        .unwrap();
    assert_eq!(got, dest);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    // Only the final file and its verification stamp are left (no .part, no .lock).
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            std::ffi::OsString::from("chestmnist.npz"),
            std::ffi::OsString::from("chestmnist.npz.verified")
        ]
    );
    // A second call uses the cache: no new request.
    let before = srv.requests().len();
    dl().fetch(
        &srv.url("chestmnist.npz?download=1"),
        &dest,
        &md5_bytes(&body),
        &mut Silent,
    )
    .unwrap();
    assert_eq!(srv.requests().len(), before);
    // Another file put under that name is refused, not reported as the data.
    let mut other = body.clone();
    other[7] ^= 0xFF;
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&dest, &other).unwrap();
    let e = dl()
        .fetch(
            &srv.url("chestmnist.npz?download=1"),
            &dest,
            &md5_bytes(&body),
            &mut Silent,
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("chestmnist.npz")
            && e.contains(&md5_bytes(&other))
            && e.contains("not the real file"),
        "{e}"
    );
    assert_eq!(srv.requests().len(), before);
    // The right bytes put there by hand are checked once and then trusted.
    std::fs::remove_file(dir.path().join("chestmnist.npz.verified")).unwrap();
    std::fs::write(&dest, &body).unwrap();
    dl().fetch(&srv.url("x"), &dest, &md5_bytes(&body), &mut Silent)
        .unwrap();
    assert!(dir.path().join("chestmnist.npz.verified").is_file());
    assert_eq!(srv.requests().len(), before);
}

#[test]
fn resumes_with_a_range_request() {
    let body = bytes(500_000, 2);
    let srv = TestServer::start(body.clone(), Behaviour::TruncateOnce { after: 123_456 });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.npz");
    dl().fetch(&srv.url("f.npz"), &dest, &md5_bytes(&body), &mut Silent)
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert!(reqs[0].ends_with("range=None"), "{reqs:?}");
    assert!(reqs[1].ends_with("range=Some(123456)"), "{reqs:?}");
}

#[test]
fn resumes_a_part_left_by_an_earlier_call() {
    let body = bytes(200_000, 3);
    let srv = TestServer::start(body.clone(), Behaviour::Serve);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.npz");
    std::fs::write(dir.path().join("f.npz.part"), &body[..50_000]).unwrap();
    dl().fetch(&srv.url("f.npz"), &dest, &md5_bytes(&body), &mut Silent)
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert!(srv.requests()[0].ends_with("range=Some(50000)"));
}

#[test]
fn server_ignoring_range_restarts_from_zero() {
    let body = bytes(100_000, 4);
    let srv = TestServer::start(body.clone(), Behaviour::NoRange);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.npz");
    std::fs::write(dir.path().join("f.npz.part"), &body[..10_000]).unwrap();
    dl().fetch(&srv.url("f.npz"), &dest, &md5_bytes(&body), &mut Silent)
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
}

#[test]
fn http_404_is_a_clear_error() {
    let srv = TestServer::start(vec![], Behaviour::Status(404));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.npz");
    let e = dl()
        .fetch(&srv.url("missing.npz"), &dest, "00", &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("HTTP 404") && e.contains("no such file") && e.contains("missing.npz"),
        "{e}"
    );
    assert_nothing_final(&dest);
}

#[test]
fn http_5xx_is_a_clear_error() {
    let srv = TestServer::start(vec![], Behaviour::Status(503));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.npz");
    let e = dl()
        .fetch(&srv.url("f.npz"), &dest, "00", &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(e.contains("HTTP 503") && e.contains("server error"), "{e}");
    assert_nothing_final(&dest);
}

#[test]
fn connection_refused_is_a_clear_error() {
    // Bind, note the port, close: nothing listens there any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.npz");
    let e = dl()
        .fetch(
            &format!("http://127.0.0.1:{port}/f.npz"),
            &dest,
            "00",
            &mut Silent,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("connection refused"), "{e}");
    assert_nothing_final(&dest);
}

#[test]
fn stalled_connection_times_out_and_keeps_the_part() {
    let body = bytes(100_000, 5);
    let srv = TestServer::start(body.clone(), Behaviour::Stall { after: 40_000 });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.npz");
    let t = std::time::Instant::now();
    let e = dl()
        .fetch(&srv.url("f.npz"), &dest, &md5_bytes(&body), &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("stalled") && e.contains("gave up after 3 attempts"),
        "{e}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(25),
        "timeouts must fire: {:?}",
        t.elapsed()
    );
    assert_nothing_final(&dest);
    // The part is kept for the next call to resume.
    let part = std::fs::read(dir.path().join("f.npz.part")).unwrap();
    assert_eq!(part, body[..40_000]);
}

#[test]
fn truncated_body_is_a_clear_error() {
    let body = bytes(100_000, 6);
    let srv = TestServer::start(body.clone(), Behaviour::Truncate { after: 30_000 });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.npz");
    let e = dl()
        .fetch(&srv.url("f.npz"), &dest, &md5_bytes(&body), &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("truncated body: got 30000 of 100000 bytes"),
        "{e}"
    );
    assert_nothing_final(&dest);
}

#[test]
fn checksum_mismatch_removes_the_part() {
    let body = bytes(50_000, 7);
    let srv = TestServer::start(body, Behaviour::Serve);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.npz");
    let e = dl()
        .fetch(
            &srv.url("f.npz"),
            &dest,
            "02c8a6516a18b556561a56cbdd36c4a8",
            &mut Silent,
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("checksum mismatch") && e.contains("02c8a6516a18b556561a56cbdd36c4a8"),
        "{e}"
    );
    assert_nothing_final(&dest);
    assert!(!dir.path().join("f.npz.part").exists());
}

#[test]
fn full_disk_is_a_clear_error() {
    // The .part file is a link to /dev/full: every write fails with ENOSPC,
    // exactly as on a full disk.
    if !Path::new("/dev/full").exists() {
        panic!("/dev/full is needed for this test");
    }
    let body = bytes(50_000, 8);
    let srv = TestServer::start(body.clone(), Behaviour::Serve);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.npz");
    std::os::unix::fs::symlink("/dev/full", dir.path().join("f.npz.part")).unwrap();
    let e = dl()
        .fetch(&srv.url("f.npz"), &dest, &md5_bytes(&body), &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(e.contains("f.npz.part: disk full"), "{e}");
    assert_nothing_final(&dest);
}

#[test]
fn offline_refuses_the_network() {
    let body = bytes(1000, 9);
    let srv = TestServer::start(body.clone(), Behaviour::Serve);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.npz");
    let d = Downloader {
        offline: true,
        ..dl()
    };
    let e = d
        .fetch(&srv.url("f.npz"), &dest, &md5_bytes(&body), &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("CHESTCAM_OFFLINE=1") && e.contains("f.npz"),
        "{e}"
    );
    assert!(srv.requests().is_empty());
    assert_nothing_final(&dest);
}
