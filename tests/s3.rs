//! `s3://` addresses against an S3-compatible server on loopback (moto,
//! started by `tests/python/s3_server.py` with signatures checked against
//! credentials it creates): an object, a sharded index under a prefix, the
//! prefix rule, wrong credentials, missing keys and buckets, and temporary
//! credentials with their session token. Skipped when `MODELTOOL_PYTHON`
//! lacks moto, unless `MODELTOOL_REQUIRE_PYTHON` is set.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::remote::{model_bytes, run_env, sharded};
use crate::util::{Run, assert_error, python, tempdir};

/// A running moto server; stopped (its stdin closed) when dropped.
struct S3 {
    child: Child,
    endpoint: String,
    key: (String, String),
    temp: (String, String, String),
}

impl Drop for S3 {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The Python with moto, or `None` to skip (a failure under
/// `MODELTOOL_REQUIRE_PYTHON`).
fn moto_python() -> Option<PathBuf> {
    let python = python()?;
    let ok = Command::new(&python)
        .args(["-c", "import moto.server, boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    assert!(
        std::env::var_os("MODELTOOL_REQUIRE_PYTHON").is_none(),
        "MODELTOOL_REQUIRE_PYTHON is set but {} cannot import moto (tests/python/requirements.txt)",
        python.display()
    );
    eprintln!("skipping: {} cannot import moto", python.display());
    None
}

/// Starts moto with every file under `folder` uploaded to bucket `models`.
fn start(python: &Path, folder: &Path) -> S3 {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/s3_server.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(folder)
        .arg("models")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("the S3 server did not start: {e}: {line:?}"));
    let s = |p: &str| v.pointer(p).and_then(|x| x.as_str()).unwrap().to_owned();
    S3 {
        endpoint: s("/endpoint"),
        key: (s("/key/0"), s("/key/1")),
        temp: (s("/temp/0"), s("/temp/1"), s("/temp/2")),
        child,
    }
}

impl S3 {
    /// Runs modeltool with the endpoint and `access`/`secret` (and a
    /// session token when given).
    fn run_as(&self, dir: &Path, creds: (&str, &str, Option<&str>), args: &[&str]) -> Run {
        let mut env = vec![
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", creds.0),
            ("AWS_SECRET_ACCESS_KEY", creds.1),
            ("AWS_REGION", "us-east-1"),
            ("AWS_SESSION_TOKEN", creds.2.unwrap_or("")),
        ];
        env.push(("MODELTOOL_HTTP_RETRIES", "1"));
        run_env(dir, &env, args)
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Run {
        self.run_as(dir, (&self.key.0, &self.key.1, None), args)
    }

    /// Runs modeltool with no AWS variable but those of `env`.
    fn run_bare(&self, dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
        let mut all = vec![("MODELTOOL_HTTP_RETRIES", "1")];
        all.extend_from_slice(env);
        run_env(dir, &all, args)
    }
}

/// The bucket's files: `m.safetensors`, a sharded checkpoint under `ck/`,
/// `single/model.safetensors`, and `other/` with one model file beside a
/// config.
fn bucket(d: &Path) -> PathBuf {
    let up = d.join("bucket");
    std::fs::create_dir_all(up.join("ck")).unwrap();
    std::fs::create_dir_all(up.join("single")).unwrap();
    std::fs::create_dir_all(up.join("other")).unwrap();
    let bytes = model_bytes(d, "m", 3, 30_000);
    std::fs::write(up.join("m.safetensors"), &bytes).unwrap();
    std::fs::write(up.join("single/model.safetensors"), &bytes).unwrap();
    let other = model_bytes(d, "other", 2, 10);
    std::fs::write(up.join("other/weights.safetensors"), other).unwrap();
    std::fs::write(up.join("other/config.json"), b"{}").unwrap();
    for (name, b) in sharded(d) {
        std::fs::write(up.join("ck").join(name), b).unwrap();
    }
    up
}

#[test]
fn s3_objects_indexes_and_prefixes_read_as_the_local_files() {
    let Some(python) = moto_python() else { return };
    let dir = tempdir();
    let d = dir.path();
    let s3 = start(&python, &bucket(d));

    // One object: verify, and convert bit-exact against the local file.
    let r = s3.run(d, &["verify", "s3://models/m.safetensors", "--strict"]);
    assert_verified(&r);
    let r = s3.run(d, &["convert", "s3://models/m.safetensors", "remote.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = s3.run(d, &["convert", "m.safetensors", "local.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read(d.join("remote.json")).unwrap(),
        std::fs::read(d.join("local.json")).unwrap()
    );

    // A sharded checkpoint: by its index, and by its prefix (with or
    // without the trailing `/`), the same as the local folder.
    let local = s3.run(d, &["inspect", "shards", "--format", "json"]);
    assert_eq!(local.code, 0, "{}", local.stderr);
    let tensors = |r: &Run| {
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let t = v["tensors"].clone();
        assert!(t.as_array().is_some_and(|a| !a.is_empty()), "{}", r.stdout);
        t
    };
    for addr in [
        "s3://models/ck/model.safetensors.index.json",
        "s3://models/ck/",
        "s3://models/ck",
    ] {
        let r = s3.run(d, &["inspect", addr, "--format", "json"]);
        assert_eq!(r.code, 0, "{addr}: {}", r.stderr);
        assert_eq!(tensors(&r), tensors(&local), "{addr}");
    }
    let r = s3.run(d, &["convert", "s3://models/ck", "from-s3.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = s3.run(d, &["convert", "shards", "from-disk.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read(d.join("from-s3.safetensors")).unwrap(),
        std::fs::read(d.join("from-disk.safetensors")).unwrap()
    );

    // The prefix rule: model.safetensors, else the one model file (the
    // latter's two tensors tell it from the former's three).
    let r = s3.run(d, &["inspect", "s3://models/single", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        tensors(&r),
        tensors(&s3.run(d, &["inspect", "m.safetensors", "--format", "json"]))
    );
    let r = s3.run(d, &["inspect", "s3://models/other/", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        tensors(&r),
        tensors(&s3.run(d, &["inspect", "other.safetensors", "--format", "json"]))
    );
    assert_ne!(tensors(&r), tensors(&local));

    // Temporary credentials: accepted with their session token, refused
    // without it (the server refuses them as AWS does).
    let (ak, sk, token) = (&s3.temp.0, &s3.temp.1, &s3.temp.2);
    let r = s3.run_as(d, (ak, sk, Some(token)), &["verify", "s3://models/ck"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = s3.run_as(d, (ak, sk, None), &["inspect", "s3://models/m.safetensors"]);
    assert_error(&r, 2, &["HTTP 403", "InvalidToken", "AWS_SESSION_TOKEN"]);
}

#[test]
fn s3_refusals_and_missing_keys_are_one_line_naming_bucket_key_and_variables() {
    let Some(python) = moto_python() else { return };
    let dir = tempdir();
    let d = dir.path();
    let up = d.join("bucket");
    std::fs::create_dir_all(&up).unwrap();
    std::fs::write(up.join("m.safetensors"), model_bytes(d, "m", 1, 10)).unwrap();
    let s3 = start(&python, &up);

    let wrong = s3.run_as(
        d,
        (&s3.key.0, "not-the-secret", None),
        &["inspect", "s3://models/m.safetensors"],
    );
    assert_error(
        &wrong,
        2,
        &[
            "s3://models/m.safetensors",
            "HTTP 403",
            "SignatureDoesNotMatch",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ],
    );
    let unknown = s3.run_as(
        d,
        ("AKIANOSUCHKEY0000000", "x", None),
        &["inspect", "s3://models/m.safetensors"],
    );
    assert_error(
        &unknown,
        2,
        &["HTTP 403", "InvalidAccessKeyId", "AWS_ACCESS_KEY_ID"],
    );

    let missing = s3.run(d, &["inspect", "s3://models/no/such.safetensors"]);
    assert_error(
        &missing,
        2,
        &[
            "s3://models/no/such.safetensors",
            "no key `no/such.safetensors`",
            "bucket `models`",
            "NoSuchKey",
        ],
    );
    let no_bucket = s3.run(d, &["inspect", "s3://absent-bucket/m.safetensors"]);
    assert_error(
        &no_bucket,
        2,
        &["no bucket `absent-bucket`", "NoSuchBucket"],
    );
    let empty = s3.run(d, &["inspect", "s3://models/"]);
    assert_eq!(
        empty.code, 0,
        "the bucket's one model file: {}",
        empty.stderr
    );
    for r in [&wrong, &unknown, &missing, &no_bucket] {
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    }
}

#[test]
fn s3_credentials_region_and_endpoint_come_from_the_profile_in_the_shared_files() {
    let Some(python) = moto_python() else { return };
    let dir = tempdir();
    let d = dir.path();
    let s3 = start(&python, &bucket(d));
    let (creds, config) = (d.join("aws-credentials"), d.join("aws-config"));
    let files = [
        ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
    ];
    fn joined<'a>(a: &[(&'a str, &'a str)], b: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        a.iter().chain(b).copied().collect()
    }
    let (ak, sk) = (&s3.key.0, &s3.key.1);
    // `[NAME]` in the credentials file, `[profile NAME]` in the config
    // file; the default profile's keys are wrong, so success proves the
    // named profile was read. The profile's own endpoint_url is wrong too:
    // its services section's s3 block names the server.
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = {ak}\naws_secret_access_key = wrong\n\n\
             # the key pair moto made\n[reader]\naws_access_key_id = {ak}\n\
             aws_secret_access_key = {sk}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        &config,
        format!(
            "[default]\nregion = us-east-1\nendpoint_url = {}\n\n[profile reader]\n\
             region = us-east-1\nendpoint_url = http://127.0.0.1:9\nservices = local\n\
             s3 =\n  addressing_style = path\n\n[services local]\ns3 =\n  endpoint_url = {}\n",
            s3.endpoint, s3.endpoint
        ),
    )
    .unwrap();
    let r = s3.run_bare(
        d,
        &joined(&files, &[("AWS_PROFILE", "reader")]),
        &["verify", "s3://models/m.safetensors", "--strict"],
    );
    assert_verified(&r);
    let r = s3.run_bare(
        d,
        &joined(&files, &[("AWS_PROFILE", "reader")]),
        &["inspect", "s3://models/ck"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);

    // The default profile (no AWS_PROFILE): its wrong secret is refused,
    // and the message names the profile and the file to check.
    let r = s3.run_bare(
        d,
        &joined(&files, &[]),
        &["inspect", "s3://models/m.safetensors"],
    );
    assert_error(
        &r,
        2,
        &[
            "HTTP 403",
            "SignatureDoesNotMatch",
            "profile `default`",
            creds.to_str().unwrap(),
        ],
    );

    // The environment comes first, as for the AWS CLI: the right key pair
    // in the variables wins over the default profile's wrong one.
    let r = s3.run_bare(
        d,
        &joined(
            &files,
            &[("AWS_ACCESS_KEY_ID", ak), ("AWS_SECRET_ACCESS_KEY", sk)],
        ),
        &["inspect", "s3://models/m.safetensors"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // ... and AWS_ENDPOINT_URL over the profile's endpoint_url.
    let r = s3.run_bare(
        d,
        &joined(
            &files,
            &[
                ("AWS_PROFILE", "reader"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ],
        ),
        &["inspect", "s3://models/m.safetensors"],
    );
    assert_error(&r, 2, &["s3://models/m.safetensors", "127.0.0.1:9"]);

    // Temporary credentials with their session token, from the file.
    let (tk, ts, tt) = (&s3.temp.0, &s3.temp.1, &s3.temp.2);
    std::fs::write(
        &creds,
        format!(
            "[temp]\naws_access_key_id = {tk}\naws_secret_access_key = {ts}\n\
             aws_session_token = {tt}\n[half]\naws_access_key_id = {tk}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        &config,
        format!(
            "[profile temp]\nendpoint_url = {}\nregion = us-east-1\n[profile half]\n\
             [profile role]\nrole_arn = arn:aws:iam::123456789012:role/reader\n",
            s3.endpoint
        ),
    )
    .unwrap();
    let r = s3.run_bare(
        d,
        &joined(&files, &[("AWS_PROFILE", "temp")]),
        &["verify", "s3://models/ck"],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    // Errors name the file, and the line where there is one.
    let inspect = |env: &[(&str, &str)]| {
        s3.run_bare(
            d,
            &joined(&files, env),
            &["inspect", "s3://models/m.safetensors"],
        )
    };
    let (creds_path, config_path) = (creds.to_str().unwrap(), config.to_str().unwrap());
    for (profile, expected) in [
        (
            "half",
            [
                creds_path,
                "line 5",
                "profile `half`",
                "aws_secret_access_key",
            ],
        ),
        (
            "role",
            [config_path, "line 5", "role_arn", "AWS_ACCESS_KEY_ID"],
        ),
        (
            "nobody",
            [
                "s3://models/m.safetensors",
                "AWS_PROFILE",
                "`nobody`",
                config_path,
            ],
        ),
    ] {
        let r = inspect(&[("AWS_PROFILE", profile)]);
        assert_error(&r, 2, &expected);
    }
    std::fs::write(
        &config,
        "[profile temp]\nregion = us-east-1\nthis is not a setting\nx = 1\n",
    )
    .unwrap();
    let r = inspect(&[("AWS_PROFILE", "temp")]);
    assert_error(
        &r,
        2,
        &[config.to_str().unwrap(), "line 3", "neither `[section]`"],
    );
    assert!(
        !r.stderr.contains("this is not"),
        "a line that may be a secret is not shown"
    );
    std::fs::write(&config, "[profile temp]\nregion = us-east-1/x\n").unwrap();
    let r = inspect(&[("AWS_PROFILE", "temp")]);
    assert_error(
        &r,
        2,
        &[config.to_str().unwrap(), "line 1", "not a region name"],
    );
    for v in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        let r = inspect(&[(v, "x")]);
        assert_error(
            &r,
            2,
            &["s3://models/m.safetensors", v, "give both, or neither"],
        );
    }
}

/// A proxy before the S3 server, for a bucket in `region`: a request signed
/// for another region gets what S3 answers to that (301 PermanentRedirect,
/// with `x-amz-bucket-region` when `tell`); one signed for `region` goes on
/// to the server, which checks its signature.
struct RegionProxy {
    base: String,
    redirects: Arc<AtomicUsize>,
}

fn region_proxy(upstream: &str, region: &'static str, tell: bool) -> RegionProxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let redirects = Arc::new(AtomicUsize::new(0));
    let count = redirects.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let (upstream, count) = (upstream.clone(), count.clone());
            std::thread::spawn(move || proxy_connection(client, &upstream, region, tell, &count));
        }
    });
    RegionProxy { base, redirects }
}

fn proxy_connection(
    client: TcpStream,
    upstream: &str,
    region: &str,
    tell: bool,
    count: &AtomicUsize,
) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut out = client;
    loop {
        // One GET (no body) at a time on the kept-alive connection.
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line.trim_end().is_empty() {
                break;
            }
            head.push(line.trim_end().to_owned());
        }
        let scope = head
            .iter()
            .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
            .and_then(|l| l.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(2))
            .unwrap_or("")
            .to_owned();
        if scope != region {
            count.fetch_add(1, Ordering::SeqCst);
            let body = "<Error><Code>PermanentRedirect</Code><Message>The bucket you are \
                        attempting to access must be addressed using the specified endpoint.\
                        </Message></Error>";
            let told = if tell {
                format!("x-amz-bucket-region: {region}\r\n")
            } else {
                String::new()
            };
            let answer = format!(
                "HTTP/1.1 301 Moved Permanently\r\nContent-Type: application/xml\r\n{told}\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if out.write_all(answer.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        let Ok(mut up) = TcpStream::connect(upstream) else {
            return;
        };
        let mut request: String = head
            .iter()
            .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        request.push_str("Connection: close\r\n\r\n");
        if up.write_all(request.as_bytes()).is_err() {
            return;
        }
        let mut answer = Vec::new();
        let _ = up.read_to_end(&mut answer);
        let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
            return;
        };
        let head_text = String::from_utf8_lossy(&answer[..end]).into_owned();
        let has_length = head_text
            .to_ascii_lowercase()
            .contains("\r\ncontent-length:");
        let kept: Vec<&str> = head_text
            .split("\r\n")
            .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
            .collect();
        let mut reply = kept.join("\r\n");
        reply.push_str(if has_length {
            "\r\n\r\n"
        } else {
            "\r\nConnection: close\r\n\r\n"
        });
        if out.write_all(reply.as_bytes()).is_err() || out.write_all(&answer[end + 4..]).is_err() {
            return;
        }
        if !has_length {
            return;
        }
    }
}

#[test]
fn a_bucket_in_another_region_is_asked_again_signed_for_its_region() {
    let Some(python) = moto_python() else { return };
    let dir = tempdir();
    let d = dir.path();
    let s3 = start(&python, &bucket(d));
    let proxy = region_proxy(&s3.endpoint, "eu-west-1", true);
    let (ak, sk) = (s3.key.0.as_str(), s3.key.1.as_str());
    let env = [
        ("AWS_ENDPOINT_URL", proxy.base.as_str()),
        ("AWS_ACCESS_KEY_ID", ak),
        ("AWS_SECRET_ACCESS_KEY", sk),
        ("AWS_REGION", "us-west-2"),
    ];
    let r = s3.run_bare(
        d,
        &env,
        &["verify", "s3://models/m.safetensors", "--strict"],
    );
    assert_verified(&r);
    assert_eq!(r.stderr, "", "nothing said about the region");
    // Once: every later request of the run is signed for the bucket's region.
    assert_eq!(proxy.redirects.load(Ordering::SeqCst), 1);

    // A prefix (an object request, then a listing) and the shards of its
    // index, fetched in parallel: still one redirect for the run.
    let r = s3.run_bare(d, &env, &["inspect", "s3://models/ck", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let local = s3.run_bare(d, &[], &["inspect", "shards", "--format", "json"]);
    let tensors =
        |r: &Run| serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["tensors"].clone();
    assert_eq!(tensors(&r), tensors(&local));
    assert_eq!(proxy.redirects.load(Ordering::SeqCst), 2);

    // S3 not saying which region: one line naming the bucket's address and
    // the variable to set.
    let silent = region_proxy(&s3.endpoint, "eu-west-1", false);
    let env = [
        ("AWS_ENDPOINT_URL", silent.base.as_str()),
        ("AWS_ACCESS_KEY_ID", ak),
        ("AWS_SECRET_ACCESS_KEY", sk),
        ("AWS_REGION", "us-west-2"),
    ];
    let r = s3.run_bare(d, &env, &["inspect", "s3://models/m.safetensors"]);
    assert_error(
        &r,
        2,
        &[
            "s3://models/m.safetensors",
            "HTTP 301",
            "us-west-2",
            "AWS_REGION",
        ],
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

/// A verify that passed, with every one of the three tensors checked.
fn assert_verified(r: &Run) {
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("3 of 3 tensor checksums match"),
        "{}",
        r.stdout
    );
}
