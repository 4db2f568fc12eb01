//! Remote models (`https://`, `http://`, `hf://`) against real HTTP/1.1
//! servers the tests start on loopback: what is fetched (requests and bytes
//! counted by the server), redirects, tokens, retries, timeouts, changed
//! files, and the Hugging Face conventions. Nothing here leaves the machine:
//! every run points `HF_ENDPOINT` at loopback and `HF_HOME` at a temporary
//! folder.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::util::{Run, assert_error, bin, run_in, tempdir};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: BTreeMap<String, String>,
    /// Body bytes the server managed to write.
    sent: u64,
}

/// How a test server behaves.
#[derive(Default)]
struct Behaviour {
    /// Answer 200 with the whole file to every request, ignoring `Range`.
    ignore_range: bool,
    /// Answer 503 to this many requests first.
    fail_first: usize,
    /// Never answer: read the request, then wait.
    stall: bool,
    /// Answer every request with this status and no body.
    status: Option<u16>,
    /// Redirect every request to this base URL (same path).
    redirect_to: Option<String>,
    /// After this many requests, replace the file at the path with these
    /// bytes (a new version with a new ETag).
    swap_after: Option<(usize, String, Vec<u8>)>,
}

struct Server {
    base: String,
    files: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections still being answered.
    active: Arc<AtomicUsize>,
}

impl Server {
    /// A server on 127.0.0.1 (or on `host`), serving `files` by path.
    fn start(host: &str, files: BTreeMap<String, Vec<u8>>, behaviour: Behaviour) -> Server {
        let listener = TcpListener::bind((host, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let files = Arc::new(Mutex::new(files));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(behaviour);
        let count = Arc::new(AtomicUsize::new(0));
        let active = Arc::new(AtomicUsize::new(0));
        {
            let (files, seen, active) = (files.clone(), seen.clone(), active.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let (files, seen, behaviour, count, active) = (
                        files.clone(),
                        seen.clone(),
                        behaviour.clone(),
                        count.clone(),
                        active.clone(),
                    );
                    active.fetch_add(1, Ordering::SeqCst);
                    std::thread::spawn(move || {
                        serve(stream, &files, &seen, &behaviour, &count);
                        active.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            });
        }
        Server {
            base: format!("http://{host}:{port}"),
            files,
            seen,
            active,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The requests answered, once every connection is done with (the
    /// client may exit before the server has recorded its last answer).
    fn seen(&self) -> Vec<Seen> {
        for _ in 0..2000 {
            if self.active.load(Ordering::SeqCst) == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.seen.lock().unwrap().clone()
    }

    fn requests_for(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }
}

fn etag(bytes: &[u8]) -> String {
    format!("\"{}\"", &hex::encode(Sha256::digest(bytes))[..16])
}

fn serve(
    stream: TcpStream,
    files: &Mutex<BTreeMap<String, Vec<u8>>>,
    seen: &Mutex<Vec<Seen>>,
    b: &Behaviour,
    count: &AtomicUsize,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    let mut first = String::new();
    if reader.read_line(&mut first).unwrap_or(0) == 0 {
        return;
    }
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let n = count.fetch_add(1, Ordering::SeqCst);
    let record = |sent: u64| {
        seen.lock().unwrap().push(Seen {
            path: path.clone(),
            headers: headers.clone(),
            sent,
        });
    };
    if b.stall {
        record(0);
        std::thread::sleep(Duration::from_secs(30));
        return;
    }
    if let Some((after, p, bytes)) = &b.swap_after {
        if n == *after {
            files.lock().unwrap().insert(p.clone(), bytes.clone());
        }
    }
    let head = |status: &str, extra: &str, len: usize| {
        format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n{extra}\r\n")
    };
    if n < b.fail_first {
        record(0);
        let _ = out.write_all(head("503 Service Unavailable", "", 0).as_bytes());
        return;
    }
    if let Some(status) = b.status {
        record(0);
        let _ = out.write_all(head(&format!("{status} No"), "", 0).as_bytes());
        return;
    }
    if let Some(to) = &b.redirect_to {
        record(0);
        let loc = format!("Location: {to}{path}\r\n");
        let _ = out.write_all(head("302 Found", &loc, 0).as_bytes());
        return;
    }
    let Some(file) = files.lock().unwrap().get(&path).cloned() else {
        record(0);
        let _ = out.write_all(head("404 Not Found", "", 0).as_bytes());
        return;
    };
    let tag = etag(&file);
    if let Some(m) = headers.get("if-match") {
        if *m != tag {
            record(0);
            let _ = out.write_all(head("412 Precondition Failed", "", 0).as_bytes());
            return;
        }
    }
    let len = file.len() as u64;
    let range = headers
        .get("range")
        .filter(|_| !b.ignore_range)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, z)| Some((a.parse::<u64>().ok()?, z.parse::<u64>().ok()?)));
    let (status, body, extra) = match range {
        Some((a, _)) if a >= len => {
            record(0);
            let extra = format!("Content-Range: bytes */{len}\r\n");
            let _ = out.write_all(head("416 Range Not Satisfiable", &extra, 0).as_bytes());
            return;
        }
        Some((a, z)) => {
            let z = z.min(len - 1);
            (
                "206 Partial Content",
                &file[a as usize..=z as usize],
                format!("Content-Range: bytes {a}-{z}/{len}\r\nETag: {tag}\r\n"),
            )
        }
        None => ("200 OK", &file[..], format!("ETag: {tag}\r\n")),
    };
    let _ = out.write_all(head(status, &extra, body.len()).as_bytes());
    let mut sent = 0u64;
    for c in body.chunks(64 << 10) {
        if out.write_all(c).is_err() {
            break;
        }
        sent += c.len() as u64;
    }
    record(sent);
}

/// Runs modeltool in `dir` with the environment pointed at loopback: the
/// Hub endpoint at a port nobody listens on unless `env` says otherwise,
/// `HF_HOME` in `dir`, no token, short waits between retries.
pub(crate) fn run_env(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    in_env(&mut cmd, dir, env);
    cmd.output().expect("modeltool runs").into()
}

/// Sets up `cmd` as [`run_env`] runs modeltool.
fn in_env(cmd: &mut Command, dir: &Path, env: &[(&str, &str)]) {
    cmd.current_dir(dir)
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HOME", dir.join("hf-home"))
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_HUB_CACHE")
        // Nothing from the machine's own AWS settings.
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .env_remove("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-aws-credentials"),
        )
        .env("MODELTOOL_HTTP_BACKOFF", "0.01")
        .env("MODELTOOL_HTTP_TIMEOUT", "10");
    for (k, v) in env {
        cmd.env(k, v);
    }
}

/// Runs modeltool as [`run_env`] does, on a terminal: under `script`
/// (util-linux), whose pseudo-terminal gets stdout and stderr both; the
/// run's `stdout` is what the terminal showed. `None` (the test skipped)
/// without `script`.
fn run_on_terminal(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Option<Run> {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut line = quote(bin().to_str().unwrap());
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"]);
    in_env(&mut cmd, dir, env);
    match cmd.output() {
        Ok(o) => Some(o.into()),
        Err(e) => {
            eprintln!("skipping: `script` (util-linux) does not run: {e}");
            None
        }
    }
}

/// A safetensors file made by modeltool itself (with checksums): `n`
/// f32 values in tensors `w0`..`w{k-1}`, converted from a JSON model file.
pub(crate) fn model_bytes(dir: &Path, name: &str, tensors: usize, values: usize) -> Vec<u8> {
    let mut t = serde_json::Map::new();
    for i in 0..tensors {
        let data: Vec<f64> = (0..values).map(|v| (v * 7 + i) as f64 * 0.25).collect();
        t.insert(
            format!("w{i}"),
            serde_json::json!({"dtype": "F32", "shape": [values], "data": data}),
        );
    }
    let json = serde_json::json!({"format": "modeltool.json/1", "tensors": t});
    let src = dir.join(format!("{name}.json"));
    std::fs::write(&src, serde_json::to_vec(&json).unwrap()).unwrap();
    let out = dir.join(format!("{name}.safetensors"));
    let r = run_in(
        dir,
        &["convert", src.to_str().unwrap(), out.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::read(out).unwrap()
}

/// A safetensors file whose header (8-byte length plus JSON) is exactly
/// `header_bytes` long, the JSON padded with spaces, then `data` bytes of
/// one U8 tensor.
fn sized_header(header_bytes: usize, data: usize) -> Vec<u8> {
    let json = format!(r#"{{"t":{{"dtype":"U8","shape":[{data}],"data_offsets":[0,{data}]}}}}"#);
    let pad = header_bytes - 8 - json.len();
    let json = format!("{json}{}", " ".repeat(pad));
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend((0..data).map(|i| (i % 251) as u8));
    out
}

fn files(list: &[(&str, Vec<u8>)]) -> BTreeMap<String, Vec<u8>> {
    list.iter()
        .map(|(p, b)| ((*p).to_owned(), b.clone()))
        .collect()
}

#[test]
fn inspect_reads_headers_only_in_at_most_two_requests_whatever_the_header_length() {
    let dir = tempdir();
    // Around the first read's size: HTTP ranges are inclusive, so a header
    // ending at byte 100,000 must not be cut.
    for header in [4_096, 99_999, 100_000, 100_001, 250_000] {
        let bytes = sized_header(header, 1 << 20);
        let server = Server::start(
            "127.0.0.1",
            files(&[("/m.safetensors", bytes.clone())]),
            Behaviour::default(),
        );
        let r = run_env(dir.path(), &[], &["inspect", &server.url("/m.safetensors")]);
        assert_eq!(r.code, 0, "header of {header} bytes: {}", r.stderr);
        assert!(
            r.stdout.contains("1.0M") || r.stdout.contains("1,048,576"),
            "{}",
            r.stdout
        );
        let seen = server.seen();
        let expected_requests = if header <= 100_000 { 1 } else { 2 };
        assert_eq!(
            seen.len(),
            expected_requests,
            "header of {header}: {seen:?}"
        );
        let sent: u64 = seen.iter().map(|s| s.sent).sum();
        assert_eq!(
            sent,
            header.max(100_000) as u64,
            "header of {header}: the first 100,000 bytes, then exactly the rest of the header"
        );
        assert_eq!(seen[0].headers.get("range").unwrap(), "bytes=0-99999");
        if header > 100_000 {
            assert_eq!(
                seen[1].headers.get("range").unwrap(),
                &format!("bytes=100000-{}", header - 1)
            );
        }
    }
}

#[test]
fn convert_and_verify_of_a_remote_file_match_the_local_file() {
    let dir = tempdir();
    let d = dir.path();
    let bytes = model_bytes(d, "m", 3, 50_000);
    let server = Server::start(
        "127.0.0.1",
        files(&[("/dir/m.safetensors", bytes.clone())]),
        Behaviour::default(),
    );
    let url = server.url("/dir/m.safetensors");
    let r = run_env(d, &[], &["verify", &url, "--strict"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("3 of 3 tensor checksums match"),
        "{}",
        r.stdout
    );
    // Every later request carries the first answer's ETag.
    for s in &server.seen()[1..] {
        assert_eq!(s.headers.get("if-match"), Some(&etag(&bytes)), "{s:?}");
    }

    let r = run_env(d, &[], &["convert", &url, "remote.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run_env(d, &[], &["convert", "m.safetensors", "local.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read(d.join("remote.safetensors")).unwrap(),
        std::fs::read(d.join("local.safetensors")).unwrap(),
        "converting the served file gives what converting the file gives"
    );

    // A damaged byte in the served data is a failed check (exit 1).
    let mut damaged = bytes.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    server
        .files
        .lock()
        .unwrap()
        .insert("/dir/m.safetensors".into(), damaged);
    let r = run_env(d, &[], &["verify", &url]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
}

#[test]
fn whole_file_sha256_of_a_remote_file() {
    let dir = tempdir();
    let d = dir.path();
    let bytes = model_bytes(d, "m", 1, 100_000);
    let server = Server::start(
        "127.0.0.1",
        files(&[("/m.safetensors", bytes.clone())]),
        Behaviour::default(),
    );
    let hash = hex::encode(Sha256::digest(&bytes));
    let url = server.url("/m.safetensors");
    let r = run_env(d, &[], &["verify", &url, "--sha256", &hash]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let wrong = "0".repeat(64);
    let r = run_env(d, &[], &["verify", &url, "--sha256", &wrong]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
}

#[test]
fn a_file_changed_on_the_server_between_requests_is_an_error_not_a_mix() {
    let dir = tempdir();
    let d = dir.path();
    let bytes = model_bytes(d, "m", 2, 50_000);
    let mut new = bytes.clone();
    let last = new.len() - 1;
    new[last] ^= 0x40;
    let server = Server::start(
        "127.0.0.1",
        files(&[("/m.safetensors", bytes)]),
        Behaviour {
            swap_after: Some((1, "/m.safetensors".into(), new)),
            ..Behaviour::default()
        },
    );
    let url = server.url("/m.safetensors");
    let r = run_env(d, &[], &["verify", &url]);
    assert_error(&r, 2, &[&url, "changed"]);
}

#[test]
fn a_server_that_ignores_range_is_read_only_as_far_as_needed() {
    let dir = tempdir();
    let bytes = sized_header(2_000, 64 << 20);
    let server = Server::start(
        "127.0.0.1",
        files(&[("/m.safetensors", bytes)]),
        Behaviour {
            ignore_range: true,
            ..Behaviour::default()
        },
    );
    let r = run_env(dir.path(), &[], &["inspect", &server.url("/m.safetensors")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    // The connection was dropped: the server could not send the 64 MiB.
    assert!(seen[0].sent < 32 << 20, "sent {} bytes", seen[0].sent);
}

#[test]
fn transient_failures_are_retried_and_give_up_after_a_bound() {
    let dir = tempdir();
    let bytes = sized_header(1_000, 1_000);
    let server = Server::start(
        "127.0.0.1",
        files(&[("/m.safetensors", bytes.clone())]),
        Behaviour {
            fail_first: 2,
            ..Behaviour::default()
        },
    );
    let r = run_env(dir.path(), &[], &["inspect", &server.url("/m.safetensors")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(server.seen().len(), 3, "two 503s, then the answer");

    let server = Server::start(
        "127.0.0.1",
        files(&[("/m.safetensors", bytes)]),
        Behaviour {
            fail_first: 100,
            ..Behaviour::default()
        },
    );
    let url = server.url("/m.safetensors");
    let r = run_env(
        dir.path(),
        &[("MODELTOOL_HTTP_RETRIES", "3")],
        &["inspect", &url],
    );
    assert_error(&r, 2, &[&url, "HTTP 503", "gave up after 4 attempts"]);
    assert_eq!(server.seen().len(), 4);
}

#[test]
fn a_stalled_server_times_out() {
    let dir = tempdir();
    let server = Server::start(
        "127.0.0.1",
        BTreeMap::new(),
        Behaviour {
            stall: true,
            ..Behaviour::default()
        },
    );
    let url = server.url("/m.safetensors");
    let r = run_env(
        dir.path(),
        &[
            ("MODELTOOL_HTTP_TIMEOUT", "0.3"),
            ("MODELTOOL_HTTP_RETRIES", "1"),
        ],
        &["inspect", &url],
    );
    assert_error(&r, 2, &[&url, "gave up after 2 attempts"]);
    assert!(
        r.stderr.to_lowercase().contains("timeout") || r.stderr.contains("timed out"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_token_goes_to_the_hub_only_and_range_follows_redirects() {
    let dir = tempdir();
    let bytes = sized_header(150_000, 10_000);
    let cdn = Server::start(
        "localhost",
        files(&[("/org/repo/resolve/main/model.safetensors", bytes)]),
        Behaviour::default(),
    );
    let hub = Server::start(
        "127.0.0.1",
        BTreeMap::new(),
        Behaviour {
            redirect_to: Some(cdn.base.clone()),
            ..Behaviour::default()
        },
    );
    let r = run_env(
        dir.path(),
        &[("HF_ENDPOINT", &hub.base), ("HF_TOKEN", "hf_secret")],
        &["inspect", "hf://org/repo/model.safetensors"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let hub_seen = hub.seen();
    assert_eq!(hub_seen.len(), 2, "{hub_seen:?}");
    for s in &hub_seen {
        assert_eq!(s.headers.get("authorization").unwrap(), "Bearer hf_secret");
    }
    let cdn_seen = cdn.seen();
    assert_eq!(cdn_seen.len(), 2, "{cdn_seen:?}");
    for s in &cdn_seen {
        assert!(
            !s.headers.contains_key("authorization"),
            "the token followed a redirect to another host: {s:?}"
        );
    }
    assert_eq!(cdn_seen[0].headers.get("range").unwrap(), "bytes=0-99999");
    assert_eq!(
        cdn_seen[1].headers.get("range").unwrap(),
        "bytes=100000-149999"
    );
}

#[test]
fn refused_and_missing_files_say_what_to_do_and_what_is_missing() {
    let dir = tempdir();
    let hub = Server::start(
        "127.0.0.1",
        BTreeMap::new(),
        Behaviour {
            status: Some(401),
            ..Behaviour::default()
        },
    );
    let r = run_env(
        dir.path(),
        &[("HF_ENDPOINT", &hub.base)],
        &["inspect", "hf://org/gated/model.safetensors"],
    );
    assert_error(
        &r,
        2,
        &[
            "hf://org/gated/model.safetensors",
            "gated or private",
            "HF_TOKEN",
        ],
    );

    let hub = Server::start("127.0.0.1", BTreeMap::new(), Behaviour::default());
    let r = run_env(
        dir.path(),
        &[("HF_ENDPOINT", &hub.base)],
        &["inspect", "hf://org/repo@v2/weights.safetensors"],
    );
    assert_error(
        &r,
        2,
        &["not found", "`weights.safetensors`", "`org/repo`", "`v2`"],
    );
    assert_eq!(
        hub.seen()[0].path,
        "/org/repo/resolve/v2/weights.safetensors"
    );

    // A repo with neither an index nor model.safetensors.
    let r = run_env(
        dir.path(),
        &[("HF_ENDPOINT", &hub.base)],
        &["inspect", "hf://org/repo"],
    );
    assert_error(
        &r,
        2,
        &[
            "hf://org/repo",
            "model.safetensors.index.json",
            "model.safetensors",
        ],
    );
}

/// A sharded checkpoint written by modeltool: the index and its shards.
pub(crate) fn sharded(dir: &Path) -> Vec<(String, Vec<u8>)> {
    model_bytes(dir, "big", 6, 40_000);
    let r = run_in(
        dir,
        &[
            "convert",
            "big.safetensors",
            "shards",
            "--max-shard-size",
            "400KB",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("shards"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 4, "an index and at least 3 shards: {out:?}");
    out
}

#[test]
fn an_hf_repo_with_an_index_opens_its_shards_with_two_requests_each_at_most() {
    let dir = tempdir();
    let d = dir.path();
    let list = sharded(d);
    let served: BTreeMap<String, Vec<u8>> = list
        .iter()
        .map(|(n, b)| (format!("/org/repo/resolve/main/{n}"), b.clone()))
        .collect();
    let hub = Server::start("127.0.0.1", served, Behaviour::default());
    let env = [("HF_ENDPOINT", hub.base.as_str())];
    let r = run_env(d, &env, &["inspect", "hf://org/repo"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let local = run_in(d, &["inspect", "shards"]);
    assert_eq!(
        r.stdout
            .lines()
            .filter(|l| l.contains("w0") || l.contains("parameters"))
            .collect::<Vec<_>>(),
        local
            .stdout
            .lines()
            .filter(|l| l.contains("w0") || l.contains("parameters"))
            .collect::<Vec<_>>(),
    );
    let seen = hub.seen();
    let index_path = "/org/repo/resolve/main/model.safetensors.index.json";
    assert_eq!(hub.requests_for(index_path).len(), 1, "the index once");
    for (name, _) in &list {
        let n = hub
            .requests_for(&format!("/org/repo/resolve/main/{name}"))
            .len();
        assert!((1..=2).contains(&n), "{name}: {n} requests");
    }
    assert!(seen.len() <= 1 + 2 * (list.len() - 1), "{}", seen.len());

    // verify and convert read the shards too.
    let r = run_env(d, &env, &["verify", "hf://org/repo"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("6 of 6 tensor checksums match"),
        "{}",
        r.stdout
    );
    let r = run_env(d, &env, &["convert", "hf://org/repo", "joined.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read(d.join("joined.safetensors")).unwrap(),
        std::fs::read(d.join("big.safetensors")).unwrap(),
        "the shards joined give the file they were cut from"
    );

    // The same index by URL: shards resolved relative to it.
    let r = run_env(d, &[], &["inspect", &hub.url(index_path)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn the_local_hugging_face_cache_is_used_and_offline_is_honoured() {
    let dir = tempdir();
    let d = dir.path();
    let bytes = model_bytes(d, "m", 1, 10);
    let repo = d.join("hf-home/hub/models--org--repo");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::write(repo.join("blobs/abc"), &bytes).unwrap();
    let snap = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    std::os::unix::fs::symlink("../../blobs/abc", snap.join("model.safetensors")).unwrap();

    // Served from the cache: no server listens at the endpoint.
    let r = run_env(d, &[("HF_HUB_OFFLINE", "1")], &["inspect", "hf://org/repo"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("w0"), "{}", r.stdout);
    let r = run_env(d, &[], &["verify", "hf://org/repo@main/model.safetensors"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    // Offline and not cached: said so, nothing fetched.
    let r = run_env(
        d,
        &[("HF_HUB_OFFLINE", "1")],
        &["inspect", "hf://org/other"],
    );
    assert_error(&r, 2, &["hf://org/other", "HF_HUB_OFFLINE"]);
}

#[test]
fn a_cached_sharded_checkpoint_opens_through_its_blob_links() {
    let dir = tempdir();
    let d = dir.path();
    let list = sharded(d);
    let repo = d.join("hf-home/hub/models--org--repo");
    let commit = "89abcdef0123456789abcdef0123456789abcdef";
    let snap = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    for (i, (name, bytes)) in list.iter().enumerate() {
        std::fs::write(repo.join(format!("blobs/b{i}")), bytes).unwrap();
        std::os::unix::fs::symlink(format!("../../blobs/b{i}"), snap.join(name)).unwrap();
    }
    let r = run_env(
        d,
        &[("HF_HUB_OFFLINE", "1")],
        &["verify", &format!("hf://org/repo@{commit}")],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("6 of 6 tensor checksums match"),
        "{}",
        r.stdout
    );
}

#[test]
fn malformed_addresses_are_one_error_line() {
    let dir = tempdir();
    let r = run_env(dir.path(), &[], &["inspect", "hf://only-org"]);
    assert_error(&r, 2, &["hf://only-org", "hf://ORG/REPO"]);
    let r = run_env(
        dir.path(),
        &[],
        &["inspect", "hf://org/repo/../../etc/passwd"],
    );
    assert_error(&r, 2, &["not a path of plain names"]);
}

#[test]
fn every_format_modeltool_reads_opens_over_http_as_it_opens_locally() {
    let dir = tempdir();
    let fixtures = crate::util::fixtures();
    for name in [
        "height.json",
        "multi_dtype.safetensors",
        "gguf/tiny_llama.gguf",
        "pytorch/legacy.pt",
        "pytorch/dtypes.pt",
    ] {
        let local = fixtures.join(name);
        let bytes = std::fs::read(&local).unwrap();
        let path = format!("/f/{}", name.replace('/', "_"));
        let server = Server::start("127.0.0.1", files(&[(&path, bytes)]), Behaviour::default());
        let url = server.url(&path);
        let remote = run_env(dir.path(), &[], &["inspect", "--format", "json", &url]);
        assert_eq!(remote.code, 0, "{name}: {}", remote.stderr);
        let here = run_env(
            dir.path(),
            &[],
            &["inspect", "--format", "json", local.to_str().unwrap()],
        );
        assert_eq!(here.code, 0, "{name}: {}", here.stderr);
        let strip = |s: &str, p: &str| s.replace(p, "MODEL");
        assert_eq!(
            strip(&remote.stdout, &url),
            strip(&here.stdout, local.to_str().unwrap()),
            "{name}"
        );
        let r = run_env(dir.path(), &[], &["verify", &url]);
        let l = run_env(dir.path(), &[], &["verify", local.to_str().unwrap()]);
        assert_eq!(r.code, l.code, "{name}: {}{}", r.stdout, r.stderr);
    }
}

#[test]
fn verify_streams_a_file_read_in_order_instead_of_a_request_per_tensor() {
    let dir = tempdir();
    let d = dir.path();
    // 20 tensors of 80 KB: most lie past the first answer's 100,000 bytes.
    let bytes = model_bytes(d, "m", 20, 20_000);
    let server = Server::start(
        "127.0.0.1",
        files(&[("/m.safetensors", bytes.clone())]),
        Behaviour::default(),
    );
    let url = server.url("/m.safetensors");
    let r = run_env(d, &[("RAYON_NUM_THREADS", "1")], &["verify", &url]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("20 of 20 tensor checksums match"),
        "{}",
        r.stdout
    );
    let seen = server.seen();
    assert_eq!(
        seen.len(),
        2,
        "the first answer, then one for the rest: {seen:?}"
    );
    let sent: u64 = seen.iter().map(|s| s.sent).sum();
    assert!(
        sent <= bytes.len() as u64 + 100_000,
        "{sent} bytes sent for a file of {}",
        bytes.len()
    );

    // With threads, each reads runs of tensors in order (how rayon splits
    // the list decides how many runs): fewer requests than tensors.
    let server = Server::start(
        "127.0.0.1",
        files(&[("/m.safetensors", bytes)]),
        Behaviour::default(),
    );
    let r = run_env(
        d,
        &[("RAYON_NUM_THREADS", "4")],
        &["verify", &server.url("/m.safetensors")],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(server.seen().len() < 20, "{:?}", server.seen().len());
}

#[test]
fn verify_of_a_remote_file_shows_progress_on_a_terminal_and_nothing_elsewhere() {
    let dir = tempdir();
    let d = dir.path();
    // Progress is shown for 64 MiB and more.
    let bytes = sized_header(2_000, 65 << 20);
    let server = Server::start(
        "127.0.0.1",
        files(&[("/big.safetensors", bytes)]),
        Behaviour::default(),
    );
    let url = server.url("/big.safetensors");
    let Some(r) = run_on_terminal(d, &[("COLUMNS", "100")], &["verify", &url]) else {
        return;
    };
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout.contains("verifying ["),
        "no progress bar: {:?}",
        r.stdout
    );
    assert!(r.stdout.contains("MiB"), "{:?}", r.stdout);
    assert!(r.stdout.contains("OK"), "{:?}", r.stdout);

    // Not on a terminal: the report alone on stdout, nothing on stderr.
    let r = run_env(d, &[], &["verify", &url]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "");
    assert!(!r.stdout.contains("verifying"), "{:?}", r.stdout);
    assert!(!r.stdout.contains(['\r', '\x1b']), "{:?}", r.stdout);
    assert!(r.stdout.ends_with("OK\n"), "{:?}", r.stdout);
}
