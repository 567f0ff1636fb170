//! Helpers for chestcam's end-to-end tests: a real HTTP server on
//! 127.0.0.1 that serves generated files and misbehaves on purpose.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the server answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Serves the body, honouring `Range: bytes=N-` with 206.
    Serve,
    /// Answers with this status and a short body.
    Status(u16),
    /// Announces the full length, sends `after` bytes, then goes silent.
    Stall { after: usize },
    /// Announces the full length, sends `after` bytes, closes. Every time.
    Truncate { after: usize },
    /// The first request is cut after `after` bytes; later ones are served
    /// (with Range support).
    TruncateOnce { after: usize },
    /// Ignores Range and always sends the whole body with 200.
    NoRange,
}

/// A loopback HTTP/1.1 server serving one body at every path.
pub struct TestServer {
    pub port: u16,
    /// The request lines and Range headers seen, in order.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    pub fn start(body: Vec<u8>, behaviour: Behaviour) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("addr").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        let body = Arc::new(body);
        std::thread::spawn(move || {
            let mut count = 0usize;
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                count += 1;
                let (body, log, beh, n) = (body.clone(), log2.clone(), behaviour.clone(), count);
                std::thread::spawn(move || {
                    let _ = handle(stream, &body, &log, &beh, n);
                });
            }
        });
        TestServer { port, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    pub fn requests(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

fn handle(
    mut stream: TcpStream,
    body: &[u8],
    log: &Mutex<Vec<String>>,
    beh: &Behaviour,
    n: usize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut range: Option<usize> = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range: bytes=") {
            range = v.trim().trim_end_matches('-').parse().ok();
        }
    }
    log.lock()
        .expect("log")
        .push(format!("{} range={:?}", line.trim(), range));
    let serve = |stream: &mut TcpStream, from: Option<usize>| -> std::io::Result<()> {
        match from {
            Some(start) if start >= body.len() => {
                write!(stream, "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            }
            Some(start) => {
                write!(
                    stream,
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\nConnection: close\r\n\r\n",
                    body.len() - start,
                    body.len() - 1,
                    body.len()
                )?;
                stream.write_all(&body[start..])
            }
            None => {
                write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )?;
                stream.write_all(body)
            }
        }
    };
    let head_full = |stream: &mut TcpStream| {
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
    };
    match beh {
        Behaviour::Serve => serve(&mut stream, range)?,
        Behaviour::NoRange => serve(&mut stream, None)?,
        Behaviour::Status(code) => {
            let msg = format!("status {code}");
            write!(
                stream,
                "HTTP/1.1 {code} Test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
                msg.len()
            )?;
        }
        Behaviour::Stall { after } => {
            head_full(&mut stream)?;
            stream.write_all(&body[..*after])?;
            stream.flush()?;
            std::thread::sleep(Duration::from_secs(30));
        }
        Behaviour::Truncate { after } => {
            head_full(&mut stream)?;
            stream.write_all(&body[..*after])?;
        }
        Behaviour::TruncateOnce { after } => {
            if n == 1 {
                head_full(&mut stream)?;
                stream.write_all(&body[..*after])?;
            } else {
                serve(&mut stream, range)?;
            }
        }
    }
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    // Drain so the peer sees a clean close.
    let _ = reader.read(&mut [0u8; 16]);
    Ok(())
}

/// `shared/data/nih1000` beside the checkout (`../shared` from the repo root).
pub fn nih1000_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    if let Ok(p) = std::env::var("CHESTCAM_NIH1000") {
        return PathBuf::from(p);
    }
    root.join("..").join("shared").join("data").join("nih1000")
}

/// Deterministic pseudo-random bytes.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut r = chestcam::util::Rng::new(seed);
    (0..n).map(|_| r.next_u64() as u8).collect()
}

/// Runs a reference script of `tests/fixtures` with the project venv's
/// python (`python SCRIPT ARGS.. OUT_DIR`) once, and returns `OUT_DIR`: a
/// folder under `target/` named by the script's hash, so that an edited
/// script runs again. `done` is the file whose presence marks it complete.
/// Tests of one binary that ask for the same fixture at once wait for one
/// another (the first makes it, the others find it), and each process
/// writes into its own temporary folder, so two binaries cannot mix their
/// files.
pub fn python_fixture<A: AsRef<std::ffi::OsStr>>(script: &str, args: &[A], done: &str) -> PathBuf {
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let script = root.join("tests/fixtures").join(script);
    let mut text = std::fs::read(&script).expect("fixture script");
    // The arguments are part of what the fixture is (a method list, say).
    for a in args {
        text.push(0);
        text.extend(a.as_ref().as_encoded_bytes());
    }
    let hash = chestcam::data::download::md5_bytes(&text);
    let stem = script
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = root.join("target").join(format!("{stem}-{}", &hash[..12]));
    if !dir.join(done).exists() {
        let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let out = std::process::Command::new("python")
            .arg(&script)
            .args(args)
            .arg(&tmp)
            .output()
            .expect("python (make setup)");
        assert!(
            out.status.success(),
            "fixture script {} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        if dir.join(done).exists() {
            // Another process finished the same fixture meanwhile.
            let _ = std::fs::remove_dir_all(&tmp);
        } else {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&tmp, &dir).expect("fixture folder");
        }
    }
    dir
}
