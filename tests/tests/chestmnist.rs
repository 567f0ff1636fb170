//! ChestMNIST by size: the cache under CHESTCAM_HOME and the mirror URL.
//! One test function, because it sets process-wide environment variables.
use chestcam::data::{registry, Dataset};
use chestcam::progress::Silent;
use chestcam_tests::{Behaviour, TestServer};

#[test]
fn chestmnist_from_cache_and_from_a_mirror() {
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("CHESTCAM_HOME", home.path());
    std::env::set_var("CHESTCAM_OFFLINE", "1");

    // Nothing cached, offline: a clear error naming where the file belongs.
    let e = Dataset::chestmnist(28, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("CHESTCAM_OFFLINE=1")
            && e.contains(&home.path().join("chestmnist.npz").display().to_string()),
        "{e}"
    );

    // Another file put in the cache under ChestMNIST's name is refused by its
    // MD5, not reported as ChestMNIST (and not deleted).
    let nih = chestcam_tests::nih1000_dir().join("nih1000.npz");
    std::fs::copy(&nih, home.path().join("chestmnist.npz")).unwrap();
    let e = Dataset::chestmnist(28, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("chestmnist.npz")
            && e.contains(registry::chestmnist(28).unwrap().md5)
            && e.contains("not the real file"),
        "{e}"
    );
    assert!(home.path().join("chestmnist.npz").is_file());

    // A mirror on loopback is asked for the registry's file name, and a
    // file that is not the real one fails the registry's MD5.
    std::env::remove_var("CHESTCAM_OFFLINE");
    let srv = TestServer::start(std::fs::read(&nih).unwrap(), Behaviour::Serve);
    std::env::set_var("CHESTCAM_MIRROR", srv.url(""));
    let e = Dataset::chestmnist(64, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("checksum mismatch") && e.contains(registry::chestmnist(64).unwrap().md5),
        "{e}"
    );
    assert_eq!(srv.requests().len(), 1);
    assert!(
        srv.requests()[0].starts_with("GET /chestmnist_64.npz?download=1 "),
        "{:?}",
        srv.requests()
    );
    assert!(!home.path().join("chestmnist_64.npz").exists());
    assert!(!home.path().join("chestmnist_64.npz.part").exists());
    // A mirror given without its trailing `/` is joined as a folder.
    let bare = srv.url("mirror");
    assert!(!bare.ends_with('/'));
    std::env::set_var("CHESTCAM_MIRROR", &bare);
    let _ = Dataset::chestmnist(128, &mut Silent).unwrap_err();
    let last = srv.requests().last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("GET /mirror/chestmnist_128.npz?download=1 "),
        "{last}"
    );
    std::env::remove_var("CHESTCAM_MIRROR");
    std::env::remove_var("CHESTCAM_HOME");
}
